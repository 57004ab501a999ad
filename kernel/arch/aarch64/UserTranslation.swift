// The lower half of the address space, as the MMU sees it: which user address space TTBR0_EL1
// names, and the TLB maintenance of one address space. Processes and IPC switch spaces only
// through `TranslationBase.activate()`, and thread switches through `install()`.

import AArch64

/// A user address space as the MMU names it: the physical address of its root table tagged with
/// its ASID in bits 48-63 (TTBR0_EL1's format). `.none` stands for no space.
struct TranslationBase: Equatable {
    let value: UInt64

    static let none = TranslationBase(value: 0)

    init(value: UInt64) { self.value = value }

    init(root: PhysicalAddress, asid: UInt16) { value = root.value | UInt64(asid) << 48 }

    /// What TTBR0_EL1 holds on this CPU now.
    static var live: TranslationBase { TranslationBase(value: aarch64_read_ttbr0()) }

    var asid: UInt16 { UInt16(truncatingIfNeeded: value >> 48) }

    /// Makes user addresses translate through this space from the next instruction on. TLB
    /// entries are tagged with the ASID, so nothing needs invalidating.
    @inline(__always)
    func activate() {
        aarch64_write_ttbr0(value)
        aarch64_isb()
    }

    /// Makes user addresses translate through this space from the next context synchronization
    /// on, for a thread switch: no user address is used before it, which is either the `eret`
    /// to user space (SCTLR_EL1.EOS is set, so it synchronizes) or the ISB in `load_context`,
    /// before the next thread's kernel code runs; on a multiprocessor, an ISB also comes before
    /// the big kernel lock is let go on the way out (resume_user_frame_unlocking), as another
    /// CPU may then free the space this one had. Saves the switch an ISB of its own.
    @inline(__always)
    func install() {
        aarch64_write_ttbr0(value)
    }
}

/// TLB maintenance for one address space: by address within its ASID.
struct UserTranslationMaintenance: TranslationMaintenance {
    let asid: UInt16

    func publishTableWrites() { aarch64_dsb_ishst() }

    func invalidate(_ address: VirtualAddress) {
        aarch64_dsb_ishst()
        aarch64_tlbi_vae1is(UInt64(asid) << 48 | (address.value >> pageShift) & 0x0000_0FFF_FFFF_FFFF)
        aarch64_dsb_ish()
        aarch64_isb()
    }

    /// Drops every TLB entry of the ASID, on every core: before the ASID is used again, and
    /// once per batch when a large range is unmapped.
    func invalidateAll() { aarch64_tlbi_aside1is(UInt64(asid)) }
}
