// The virtio-blk request format (virtio 1.x, section 5.2.6), the table of requests the device
// holds, and the virtio-mmio transport's registers and bits (section 4.2.2) the driver programs.

// MARK: Requests

public enum BlockRequestKind: UInt32, Equatable {
    case read = 0 // VIRTIO_BLK_T_IN
    case write = 1 // VIRTIO_BLK_T_OUT
    case flush = 4
    case getID = 8
}

/// What the device reported in a request's status byte.
public enum BlockStatus: UInt8, Equatable {
    case ok = 0
    case ioError = 1
    case unsupported = 2

    /// A byte outside the spec counts as an I/O error: the request did not succeed.
    public init(deviceByte: UInt8) {
        self = BlockStatus(rawValue: deviceByte) ?? .ioError
    }
}

/// A client's request; `count` is in 512-byte sectors and `tag` is the client's own name for it.
public struct BlockRequest: Equatable {
    public var kind: BlockRequestKind
    public var sector: UInt64
    public var count: UInt32
    public var tag: UInt64

    public init(kind: BlockRequestKind, sector: UInt64, count: UInt32, tag: UInt64) {
        self.kind = kind
        self.sector = sector
        self.count = count
        self.tag = tag
    }

    /// Sector numbers and sizes are in these units whatever the device's block size.
    public static let sectorSize: UInt32 = 512
    public static let headerSize = 16
    /// GET_ID answers with an identification string of this many bytes.
    public static let deviceIDLength: UInt32 = 20

    /// Bytes of the data buffer; nil when `count` sectors do not fit in 32 bits.
    public var dataLength: UInt32? {
        switch kind {
        case .read, .write:
            let (bytes, overflow) = count.multipliedReportingOverflow(by: Self.sectorSize)
            return overflow ? nil : bytes
        case .flush: return 0
        case .getID: return Self.deviceIDLength
        }
    }

    /// How the request ended, by its status byte and the bytes the device says it wrote (the used
    /// ring's length: the data and the status byte). A read that claims success but wrote less
    /// than its data failed: its transfer buffer still holds an earlier request's bytes.
    public func outcome(deviceByte: UInt8, written: UInt32) -> BlockStatus {
        let status = BlockStatus(deviceByte: deviceByte)
        guard status == .ok, kind == .read, let length = dataLength else { return status }
        return written > length ? .ok : .ioError
    }

