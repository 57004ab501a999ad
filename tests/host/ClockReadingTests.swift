import Testing
import UserClock

/// User programs' one conversion between clock ticks and time (userland/runtime/ClockReading.swift).
@Suite struct ClockReadingTests {
    /// QEMU's generic timer runs at 62.5 MHz; real boards often at 24 MHz or 1 GHz.
    static let frequencies: [UInt64] = [62_500_000, 24_000_000, 1_000_000_000, 1, 7]

    @Test func convertsLikeExactArithmetic() {
        for frequency in Self.frequencies {
            for ticks: UInt64 in [0, 1, frequency - 1, frequency, 3 * frequency + frequency / 2, 1 << 40] {
                for perSecond: UInt64 in [1000, 1_000_000, 1_000_000_000] {
                    let exact = UInt128(ticks) * UInt128(perSecond) / UInt128(frequency)
                    let expected = exact > UInt128(UInt64.max) ? UInt64.max : UInt64(exact)
                    #expect(ClockReading.convert(ticks, frequency: frequency, perSecond: perSecond) == expected)
                }
            }
        }
    }

    /// Tick counts past where ticks * 10^9 overflows (about 9.4 years at 62.5 MHz) still convert
    /// exactly while the time fits, and give `UInt64.max` once it does not.
    @Test func largeTickCountsDoNotOverflow() {
        let frequency: UInt64 = 62_500_000
        let ticks = UInt64.max / 2
        let reading = ClockReading(ticks: ticks, frequency: frequency)
        let start = ClockReading(ticks: 0, frequency: frequency)
        #expect(reading.milliseconds == UInt64(UInt128(ticks) * 1000 / UInt128(frequency)))
        #expect(reading.microseconds(since: start) == UInt64(UInt128(ticks) * 1_000_000 / UInt128(frequency)))
        #expect(reading.nanoseconds(since: start) == .max) // 1.5 * 10^20 ns
        #expect(reading.adding(milliseconds: .max) == .max)
    }

    @Test func elapsedTimeBetweenReadings() {
        let start = ClockReading(ticks: 1_000_000, frequency: 62_500_000)
        let later = ClockReading(ticks: 1_000_000 + 62_500 * 30, frequency: 62_500_000)
        #expect(later.milliseconds(since: start) == 30)
        #expect(later.microseconds(since: start) == 30_000)
        #expect(later.nanoseconds(since: start) == 30_000_000)
        // Readings out of order give 0, not a wrapped difference.
        #expect(start.milliseconds(since: later) == 0)
        #expect(later.elapsed(sinceTicks: later.ticks + 1, perSecond: 1000) == 0)
    }

    @Test func millisecondsToTicksAndBack() {
        for frequency in Self.frequencies {
            let reading = ClockReading(ticks: 5, frequency: frequency)
            for milliseconds: UInt64 in [0, 1, 999, 1000, 60_000, 1 << 40] {
                let ticks = reading.ticks(milliseconds: milliseconds)
                let exact = UInt128(milliseconds) * UInt128(frequency) / 1000
                #expect(ticks == (exact > UInt128(UInt64.max) ? .max : UInt64(exact)))
                #expect(reading.adding(milliseconds: milliseconds) == 5 + ticks)
            }
        }
    }

    @Test func noReadingGivesNoTime() {
        let none = ClockReading(ticks: 12345, frequency: 0)
        #expect(none.milliseconds == 0)
        #expect(none.nanoseconds(since: ClockReading(ticks: 0, frequency: 0)) == 0)
        #expect(none.ticks(milliseconds: 1000) == 0)
    }
}
