// The running CPU: identity (MIDR, MPIDR), exception level, its interrupt mask, waiting, and
// stopping it.

import AArch64

enum CPU {
    static var identity: CPUIdentity { CPUIdentity(mainID: aarch64_read_midr()) }
    static var affinity: CPUAffinity { CPUAffinity(multiprocessorID: aarch64_read_mpidr()) }

    /// The largest block of memory a cache line write-back can touch, in bytes: CTR_EL0.CWG,
    /// log2 of the size in words; 0 means not reported, so the architecture's maximum, 2 KiB.
    static var cacheWritebackGranule: Int {
        let log2Words = (aarch64_read_cache_type() >> 24) & 0xF
        return log2Words == 0 ? 2048 : 4 << Int(log2Words)
    }

    /// Instructions written as data to kernel addresses are made visible to instruction fetches on
    /// every CPU in two steps: this one for each range written, then `invalidateInstructionCaches`
    /// once. This one cleans each data cache line of `[start, start + size)` to the point of
    /// unification (CTR_EL0.DminLine gives the smallest line, so none is skipped), four a step;
    /// nothing where CTR_EL0.IDC says the instruction side sees the data side there without it.
    static func cleanToPointOfUnification(_ start: UnsafeRawPointer, size: Int) {
        let cacheType = aarch64_read_cache_type()
        guard cacheType & (1 << 28) == 0 else { return }
        let dataLine = UInt64(4) << ((cacheType >> 16) & 0xF)
        let first = UInt64(UInt(bitPattern: start))
        let end = first &+ UInt64(size)
        var line = first & ~(dataLine - 1)
        while line &+ 3 &* dataLine < end {
            aarch64_dc_cvau(line)
            aarch64_dc_cvau(line &+ dataLine)
            aarch64_dc_cvau(line &+ 2 &* dataLine)
            aarch64_dc_cvau(line &+ 3 &* dataLine)
            line &+= 4 &* dataLine
        }
        while line < end {
            aarch64_dc_cvau(line)
            line &+= dataLine
        }
    }

    /// The second step: once the cleaning is complete (DSB), every instruction cache of the
    /// inner shareable domain invalidated at once (IC IALLUIS), where a line at a time would be
    /// 64 instructions a page; skipped where CTR_EL0.DIC says instruction caches need no
    /// invalidation for this. Then this CPU's pipeline is resynchronized; another CPU's is at its
    /// next exception return.
    static func invalidateInstructionCaches() {
        aarch64_dsb_ish()
        if aarch64_read_cache_type() & (1 << 29) == 0 {
            aarch64_ic_ialluis()
            aarch64_dsb_ish()
        }
        aarch64_isb()
    }

    /// Cleans the data cache lines covering `[start, start + size)` to the point of coherency
    /// (DC CVAC), for memory another CPU will read with its caches off.
    static func cleanToPointOfCoherency(_ start: UnsafeRawPointer, size: Int) {
        forEachDataLine(start, size: size) { aarch64_dc_cvac($0) }
    }

    /// Cleans and invalidates the data cache lines covering `[start, start + size)` to the point
    /// of coherency (DC CIVAC): what was written through the cacheable linear map reaches memory,
    /// and no line stays to be written back over a device's data later, or read in its place.
    static func flushToPointOfCoherency(_ start: UnsafeRawPointer, size: Int) {
        forEachDataLine(start, size: size) { aarch64_dc_civac($0) }
    }

    /// `maintain` with the address of each data cache line (CTR_EL0.DminLine) covering
    /// `[start, start + size)`, then a full-system barrier.
    @inline(__always)
    private static func forEachDataLine(_ start: UnsafeRawPointer, size: Int, _ maintain: (UInt64) -> Void) {
        let dataLine = UInt64(4) << ((aarch64_read_cache_type() >> 16) & 0xF)
        let first = UInt64(UInt(bitPattern: start))
        var line = first & ~(dataLine - 1)
        while line < first + UInt64(size) {
            maintain(line)
            line += dataLine
        }
        aarch64_dsb_sy()
    }

    /// Makes this CPU's stores so far visible to every CPU before any store after it (DSB ISHST).
    @inline(__always)
    static func publishStores() { aarch64_dsb_ishst() }

    /// Writes zeros over `[start, start + size)` of Normal memory, both multiples of 4 KiB. DC ZVA
    /// zeroes a whole block per instruction (DCZID_EL0.BS gives log2 of its size in words, at most
    /// 2 KiB, so a page is always a whole number of blocks); where DCZID_EL0.DZP forbids it, word
    /// stores do.
    static func zeroPages(_ start: UnsafeMutableRawPointer, size: Int) {
        let identification = aarch64_read_dczid()
        let first = UInt64(UInt(bitPattern: start))
        let end = first + UInt64(size)
        if identification & 0x10 == 0 {
            let block = UInt64(4) << (identification & 0xF)
            var address = first
            // Eight blocks a step where a page holds at least eight (blocks of up to 512 bytes;
            // 64 on the usual cores): an eighth of the loop's tests.
            if block <= 512 {
                while address < end {
                    aarch64_dc_zva(address)
                    aarch64_dc_zva(address &+ block)
                    aarch64_dc_zva(address &+ 2 &* block)
                    aarch64_dc_zva(address &+ 3 &* block)
                    aarch64_dc_zva(address &+ 4 &* block)
                    aarch64_dc_zva(address &+ 5 &* block)
                    aarch64_dc_zva(address &+ 6 &* block)
                    aarch64_dc_zva(address &+ 7 &* block)
                    address &+= 8 &* block
                }
            }
            while address < end {
                aarch64_dc_zva(address)
                address += block
            }
        } else {
            start.zeroWords(bytes: size)
        }
    }