    /// Writes the request header (type, reserved, sector) at `header`.
    public func storeHeader(at header: UnsafeMutableRawPointer) {
        header.storeBytes(of: kind.rawValue.littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: sector.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// The chain for this request: header (device reads), data if any (device writes it for reads
    /// and GET_ID, reads it for writes), status byte (device writes). Nil when `dataLength` is.
    public func buffers(header: UInt64, data: UInt64, status: UInt64) -> BlockRequestBuffers? {
        guard let length = dataLength else { return nil }
        var chain = BlockRequestBuffers()
        chain.append(VirtqueueBuffer(deviceAddress: header, length: UInt32(Self.headerSize), deviceWrites: false))
        if length > 0 {
            chain.append(VirtqueueBuffer(deviceAddress: data, length: length, deviceWrites: kind != .write))
        }
        chain.append(VirtqueueBuffer(deviceAddress: status, length: 1, deviceWrites: true))
        return chain
    }
}

/// The two or three buffers of one request, without allocating.
public struct BlockRequestBuffers: RandomAccessCollection {
    /// The most a request takes: header, data, status (the storage below has as many).
    public static let maximumCount = 3
    private var buffers = InlineArray<3, VirtqueueBuffer>(repeating: VirtqueueBuffer(deviceAddress: 0, length: 0, deviceWrites: false))
    public private(set) var count = 0

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> VirtqueueBuffer { buffers[position] }

    fileprivate mutating func append(_ buffer: VirtqueueBuffer) {
        buffers[count] = buffer
        count += 1
    }
}

// MARK: Requests the device holds

/// Client requests from arrival until their chain completes. A request waits until it is handed
/// to the queue, then is in flight on one head; after a device reset every request in flight waits
/// again and is handed over again, in the order the requests arrived. A request leaves the table
/// only through `complete(head:)` or `removeAll`, so none is answered twice or lost.
public struct BlockRequestTable {
    public static let capacity = 64

    private enum Phase: UInt8 {
        case free
        case waiting
        case inFlight
    }

    private struct Slot {
        var phase = Phase.free
        /// The chain's head while `inFlight`.
        var head: UInt16 = 0
        var request = BlockRequest(kind: .flush, sector: 0, count: 0, tag: 0)
        /// Arrival number: the order requests are handed to the queue, the first time and after a reset.
        var arrival: UInt64 = 0
        /// When it was last handed to the queue, in the caller's units (`submitWaiting(stamp:)`).
        var stamp: UInt64 = 0
    }

    private var slots = InlineArray<64, Slot>(repeating: Slot())
    private var arrivals: UInt64 = 0
    public private(set) var count = 0
    /// How many of them the device holds: handed over and not yet completed.
    public private(set) var heldByDevice = 0

    public init() {}

    public var isFull: Bool { count == Self.capacity }

    /// Takes a request to wait for the queue; false when the table is full.
    public mutating func add(_ request: BlockRequest) -> Bool {
        guard let index = slots.indices.first(where: { slots[$0].phase == .free }) else { return false }
        slots[index] = Slot(phase: .waiting, request: request, arrival: arrivals)
        arrivals += 1
        count += 1
        return true
    }

    /// Hands waiting requests to `submit`, earliest arrival first, until it returns nil (no room
    /// in the queue; those left wait for the next call). `submit` gets the request's slot, which
    /// stays the same until the request leaves the table (a home for its header and status
    /// byte), and returns the head of the chain it submitted. Returns how many were handed over.
    /// `stamp` marks when they were handed over (`oldestStamp`).
    public mutating func submitWaiting(stamp: UInt64 = 0, _ submit: (_ slot: Int, _ request: BlockRequest) -> UInt16?) -> Int {
        var submitted = 0
        while let index = earliestWaiting(), let head = submit(index, slots[index].request) {
            slots[index].phase = .inFlight
            slots[index].head = head
            slots[index].stamp = stamp
            submitted += 1
        }
        heldByDevice += submitted
        return submitted
    }

    /// The request served by the chain at `head`, which leaves the table, and the slot it had
    /// (whose DMA buffers hold its status); nil when no request is in flight there.
    public mutating func complete(head: UInt16) -> (request: BlockRequest, slot: Int)? {
        guard let index = slot(head: head) else { return nil }
        slots[index].phase = .free
        count -= 1
        heldByDevice -= 1
        return (slots[index].request, index)
    }

    /// After the device and queue were reset: every request in flight waits again, keeping its
    /// arrival order. Returns how many.
    @discardableResult
    public mutating func requeueInFlight() -> Int {
        var requeued = 0
        for index in slots.indices {
            guard slots[index].phase == .inFlight else { continue }
            slots[index].phase = .waiting
            requeued += 1
        }
        heldByDevice = 0
        return requeued
    }

    /// Empties the table, giving every request to `answer` in arrival order: for a device that is
    /// gone, so that each client still gets a reply.
    public mutating func removeAll(_ answer: (BlockRequest) -> Void) {
        while let index = earliest(where: { $0 != .free }) {
            if slots[index].phase == .inFlight { heldByDevice -= 1 }
            slots[index].phase = .free
            count -= 1
            answer(slots[index].request)
        }
    }

    /// The earliest stamp among the requests the device holds (the one it has held longest);
    /// nil when it holds none. `mutating` for the reason `earliest` is.
    public mutating func oldestStamp() -> UInt64? {
        var oldest: UInt64?
        for index in slots.indices where slots[index].phase == .inFlight {
            if let found = oldest, found <= slots[index].stamp { continue }
            oldest = slots[index].stamp
        }
        return oldest
    }

    /// The slot of the request in flight at `head`, if any. `mutating` for the reason `earliest`
    /// is: the driver's completion loop reaches it between calls that change the table.
    private mutating func slot(head: UInt16) -> Int? {
        slots.indices.first(where: { slots[$0].phase == .inFlight && slots[$0].head == head })
    }

    private mutating func earliestWaiting() -> Int? { earliest(where: { $0 == .waiting }) }

    /// `mutating` though it only reads: the loops above change `slots` between calls, and the
    /// embedded optimizer (Swift 6.3, -Osize) passed a non-mutating call a copy of a global
    /// table made once before the loop, so `submitWaiting` handed one request to the queue until
    /// the queue was full. A mutating call gets the table's address and reads what is there now.
    private mutating func earliest(where matches: (Phase) -> Bool) -> Int? {
        var found: Int?
        for index in slots.indices where matches(slots[index].phase) {
            if let best = found, slots[best].arrival < slots[index].arrival { continue }
            found = index
        }
        return found
    }
}

// MARK: A device that stops answering

/// When a device counts as stalled: it has held requests for `limit` ticks of the system clock
/// and completed none of them meanwhile. The time runs from the later of the last completion and
/// the moment an idle device was given work, so a busy device that keeps completing requests is
/// never stalled however long its queue, and one that completes nothing is, however the driver
/// keeps adding to it. The driver looks after each event (`observe`; a reset counts as
/// progress) and waits no later than `deadline`.
public struct StallWatch: Equatable {
    public let limit: UInt64
    /// Since when the device has held requests without completing one; nil while it holds none.
    public private(set) var since: UInt64?

    public init(limit: UInt64) {
        self.limit = limit
    }

    /// The device holds `held` requests at tick `now`, and completed at least one since the last
    /// look if `progressed`.
    public mutating func observe(held: Int, progressed: Bool, now: UInt64) {
        if held == 0 {
            since = nil
        } else if progressed || since == nil {
            since = now
        }
    }

    /// The tick from which the device counts as stalled; nil while it holds no request.
    public var deadline: UInt64? {
        guard let since else { return nil }
        let (sum, carry) = since.addingReportingOverflow(limit)
        return carry ? .max : sum
    }

    /// Whether the device counts as stalled at tick `now`.
    public func isStalled(at now: UInt64) -> Bool {
        guard let deadline else { return false }
        return now >= deadline
    }
}

// MARK: The virtio-mmio transport

/// Register offsets from the start of a virtio-mmio device's window (version 2, section 4.2.2).
public enum VirtioMMIORegister: Int {
    case magicValue = 0x000
    case version = 0x004
    case deviceID = 0x008
    case vendorID = 0x00c
    case deviceFeatures = 0x010
    case deviceFeaturesSelect = 0x014
    case driverFeatures = 0x020
    case driverFeaturesSelect = 0x024
    case queueSelect = 0x030
    case queueSizeMaximum = 0x034
    case queueSize = 0x038
    case queueReady = 0x044
    case queueNotify = 0x050
    case interruptStatus = 0x060
    case interruptAcknowledge = 0x064
    case status = 0x070
    case queueDescriptorLow = 0x080
    case queueDescriptorHigh = 0x084
    case queueDriverLow = 0x090
    case queueDriverHigh = 0x094
    case queueDeviceLow = 0x0a0
    case queueDeviceHigh = 0x0a4
    case configGeneration = 0x0fc
    /// The device-specific configuration; for a block device its capacity in sectors comes first.
    case config = 0x100

    public var offset: Int { rawValue }
}

public enum VirtioMMIO {
    /// "virt" read as a little-endian word.
    public static let magic: UInt32 = 0x7472_6976
    /// The transport version of virtio 1.x; version 1 is the legacy interface.
    public static let version: UInt32 = 2
    public static let blockDeviceID: UInt32 = 2
    /// Feature words are read and written 32 bits at a time through the select registers.
    public static let featureWordBits = 32
}

/// The Status register: the steps of driver initialisation (section 3.1.1). Writing 0 resets.
public struct VirtioDeviceStatus: OptionSet, Equatable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let acknowledge = VirtioDeviceStatus(rawValue: 1)
    public static let driver = VirtioDeviceStatus(rawValue: 2)
    public static let driverOK = VirtioDeviceStatus(rawValue: 4)
    public static let featuresOK = VirtioDeviceStatus(rawValue: 8)
    public static let deviceNeedsReset = VirtioDeviceStatus(rawValue: 64)
    public static let failed = VirtioDeviceStatus(rawValue: 128)
}

/// The InterruptStatus and InterruptACK bits.
public struct VirtioInterrupt: OptionSet, Equatable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let usedBuffer = VirtioInterrupt(rawValue: 1)
    public static let configurationChange = VirtioInterrupt(rawValue: 2)
}

/// Feature bits, as one 64-bit set (word 0 is bits 0–31, word 1 bits 32–63).
public struct VirtioFeatures: OptionSet, Equatable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let blockReadOnly = VirtioFeatures(rawValue: 1 << 5)
    public static let blockFlush = VirtioFeatures(rawValue: 1 << 9)
    /// Required of a virtio 1.x device; without it the device is legacy.
    public static let version1 = VirtioFeatures(rawValue: 1 << 32)

    /// The set from the two words read through the select registers.
    public init(low: UInt32, high: UInt32) {
        rawValue = UInt64(high) << 32 | UInt64(low)
    }

    /// The 32 bits read or written with the select register at `word` (0 or 1; others are empty).
    public func word(_ word: Int) -> UInt32 {
        switch word {
        case 0: UInt32(truncatingIfNeeded: rawValue)
        case 1: UInt32(truncatingIfNeeded: rawValue >> 32)
        default: 0
        }
    }
}
