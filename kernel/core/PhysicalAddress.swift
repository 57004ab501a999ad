// Physical addresses and ranges of physical memory. Kept distinct from plain integers so that a
// physical address can never be passed where a size, a virtual address or a frame number is meant.

public struct PhysicalAddress: Equatable, Comparable, Sendable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func < (lhs: PhysicalAddress, rhs: PhysicalAddress) -> Bool { lhs.value < rhs.value }

    /// The address `bytes` further on, or nil if that would wrap past the top of the address space.
    public func advanced(by bytes: UInt64) -> PhysicalAddress? {
        let (sum, overflow) = value.addingReportingOverflow(bytes)
        return overflow ? nil : PhysicalAddress(sum)
    }
}

/// A half-open range `[start, start + size)` of physical memory.
public struct PhysicalRange: Equatable, Sendable {
    public var start: PhysicalAddress
    public var size: UInt64

    public init(start: PhysicalAddress, size: UInt64) {
        self.start = start
        self.size = size
    }

    /// One past the last byte; nil when the range would wrap past 2^64.
    public var end: PhysicalAddress? { start.advanced(by: size) }

    public func contains(_ address: PhysicalAddress) -> Bool {
        address >= start && address.value - start.value < size
    }

    /// Whether the two share a byte (neither may wrap past 2^64).
    public func overlaps(_ other: PhysicalRange) -> Bool {
        size > 0 && other.size > 0 && (contains(other.start) || other.contains(start))
    }
}

extension FormattedText.StringInterpolation {
    public mutating func appendInterpolation(_ address: PhysicalAddress) {
        line.writeHex(address.value)
    }
}
