// The MMU's configuration (Arm ARM D8.2, D19.2): memory attributes (MAIR_EL1), translation
// control (TCR_EL1), system control (SCTLR_EL1), TLB maintenance, and the switch from physical
// addressing to the kernel's linear map.

import AArch64

enum MMU {
    /// MAIR_EL1: one attribute byte per `MemoryType` index.
    static let memoryAttributes: UInt64 =
        0x00 << (8 * UInt64(MemoryType.deviceStrict.rawValue))        // Device-nGnRnE
        | 0x04 << (8 * UInt64(MemoryType.device.rawValue))            // Device-nGnRE
        | 0x44 << (8 * UInt64(MemoryType.normalNonCacheable.rawValue)) // Normal, non-cacheable
        | 0xFF << (8 * UInt64(MemoryType.normal.rawValue))            // Normal, write-back RW-allocate

    /// The physical address size the CPU implements (ID_AA64MMFR0_EL1.PARange, bits [3:0]).
    static var physicalAddressRange: UInt64 { aarch64_read_id_aa64mmfr0() & 0xF }

    static var physicalAddressBits: Int {
        switch physicalAddressRange {
        case 0: return 32
        case 1: return 36
        case 2: return 40
        case 3: return 42
        case 4: return 44
        case 5: return 48
        default: return 52
        }
    }

    /// 16-bit ASIDs when the CPU has them (ID_AA64MMFR0_EL1.ASIDBits, bits [7:4] = 2).
    static var hasSixteenBitASIDs: Bool { (aarch64_read_id_aa64mmfr0() >> 4) & 0xF == 2 }

    /// TCR_EL1: 48-bit virtual addresses in both halves (T0SZ = T1SZ = 16), 4 KiB granules,
    /// write-back cacheable inner-shareable walks, the CPU's full physical range (IPS), 16-bit ASIDs
    /// when implemented, and the top byte of upper-half data addresses ignored (TBI1). `lowerHalfEnabled: false` sets EPD0 so no TTBR0 walk happens at all.
    static func translationControl(lowerHalfEnabled: Bool) -> UInt64 {
        var value: UInt64 = 16                  // T0SZ
        value |= 0b01 << 8 | 0b01 << 10         // IRGN0, ORGN0: write-back, write-allocate
        value |= 0b11 << 12                     // SH0: inner shareable
        value |= 0b00 << 14                     // TG0: 4 KiB
        value |= 16 << 16                       // T1SZ
        value |= 0b01 << 24 | 0b01 << 26        // IRGN1, ORGN1
        value |= 0b11 << 28                     // SH1
        value |= 0b10 << 30                     // TG1: 4 KiB
        value |= min(physicalAddressRange, 5) << 32 // IPS, at most 48 bits without FEAT_LPA
        if hasSixteenBitASIDs { value |= 1 << 36 } // AS
        value |= 1 << 38                        // TBI1: the heap's tag-0x00 alias (PhysicalWindow)
        if !lowerHalfEnabled { value |= 1 << 7 }   // EPD0
        return value
    }

    /// SCTLR_EL1: RES1 bits, MMU (M), data and instruction caches (C, I), stack alignment checks
    /// at EL1 and EL0 (SA, SA0), and WXN so that no writable mapping is ever executable.
    static let systemControl: UInt64 = 0x30D0_0800 | 1 << 0 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 12 | 1 << 19

    /// Turns the MMU on with `kernelRoot` in TTBR1 and `identityRoot` (the kernel text mapped at
    /// its physical address) in TTBR0, and continues at kernel_main_high in the linear map.
    static func enterLinearMap(kernelRoot: PhysicalAddress, identityRoot: PhysicalAddress,
                               deviceTree: UInt, entryLevel: UInt, loadAddress: UInt) -> Never {
        var configuration = InlineArray<6, UInt64>(repeating: 0)
        configuration[0] = identityRoot.value
        configuration[1] = kernelRoot.value
        configuration[2] = memoryAttributes
        configuration[3] = translationControl(lowerHalfEnabled: true)
        configuration[4] = systemControl
        configuration[5] = PhysicalWindow.linearMapBase
        // Only the six-word configuration is read; pass its address as a plain pointer.
        withUnsafePointer(to: &configuration) { pointer in
            enter_linear_map(UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt64.self),
                             UInt64(deviceTree), UInt64(entryLevel), UInt64(loadAddress))
        }
    }

    /// Lets TTBR0 walks happen again, for user address spaces; `emptyRoot` (an all-invalid table)
    /// is what TTBR0 holds whenever no process runs.
    static func enableLowerHalf(emptyRoot: PhysicalAddress) {
        aarch64_write_ttbr0(emptyRoot.value)
        aarch64_write_tcr(translationControl(lowerHalfEnabled: true))
        aarch64_isb()
        aarch64_tlbi_vmalle1()
        aarch64_dsb_ish()
        aarch64_isb()
    }

    /// Stops all TTBR0 walks (the boot identity map) until user address spaces exist.
    static func disableLowerHalf() {
        aarch64_write_tcr(translationControl(lowerHalfEnabled: false))
        aarch64_write_ttbr0(0)
        aarch64_isb()
        aarch64_tlbi_vmalle1()
        aarch64_dsb_ish()
        aarch64_isb()
    }
}

/// TLB maintenance for kernel (global) mappings, shared by every CPU in the inner shareable
/// domain: TLBI VAAE1IS invalidates the page for all ASIDs, walk-cache entries included.
struct KernelTranslationMaintenance: TranslationMaintenance {
    func publishTableWrites() { aarch64_dsb_ishst() }

    func invalidate(_ address: VirtualAddress) {
        aarch64_dsb_ishst()
        aarch64_tlbi_vaae1is((address.value >> pageShift) & 0x0000_0FFF_FFFF_FFFF)
        aarch64_dsb_ish()
        aarch64_isb()
    }

    /// Kernel entries are global, so nothing narrower than every entry covers them all.
    func invalidateAll() {
        aarch64_dsb_ishst()
        aarch64_tlbi_vmalle1is()
        aarch64_dsb_ish()
        aarch64_isb()
    }
}
