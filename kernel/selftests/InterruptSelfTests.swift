// Interrupt, timer and system call self-tests, run in test mode after interrupts are on. Every
// line reports what was measured.

import AArch64
import Synchronization

/// Set by the self-test's deadline handler: the counter value when the deadline fired.
let deadlineFiredAt = Atomic<UInt64>(0)
/// Counted by the self-test's handler of a software-generated interrupt.
let softwareInterruptsSeen = Atomic<UInt64>(0)

func runInterruptSelfTests() {
    var run = SelfTestRun(prefix: "Interrupt Test")
    guard Interrupts.controller != nil, Clock.period > 0 else {
        run.check(false, "Interrupt controller and timer running")
        return
    }

    // Masked: a timer interrupt that becomes pending is not taken until unmasked.
    // The emulator raises the timer's line from a host timer, which can lag the counter when the
    // host is busy: both waits are bounded by 50 periods, not fixed.
    aarch64_disable_interrupts()
    let ticksMasked = Clock.ticks
    let waitUntil = Clock.now + 2 * Clock.period
    while Clock.now < waitUntil {}
    let giveUp = Clock.now + 50 * Clock.period
    while !GenericTimer.hasFired && Clock.now < giveUp {}
    let pending = GenericTimer.hasFired
    let ticksWhileMasked = Clock.ticks - ticksMasked
    let masked = aarch64_read_daif() & (1 << 7) != 0
    aarch64_enable_interrupts()
    let deliveredBy = Clock.now + 50 * Clock.period
    while Clock.now < deliveredBy {
        // Masking is a compiler barrier too: the tick count is read afresh each time.
        aarch64_disable_interrupts()
        let seen = Clock.ticks - ticksMasked
        aarch64_enable_interrupts()
        if seen >= 2 { break }
    }
    let ticksAfterUnmask = Clock.ticks - ticksMasked
    run.check(masked && pending && ticksWhileMasked == 0 && ticksAfterUnmask >= 2,
              "Interrupts disabled (timer pending for \(2 * 1000 / Clock.tickHz) ms while masked: \(ticksWhileMasked) ticks taken; \(ticksAfterUnmask) caught up on unmask)")

    // System calls from EL1 through the SVC path: numbers, arguments, results, unknown numbers.
    let callsBefore = SystemCalls.count
    let null = aarch64_system_call(SystemCallNumber.null.rawValue, 0, 0, 0)
    let before = Clock.uptime
    let clock = aarch64_system_call(SystemCallNumber.clock.rawValue, 0, 0, 0)
    let after = Clock.uptime
    let unknown = aarch64_system_call(999, 0, 0, 0)
    run.check(null.status == systemCallSuccess
              && clock.status == systemCallSuccess && before <= clock.value0 && clock.value0 <= after
              && clock.value1 == Clock.frequency
              && unknown.status == KernelError.unknownSystemCall.rawValue && SystemCalls.count == callsBefore + 3,
              "System call handling working (null: success; clock: \(clock.value0) ticks at \(clock.value1) Hz; #999: unknown system call)")

    // A software-generated interrupt to this CPU goes through acknowledge and end-of-interrupt.
    let sgi: UInt32 = 1
    let registered = Interrupts.register(sgi) { _ in softwareInterruptsSeen.wrappingAdd(1, ordering: .relaxed) }
    let seenBefore = softwareInterruptsSeen.load(ordering: .relaxed)
    Interrupts.controller?.sendToSelf(sgi)
    let sgiDeadline = Clock.now + Clock.period
    while softwareInterruptsSeen.load(ordering: .relaxed) == seenBefore && Clock.now < sgiDeadline {}
    Interrupts.unregister(sgi)
    run.check(registered && softwareInterruptsSeen.load(ordering: .relaxed) == seenBefore + 1 && Interrupts.count(of: sgi) == 1,
              "Software-generated interrupt \(sgi) delivered by the GICv\(Interrupts.controller?.version ?? 0), acknowledged and ended")

    // The periodic tick over 100 ms of counter time.
    // Both ends are read when no period is due but untaken: a busy host can deliver the timer
    // interrupt late, and a tick counted just after a reading belongs to the time before it.
    let (startTicks, startCount) = settledTickReading()
    let window = Clock.ticks(milliseconds: 100)
    while Clock.now - startCount < window { aarch64_wfi() }
    let (endTicks, endCount) = settledTickReading()
    let counted = endTicks - startTicks
    let elapsed = endCount - startCount
    let expected = elapsed / Clock.period
    run.check(counted + 1 >= expected && counted <= expected + 1 && counted > 0,
              "Timer interrupts working (\(startTicks)\u{2192}\(endTicks): \(counted) ticks in \(elapsed * 1000 / Clock.frequency) ms at \(Clock.tickHz) Hz)")

    // A one-shot deadline half a period after a tick: the compare register is programmed for the
    // deadline itself, ahead of the next tick, and the deadline fires no earlier than due.
    // (The deadline is placed between now and the next tick; if the host delayed this code so
    // that no room is left, it waits for the next tick and tries again.)
    deadlineFiredAt.store(0, ordering: .relaxed)
    Clock.deadlineHandler = { _ in deadlineFiredAt.store(Clock.now, ordering: .relaxed) }
    var armed = false
    var deadline: UInt64 = 0
    var programmed: UInt64 = 0
    for _ in 0..<10 where !armed {
        let tickSeen = Clock.ticks
        while Clock.ticks == tickSeen { aarch64_wfi() }
        aarch64_disable_interrupts()
        let now = Clock.now
        deadline = Clock.nextTick - Clock.period / 4
        if deadline > now + Clock.period / 8 {
            do throws(KernelError) { try Clock.addDeadline(at: deadline, token: 7); armed = true } catch {}
            programmed = aarch64_read_timer_compare()
        }
        aarch64_enable_interrupts()
    }
    let armedAt = Clock.now
    while deadlineFiredAt.load(ordering: .relaxed) == 0 && Clock.now - armedAt < 4 * Clock.period { aarch64_wfi() }
    Clock.deadlineHandler = nil
    let firedAt = deadlineFiredAt.load(ordering: .relaxed)
    let lateness = firedAt >= deadline ? firedAt - deadline : 0
    run.check(armed && programmed == deadline && firedAt >= deadline && Clock.pendingDeadlines == 0,
              "One-shot deadline between ticks programmed into CNTP_CVAL and fired \(lateness * 1_000_000 / Clock.frequency) us after it was due")

    // One consistent snapshot: a tick between reads would make the figures disagree.
    aarch64_disable_interrupts()
    let ticks = Clock.ticks
    let handled = Interrupts.handled
    let timerCount = Interrupts.count(of: Clock.interrupt)
    let softwareCount = Interrupts.count(of: sgi)
    let spurious = Interrupts.spurious
    let systemCalls = SystemCalls.count
    aarch64_enable_interrupts()
    log("Interrupt Test: \(run.passed) passed, \(run.failed) failed")
    log("Interrupt Test: === Interrupt Statistics ===")
    log("Interrupt Test: Timer ticks: \(ticks)")
    log("Interrupt Test: Interrupts handled: \(handled) (timer \(timerCount), software \(softwareCount)), spurious: \(spurious)")
    log("Interrupt Test: System calls: \(systemCalls)")
}

/// The tick count and the counter, read together (IRQs masked) at a moment when every period
/// that has passed has been counted; if one is due, the interrupt is let in first.
private func settledTickReading() -> (ticks: UInt64, count: UInt64) {
    for _ in 0..<100 {
        aarch64_disable_interrupts()
        let count = Clock.now
        let ticks = Clock.ticks
        let pending = Clock.pendingTicks(at: count)
        aarch64_enable_interrupts()
        if pending == 0 { return (ticks, count) }
        aarch64_wfi()
    }
    return (Clock.ticks, Clock.now) // never settled: the check reports the miscount
}
