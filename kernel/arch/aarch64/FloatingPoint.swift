// Lazy FP/SIMD switching. A CPU's registers hold one thread's FP state (its save area is that
// CPU's `ownerArea`, in its per-CPU block); a switch to any other thread only arms the trap
// (CPACR_EL1.FPEN = EL0 traps), and the first FP/SIMD instruction that thread executes traps to
// `claim`: the owner's registers are saved, the thread's restored, and the instruction runs
// again. Threads that never touch FP/SIMD, like most servers, cost nothing. Save areas are 544
// bytes, 16-byte aligned: q0-q31, FPCR, FPSR, and the word a switch on a CPU alone writes to
// CPACR_EL1 (FP_STATE_SIZE, include/Layouts.h).

import AArch64

enum LazyFloatingPoint {
    static let saveAreaBytes = Int(FP_STATE_SIZE)

    /// One CPU's FP/SIMD registers and trap, in its per-CPU block.
    struct CPUState {
        /// The save area of the thread whose state the registers hold (an address, not a
        /// reference, so that a switch costs no reference counting).
        var ownerArea: UnsafeMutableRawPointer?
        /// Whether EL0's FP/SIMD instructions trap now (CPACR_EL1.FPEN), for the switches of a
        /// multiprocessor, which write the register only when that changes
        /// (`switchedCarefully`). One CPU alone writes it at every switch and keeps nothing.
        var trapArmed = false
        var restores: UInt64 = 0
    }

    static let trapEL0: UInt64 = 0b01 << 20
    static let noTraps: UInt64 = 0b11 << 20

    /// User code may use FP/SIMD from now on, starting trapped. CPACR_EL1 is written whole: FPEN
    /// only, no SVE, SME or trace traps that could linger from firmware. Also where a CPU starts
    /// switching the multiprocessor way (`switchedCarefully`), which trusts `trapArmed`: the
    /// switches of one CPU do not keep it, so the boot CPU arms the trap again then, before any
    /// thread of user space runs (`Scheduler.startMultiprocessing`).
    static func start() {
        aarch64_write_cpacr(trapEL0)
        aarch64_isb()
        PerCPU.current.floatingPoint.trapArmed = true
    }

    /// A new save area: the registers zero (a thread starts with nothing of another's), and the
    /// trap armed, as its thread owns no CPU's registers. The word after the trap word is padding,
    /// which nothing reads.
    static func prepare(_ area: UnsafeMutableRawPointer) {
        area.zeroWords(bytes: Int(FP_STATE_TRAP))
        setTrap(trapEL0, in: area)
    }

    /// A switch on a CPU that runs alone, to the thread whose save area is `area` (every thread
    /// has one, the idle thread too): the trap armed unless the thread owns the registers. That
    /// answer is kept in the area itself (`FP_STATE_TRAP`), set whenever a CPU's owner changes
    /// (`claim`, `leave`), so the switch loads one word and writes it, with no compare. The
    /// register is written at every switch: a compare first would cost more than the write it
    /// saves, as a thread that uses FP/SIMD and one that does not, handing the CPU to each other,
    /// flip it at every switch. `cpu` is this CPU's block.
    ///
    /// No ISB follows the write: FPEN is only ever 0b01 or 0b11, neither of which traps EL1, so
    /// the change matters only to EL0, and the way back there is an eret, which synchronizes
    /// (SCTLR_EL1.EOS is set).
    @inline(__always)
    static func switched(to area: UnsafeMutableRawPointer, on cpu: UnsafeMutablePointer<PerCPU>) {
        let trap = area.load(fromByteOffset: Int(FP_STATE_TRAP), as: UInt64.self)
        #if KERNEL_DEBUG
        if trap != (area == cpu.pointee.floatingPoint.ownerArea ? noTraps : trapEL0) {
            kernelPanic("an FP/SIMD save area's trap word disagrees with its CPU's owner")
        }
        #endif
        aarch64_write_cpacr(trap)
    }

    /// Whether `area`'s thread runs with EL0's FP/SIMD trapped (`switched`).
    private static func setTrap(_ value: UInt64, in area: UnsafeMutableRawPointer) {
        area.storeAligned(value, toByteOffset: Int(FP_STATE_TRAP))
    }

    /// `switched` on a multiprocessor (no ISB either, for the same reason).
    static func switchedCarefully(to area: UnsafeMutableRawPointer?) {
        let trap = area != PerCPU.current.floatingPoint.ownerArea
        guard trap != PerCPU.current.floatingPoint.trapArmed else { return }
        aarch64_write_cpacr(trap ? trapEL0 : noTraps)
        PerCPU.current.floatingPoint.trapArmed = trap
    }

    /// The FP/SIMD trap from EL0: hands this CPU's registers to the thread whose save area is
    /// `area`.
    static func claim(for area: UnsafeMutableRawPointer) {
        aarch64_write_cpacr(noTraps)
        aarch64_isb()
        PerCPU.current.floatingPoint.trapArmed = false
        if let previous = PerCPU.current.floatingPoint.ownerArea, previous != area {
            fp_state_save(previous)
            setTrap(trapEL0, in: previous)
        }
        fp_state_restore(area)
        PerCPU.current.floatingPoint.ownerArea = area
        setTrap(noTraps, in: area)
        PerCPU.current.floatingPoint.restores += 1
    }

    /// With more than one CPU, a thread switched away from may next run on another CPU: if it
    /// owns this CPU's registers, they are saved to its area and this CPU forgets it, so its
    /// next FP/SIMD instruction, wherever it runs, traps and restores from memory. So no CPU
    /// ever owns the area of a thread that is not running on it.
    @inline(__always)
    static func leave(_ area: UnsafeMutableRawPointer) {
        guard PerCPU.current.floatingPoint.ownerArea == area else { return }
        fp_state_save(area)
        PerCPU.current.floatingPoint.ownerArea = nil
        setTrap(trapEL0, in: area)
    }

    /// A save area about to be freed no longer owns the registers. Only this CPU's can: with
    /// more than one CPU, no other CPU keeps the area of a thread that is not running (`leave`).
    static func forget(_ area: UnsafeMutableRawPointer) {
        if PerCPU.current.floatingPoint.ownerArea == area { PerCPU.current.floatingPoint.ownerArea = nil }
    }
}
