// How portable code reaches physical memory it manages (allocator metadata, page tables, heap
// slabs) without knowing how: the kernel goes through its linear map, host tests through a
// simulated RAM. Also the vocabulary of page frames (the page size itself is the ABI's:
// abi/Pages.swift; virtual addresses are in VirtualMemory.swift).

/// Access to physical memory by address. Implementations decide where it is mapped.
public protocol PhysicalMemory {
    /// A pointer through which `address` can be read and written; valid for the whole page.
    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer
    /// Fills the page at `address` (page-aligned) with zeros: a new translation table.
    func zeroPage(_ address: PhysicalAddress)
}

extension PhysicalMemory {
    /// Word by word; the kernel's memory zeroes a page with cache-block stores instead.
    public func zeroPage(_ address: PhysicalAddress) {
        pointer(to: address).zeroWords(bytes: Int(pageSize))
    }
}

/// A page frame: the physical page with number `number` (address / 4096).
public struct PageFrame: Equatable, Comparable, Sendable {
    public var number: UInt64

    public init(number: UInt64) { self.number = number }
    public init(containing address: PhysicalAddress) { number = address.value >> pageShift }

    public var address: PhysicalAddress { PhysicalAddress(number << pageShift) }

    public static func < (lhs: PageFrame, rhs: PageFrame) -> Bool { lhs.number < rhs.number }
}

extension PhysicalAddress {
    public var isPageAligned: Bool { value & (pageSize - 1) == 0 }
}
