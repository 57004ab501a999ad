// How the kernel reaches physical memory: directly while the MMU is off, then through the linear
// map, which places every physical address P at linearMapBase + P in the upper (TTBR1) half.
// The offset changes exactly once, in enter_linear_map; everything that outlives the switch
// stores physical addresses and translates on use.

import AArch64

enum PhysicalWindow {
    /// Start of the upper half with 48-bit virtual addresses (T1SZ = 16).
    static let linearMapBase: UInt64 = 0xFFFF_0000_0000_0000

    /// The same linear map seen through TCR_EL1.TBI1 (top byte ignored for data accesses): an
    /// upper-half address with its top byte cleared still translates through TTBR1, but as a
    /// signed number it is positive. The Embedded Swift runtime treats objects at negative
    /// addresses as immortal and never releases them, so heap blocks are handed out here.
    static let heapAliasBase: UInt64 = 0x00FF_0000_0000_0000

    static var offset: UInt64 { aarch64_physical_window_offset() }
    static var isLinearMapActive: Bool { offset != 0 }

    static func virtualAddress(of address: PhysicalAddress) -> UInt64 { address.value &+ offset }

    static func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(virtualAddress(of: address)))!
    }

    /// The physical address behind a pointer into the window.
    static func physicalAddress(of pointer: UnsafeMutableRawPointer) -> PhysicalAddress {
        PhysicalAddress(UInt64(UInt(bitPattern: pointer)) &- offset)
    }

    /// Fills `frame` with zeros (through the linear map, so as Normal memory).
    static func zero(_ frame: PageFrame) {
        CPU.zeroPages(pointer(to: frame.address), size: Int(pageSize))
    }

    static func heapPointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(address.value &+ heapAliasBase))!
    }

    /// The physical address behind a heap pointer; nil for pointers outside the heap alias.
    static func physicalAddress(ofHeapPointer pointer: UnsafeMutableRawPointer) -> PhysicalAddress? {
        let value = UInt64(UInt(bitPattern: pointer))
        guard value >= heapAliasBase, value >> 56 == 0 else { return nil }
        return PhysicalAddress(value - heapAliasBase)
    }
}

/// `PhysicalMemory` for the portable allocators and page tables.
struct LinearMap: PhysicalMemory {
    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        PhysicalWindow.pointer(to: address)
    }

    /// Cache-block zeroing (DC ZVA) needs Normal memory, which there is only once the MMU is
    /// on; before that, the tables of the first address space are zeroed word by word.
    func zeroPage(_ address: PhysicalAddress) {
        if PhysicalWindow.isLinearMapActive {
            CPU.zeroPages(PhysicalWindow.pointer(to: address), size: Int(pageSize))
        } else {
            PhysicalWindow.pointer(to: address).zeroWords(bytes: Int(pageSize))
        }
    }
}