    /// CurrentEL.EL, bits [3:2].
    static var exceptionLevel: UInt64 { (aarch64_read_current_el() >> 2) & 0x3 }

    /// Privileged Access Never (FEAT_PAN, ID_AA64MMFR1_EL1.PAN): with it set, a kernel access to a
    /// user-accessible page faults, so only the explicit user-copy routines reach user memory.
    /// SCTLR_EL1.SPAN is cleared so every exception entry sets PSTATE.PAN again.
    static func enablePrivilegedAccessNever() -> Bool {
        guard (aarch64_read_id_aa64mmfr1() >> 20) & 0xF != 0 else { return false }
        aarch64_write_sctlr(aarch64_read_sctlr() & ~(1 << 23))
        aarch64_set_pan()
        return true
    }

    /// Waits for interrupts forever with them unmasked: the idle loop.
    static func idle() -> Never {
        aarch64_enable_interrupts()
        while true { aarch64_wfi() }
    }

    /// DAIF, the exception mask bits, as they are now.
    @inline(__always)
    static var interruptMask: UInt64 { aarch64_read_daif() }

    /// Masks IRQs; returns the mask as it was, for `restoreInterruptMask`.
    @inline(__always)
    static func maskInterrupts() -> UInt64 {
        let mask = aarch64_read_daif()
        aarch64_disable_interrupts()
        return mask
    }

    @inline(__always)
    static func restoreInterruptMask(_ mask: UInt64) { aarch64_write_daif(mask) }

    @inline(__always)
    static func disableInterrupts() { aarch64_disable_interrupts() }

    @inline(__always)
    static func enableInterrupts() { aarch64_enable_interrupts() }

    /// Unmasks IRQs for a moment, if they are masked, so that one pending is taken here and now.
    /// (The ISB makes the unmasking take effect before the mask goes back on.)
    static func takePendingInterrupts() {
        guard aarch64_read_daif() & (1 << 7) != 0 else { return }
        aarch64_enable_interrupts()
        aarch64_isb()
        aarch64_disable_interrupts()
    }

    /// Sleeps until an interrupt is pending (WFI).
    @inline(__always)
    static func waitForInterrupt() { aarch64_wfi() }

    /// The frame pointer (x29) of the caller, where a backtrace starts.
    @inline(__always)
    static var framePointer: UInt64 { aarch64_frame_pointer() }

    /// Starts the cycle counter and event counter 0 and lets EL0 read them (PMUSERENR_EL0.EN and
    /// .CR); event counter 0 counts instructions retired (event 0x08, INST_RETIRED; QEMU
    /// implements it under icount, where, unlike the cycle counter, it stands still while the CPU
    /// waits in WFI): for the user-space benchmarks. Remembered, so that the CPUs that join later
    /// allow it too (each CPU has its own counters and enables).
    static func allowUserCounters() {
        aarch64_write_pmevtyper0(0x08)
        aarch64_write_pmcr(aarch64_read_pmcr() | 1 | 1 << 6)                    // E, LC (64-bit cycles)
        aarch64_write_pmcntenset(aarch64_read_pmcntenset() | 1 | 1 << 31)      // event counter 0, cycles
        aarch64_write_pmuserenr(0b101)
        userCountersAllowed = true
    }
    /// Whether `allowUserCounters` ran on the boot CPU. Written once at boot (startUserSpace),
    /// before the other CPUs join the scheduler and read it to do the same.
    nonisolated(unsafe) static var userCountersAllowed = false

    /// Runs `body` with IRQs masked, then restores the mask as it was: for a step that must be
    /// over before an interrupt can switch to another thread.
    static func withInterruptsMasked<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        let mask = aarch64_read_daif()
        aarch64_disable_interrupts()
        defer { aarch64_write_daif(mask) }
        return try body()
    }

    /// Masks debug, SError, IRQ and FIQ: nothing may interrupt what follows.
    @inline(__always)
    static func maskAllExceptions() { aarch64_mask_interrupts() }

    /// Masks every exception and sleeps for good. Secondary cores only idle (they run no
    /// threads), so stopping this one stops the machine's work. WFI, not WFE: WFE may return at once
    /// (an emulator treats it as a yield), turning the stop into a spin. A masked interrupt that
    /// is pending still ends WFI, so the timer, the one source that keeps firing, is stopped first.
    static func halt() -> Never {
        maskAllExceptions()
        aarch64_write_timer_control(0)
        while true { aarch64_wfi() }
    }
}
