// The Arm generic timer as this CPU sees it: the system counter (CNTPCT_EL0, CNTFRQ_EL0) and the
// EL1 physical timer (CNTP_CVAL_EL0, CNTP_CTL_EL0). The clock (interrupts/Clock.swift) decides
// what to program; this is how.

import AArch64

enum GenericTimer {
    /// CNTP_CTL_EL0.ENABLE; IMASK (bit 1) clear, so the timer raises its interrupt.
    static let controlEnable: UInt64 = 1 << 0

    /// The free-running system counter.
    @inline(__always)
    static var count: UInt64 { aarch64_read_physical_count() }

    /// The counter's frequency in Hz, as the firmware set it.
    static var frequency: UInt64 { aarch64_read_counter_frequency() }

    /// The counter value at which the timer fires next.
    @inline(__always)
    static func setCompare(_ value: UInt64) { aarch64_write_timer_compare(value) }

    /// CNTP_CTL_EL0.ISTATUS: the timer condition is met (its interrupt is pending unless masked).
    static let controlStatus: UInt64 = 1 << 2

    /// No EL0 access to the counters or the timers (CNTKCTL_EL1 all zero; its reset value is
    /// unknown, and firmware may leave it open): a program that could stop this CPU's timer would
    /// stop its tick and every deadline. User space reads the time with the `clock` call. Each
    /// CPU, once.
    static func closeToUserSpace() { aarch64_write_timer_user_access(0) }

    /// Starts the timer with its interrupt unmasked.
    static func enable() { aarch64_write_timer_control(controlEnable) }

    /// Whether the compare value has been reached.
    static var hasFired: Bool { aarch64_read_timer_control() & controlStatus != 0 }
}
