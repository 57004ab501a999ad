// Time in user programs: a reading of the system clock and the conversions between ticks and
// time, in one place. Portable (no system call here), so the host tests check the arithmetic.

/// A reading of the system clock: `ticks` since boot at `frequency` Hz (the `clock` call). The one
/// place user programs turn ticks into time and back: whole seconds and the rest are converted
/// apart, so that only a time too long for 64 bits overflows (it gives `UInt64.max`), and a
/// frequency of 0 (no reading) gives 0.
public struct ClockReading: Sendable {
    public let ticks: UInt64
    public let frequency: UInt64

    public init(ticks: UInt64, frequency: UInt64) {
        self.ticks = ticks
        self.frequency = frequency
    }

    /// `ticks` at `frequency` in units of which `perSecond` make a second (at most 10^9, a
    /// nanosecond), rounded down; `UInt64.max` when the time does not fit.
    public static func convert(_ ticks: UInt64, frequency: UInt64, perSecond: UInt64) -> UInt64 {
        guard frequency > 0 else { return 0 }
        let (whole, overflow) = (ticks / frequency).multipliedReportingOverflow(by: perSecond)
        // The remainder part: below frequency * perSecond / frequency, so it cannot overflow for
        // any frequency up to 2^64 / 10^9 (about 18 GHz).
        let (sum, carry) = whole.addingReportingOverflow(ticks % frequency * perSecond / frequency)
        return overflow || carry ? .max : sum
    }

    /// Time since boot.
    public var milliseconds: UInt64 { Self.convert(ticks, frequency: frequency, perSecond: 1000) }

    /// Time from `earlier` to this reading (0 if `earlier` is later).
    public func milliseconds(since earlier: ClockReading) -> UInt64 { elapsed(since: earlier, perSecond: 1000) }
    public func microseconds(since earlier: ClockReading) -> UInt64 { elapsed(since: earlier, perSecond: 1_000_000) }
    public func nanoseconds(since earlier: ClockReading) -> UInt64 { elapsed(since: earlier, perSecond: 1_000_000_000) }

    /// Ticks since the tick count `earlier` (of this clock), in units of which `perSecond` make a second.
    public func elapsed(sinceTicks earlier: UInt64, perSecond: UInt64) -> UInt64 {
        Self.convert(ticks >= earlier ? ticks - earlier : 0, frequency: frequency, perSecond: perSecond)
    }

    private func elapsed(since earlier: ClockReading, perSecond: UInt64) -> UInt64 {
        elapsed(sinceTicks: earlier.ticks, perSecond: perSecond)
    }

    /// The tick count `milliseconds` after this reading (`UInt64.max` past the end of time).
    public func adding(milliseconds: UInt64) -> UInt64 {
        let (sum, carry) = ticks.addingReportingOverflow(ticks(milliseconds: milliseconds))
        return carry ? .max : sum
    }

    /// How many ticks `milliseconds` last at this clock's frequency; `UInt64.max` when they do
    /// not fit.
    public func ticks(milliseconds: UInt64) -> UInt64 {
        let (whole, overflow) = (milliseconds / 1000).multipliedReportingOverflow(by: frequency)
        let (sum, carry) = whole.addingReportingOverflow(milliseconds % 1000 * frequency / 1000)
        return overflow || carry ? .max : sum
    }
}
