// The page, the unit of `map`, `unmap` and memory objects: 4 KiB, the translation granule the
// kernel uses. Sizes given to those calls are rounded up to whole pages.

public let pageSize: UInt64 = 4096
public let pageShift: UInt64 = 12

/// Rounds `value` up to a multiple of `alignment` (a power of two); nil on overflow.
@inlinable
public func alignUp(_ value: UInt64, to alignment: UInt64) -> UInt64? {
    let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
    return overflow ? nil : sum & ~(alignment - 1)
}

@inlinable
public func alignDown(_ value: UInt64, to alignment: UInt64) -> UInt64 {
    value & ~(alignment - 1)
}
