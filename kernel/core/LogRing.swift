// The kernel log's queue: records (kernel lines and programs' debug writes) waiting for the console
// service, which writes them out between its own writes so that no line lands inside another.
// Bytes in storage allocated once, each record a two-byte length and its bytes, wrapping around.
// A record that does not fit is refused, never cut or dropped: the caller then writes it (and
// everything queued before it) straight to the device, so nothing is lost and the order holds.

public struct LogRing {
    /// Longest record; a longer write is queued as several.
    public static let maximumRecord = logRecordMaximum
    static let headerBytes = 2

    let storage: UnsafeMutablePointer<UInt8>
    public let capacity: Int
    var head = 0
    /// Bytes in use, headers included.
    public private(set) var used = 0
    public private(set) var records = 0

    /// A ring of `capacity` bytes, at least one record of the longest kind.
    public init(capacity: Int) {
        self.capacity = max(capacity, Self.maximumRecord + Self.headerBytes)
        storage = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    public mutating func destroy() {
        storage.deallocate()
        used = 0
        records = 0
    }

    public var isEmpty: Bool { records == 0 }

    /// Queues `bytes` followed by `terminator`, if given, as one record; false (nothing queued)
    /// if the record is empty, longer than `maximumRecord` or does not fit.
    public mutating func append(_ bytes: UnsafeRawBufferPointer, terminator: UInt8? = nil) -> Bool {
        let length = bytes.count + (terminator == nil ? 0 : 1)
        guard length > 0, length <= Self.maximumRecord, used + Self.headerBytes + length <= capacity else { return false }
        var tail = (head + used) % capacity
        func put(_ byte: UInt8) {
            storage[tail] = byte
            tail = tail + 1 == capacity ? 0 : tail + 1
        }
        put(UInt8(truncatingIfNeeded: length))
        put(UInt8(truncatingIfNeeded: length >> 8))
        for byte in bytes { put(byte) }
        if let terminator { put(terminator) }
        used += Self.headerBytes + length
        records += 1
        return true
    }

    /// The length of the oldest record (0 if none).
    public var firstLength: Int {
        guard records > 0 else { return 0 }
        return Int(storage[head]) | Int(storage[(head + 1) % capacity]) << 8
    }

    /// Takes the oldest record, handing its bytes to `body` in order. False if there is none.
    public mutating func removeFirst(_ body: (UInt8) -> Void) -> Bool {
        guard records > 0 else { return false }
        let length = firstLength
        var index = (head + Self.headerBytes) % capacity
        for _ in 0..<length {
            body(storage[index])
            index = index + 1 == capacity ? 0 : index + 1
        }
        head = index
        used -= Self.headerBytes + length
        records -= 1
        if records == 0 { head = 0 }
        return true
    }

    /// Copies the oldest record into `buffer` without taking it: its length, or 0 if there is
    /// none or it does not fit.
    public func copyFirst(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = firstLength
        guard length > 0, length <= buffer.count else { return 0 }
        var index = (head + Self.headerBytes) % capacity
        for offset in 0..<length {
            buffer[offset] = storage[index]
            index = index + 1 == capacity ? 0 : index + 1
        }
        return length
    }

    /// Drops the oldest record, if any.
    public mutating func dropFirst() { _ = removeFirst { _ in } }

    /// Moves whole records, oldest first, into `buffer` while they fit; the bytes moved. A
    /// buffer of at least `maximumRecord` bytes always takes at least one record when any waits.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var filled = 0
        while records > 0, filled + firstLength <= buffer.count {
            _ = removeFirst { byte in
                buffer[filled] = byte
                filled += 1
            }
        }
        return filled
    }
}
