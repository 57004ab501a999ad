// Lazy FP/SIMD switching. A CPU's registers hold one thread's FP state (its save area is that
// CPU's `ownerArea`, in its per-CPU block); a switch to any other thread only arms the trap
// (CPACR_EL1.FPEN = EL0 traps), and the first FP/SIMD instruction that thread executes traps to
// `claim`: the owner's registers are saved, the thread's restored, and the instruction runs
// again. Threads that never touch FP/SIMD, like most servers, cost nothing. Save areas are 528
// bytes, 16-byte aligned: q0-q31, FPCR, FPSR.

import AArch64

enum LazyFloatingPoint {
    static let saveAreaBytes = 528

    /// One CPU's FP/SIMD registers and trap, in its per-CPU block.
    struct CPUState {
        /// The save area of the thread whose state the registers hold (an address, not a
        /// reference, so that a switch costs no reference counting).
        var ownerArea: UnsafeMutableRawPointer?
        /// Whether EL0's FP/SIMD instructions trap now (CPACR_EL1.FPEN), so a switch between
        /// threads that do not own the registers leaves the register alone.
        var trapping = false
        var restores: UInt64 = 0
    }

    static let trapEL0: UInt64 = 0b01 << 20
    static let noTraps: UInt64 = 0b11 << 20

    /// User code may use FP/SIMD from now on, starting trapped. CPACR_EL1 is written whole: FPEN
    /// only, no SVE, SME or trace traps that could linger from firmware.
    static func start() {
        aarch64_write_cpacr(trapEL0)
        aarch64_isb()
        PerCPU.current.floatingPoint.trapping = true
    }

    /// A switch to a thread whose save area is `area` (nil: a kernel-only thread).
    @inline(__always)
    static func switched(to area: UnsafeMutableRawPointer?) {
        let trap = area != PerCPU.current.floatingPoint.ownerArea
        guard trap != PerCPU.current.floatingPoint.trapping else { return }
        aarch64_write_cpacr(trap ? trapEL0 : noTraps)
        aarch64_isb()
        PerCPU.current.floatingPoint.trapping = trap
    }

    /// The FP/SIMD trap from EL0: hands this CPU's registers to the thread whose save area is
    /// `area`.
    static func claim(for area: UnsafeMutableRawPointer) {
        aarch64_write_cpacr(noTraps)
        aarch64_isb()
        PerCPU.current.floatingPoint.trapping = false
        if let previous = PerCPU.current.floatingPoint.ownerArea, previous != area { fp_state_save(previous) }
        fp_state_restore(area)
        PerCPU.current.floatingPoint.ownerArea = area
        PerCPU.current.floatingPoint.restores += 1
    }

    /// A save area about to be freed no longer owns the registers. (Threads run only on the boot
    /// CPU so far; once they move between CPUs, the owner to clear may be another CPU's.)
    static func forget(_ area: UnsafeMutableRawPointer) {
        if PerCPU.current.floatingPoint.ownerArea == area { PerCPU.current.floatingPoint.ownerArea = nil }
    }
}
