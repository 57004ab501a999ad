// Allocation-free text formatting for the kernel log: a fixed-capacity line buffer and a string
// interpolation type that writes hex, decimal, sizes and device-tree strings into it. A message
// is formatted whole before it is printed, so the console can emit it under one lock.

/// Anything bytes of text can be written to.
public protocol TextOutput {
    mutating func write(byte: UInt8)
}

extension TextOutput {
    public mutating func write(_ string: StaticString) {
        let start = string.utf8Start
        for index in 0..<string.utf8CodeUnitCount { write(byte: start[index]) }
    }

    public mutating func write<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes { write(byte: byte) }
    }

    public mutating func writeDecimal(_ value: UInt64) {
        var digits = InlineArray<20, UInt8>(repeating: 0)
        var remaining = value
        var count = 0
        repeat {
            digits[count] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
            count += 1
        } while remaining != 0
        while count > 0 {
            count -= 1
            write(byte: digits[count])
        }
    }

    public mutating func writeDecimal(signed value: Int64) {
        if value < 0 { write(byte: UInt8(ascii: "-")) }
        writeDecimal(value.magnitude)
    }

    /// "0x" and at least `digits` hex digits (more if the value needs them), zero-padded.
    public mutating func writeHex(_ value: UInt64, digits: Int = 16) {
        write("0x")
        var needed = 1
        while needed < 16 && value >> (4 * UInt64(needed)) != 0 { needed += 1 }
        var position = max(needed, min(digits, 16))
        while position > 0 {
            position -= 1
            let nibble = UInt8((value >> (4 * UInt64(position))) & 0xF)
            write(byte: nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
        }
    }

    /// A byte count in the largest binary unit that divides it exactly: "512 bytes", "64 KiB", "3 GiB".
    public mutating func writeByteSize(_ bytes: UInt64) {
        if bytes != 0 && bytes % (1 << 30) == 0 {
            writeDecimal(bytes >> 30); write(" GiB")
        } else if bytes != 0 && bytes % (1 << 20) == 0 {
            writeDecimal(bytes >> 20); write(" MiB")
        } else if bytes != 0 && bytes % (1 << 10) == 0 {
            writeDecimal(bytes >> 10); write(" KiB")
        } else {
            writeDecimal(bytes); write(" bytes")
        }
    }
}

/// A line of at most `capacity` bytes; what does not fit is dropped and `truncated` is set. A
/// line cut short ends before the UTF-8 character the cut went through, not inside it (which a
/// terminal shows as garbage and a reader of the log cannot decode).
public struct TextLine: TextOutput {
    public static let capacity = 240
    var storage = InlineArray<240, UInt8>(repeating: 0)
    /// The bytes written that fit.
    private var used = 0
    public private(set) var truncated = false

    public init() {}

    public mutating func write(byte: UInt8) {
        guard used < Self.capacity else { truncated = true; return }
        storage[used] = byte
        used += 1
    }

    /// The line's length: all it holds, or for a line cut short, up to the character the cut
    /// went through (its first bytes are not part of the line).
    public var count: Int { truncated ? Self.completeLength(of: storage, used: used) : used }

    /// `used` less the bytes of a last UTF-8 character that did not arrive whole.
    @inline(never)
    private static func completeLength(of storage: InlineArray<240, UInt8>, used: Int) -> Int {
        var lead = used
        while lead > 0 && storage[lead - 1] & 0xC0 == 0x80 { lead -= 1 }   // continuation bytes
        guard lead > 0, storage[lead - 1] >= 0xC0 else { return used }
        let first = storage[lead - 1]
        let length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : 2
        return used - (lead - 1) < length ? lead - 1 : used
    }

    public subscript(index: Int) -> UInt8 { storage[index] }

    /// Calls `body` with each byte in order.
    public func forEachByte(_ body: (UInt8) -> Void) {
        for index in 0..<count { body(storage[index]) }
    }

    /// The line's bytes, for writing them out in one piece.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        var copy = storage
        let count = self.count
        return Swift.withUnsafeBytes(of: &copy) { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public func equals(_ string: StaticString) -> Bool {
        guard string.utf8CodeUnitCount == count else { return false }
        for index in 0..<count where string.utf8Start[index] != storage[index] { return false }
        return true
    }
}

/// `"Boot: region \(hex: start) (\(megabytes: size) MB)"` formats into a `TextLine` with no
/// allocation: literal segments arrive as `StaticString`.
public struct FormattedText: ExpressibleByStringInterpolation {
    public var line: TextLine

    public init(stringLiteral value: StaticString) {
        line = TextLine()
        line.write(value)
    }

    public init(stringInterpolation: StringInterpolation) {
        line = stringInterpolation.line
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        public typealias StringLiteralType = StaticString
        var line = TextLine()

        public init(literalCapacity: Int, interpolationCount: Int) {}

        public mutating func appendLiteral(_ literal: StaticString) { line.write(literal) }

        public mutating func appendInterpolation(_ literal: StaticString) { line.write(literal) }

        public mutating func appendInterpolation<Integer: BinaryInteger>(_ value: Integer) {
            if Integer.isSigned {
                line.writeDecimal(signed: Int64(truncatingIfNeeded: value))
            } else {
                line.writeDecimal(UInt64(truncatingIfNeeded: value))
            }
        }

        public mutating func appendInterpolation<Integer: BinaryInteger>(hex value: Integer, digits: Int = 16) {
            line.writeHex(UInt64(truncatingIfNeeded: value), digits: digits)
        }

        /// Whole mebibytes, as the boot log prints region sizes ("1024").
        public mutating func appendInterpolation(megabytes bytes: UInt64) {
            line.writeDecimal(bytes >> 20)
        }

        public mutating func appendInterpolation(size bytes: UInt64) {
            line.writeByteSize(bytes)
        }

        public mutating func appendInterpolation(_ flag: Bool) {
            line.write(flag ? "true" : "false")
        }
    }
}

/// Values that can describe themselves in the kernel log without allocating.
public protocol TextDescribable {
    func describe<Output: TextOutput>(into output: inout Output)
}

extension FormattedText.StringInterpolation {
    public mutating func appendInterpolation<Value: TextDescribable>(_ value: Value) {
        value.describe(into: &line)
    }
}

/// System call errors print as their summary (abi/KernelError.swift).
extension KernelError: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) { output.write(summary) }
}
