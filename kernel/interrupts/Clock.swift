// Time: the EL1 physical generic timer (Arm ARM D11) drives a periodic tick (100 Hz unless
// `tick=N` on the command line says otherwise) and one-shot deadlines from a timer queue, for
// sleeps and timeouts. The compare value is always the sooner of the next tick and the earliest
// deadline, so deadlines fire on time rather than at the next tick. Each CPU has its own timer,
// so the tick count and the next tick are per-CPU; the deadline queue is shared, under `lock`,
// and only the boot CPU's timer serves it. Every CPU's tick charges its running thread's slice.
// The kernel log is delivered from the boot CPU's tick.

/// Called with interrupts masked when a deadline armed with `token` expires.
typealias DeadlineHandler = @convention(c) (UInt64) -> Void

enum Clock {
    /// One CPU's tick, in its per-CPU block.
    struct CPUState {
        /// Tick periods this CPU's timer has counted.
        var ticks: UInt64 = 0
        /// The counter value of this CPU's next tick.
        var nextTick: UInt64 = 0
    }

    // Written once at boot by `start`, before any other core runs.
    nonisolated(unsafe) static var frequency: UInt64 = 0
    nonisolated(unsafe) static var tickHz: UInt64 = 100
    nonisolated(unsafe) static var bootCount: UInt64 = 0
    nonisolated(unsafe) static var period: UInt64 = 0
    nonisolated(unsafe) static var interrupt: UInt32 = 0
    /// Under `lock`. On the heap: an inline queue would be copied whole on access.
    nonisolated(unsafe) static var queue: UnsafeMutablePointer<TimerQueue>?
    /// Set at boot, before any other core runs (the self-tests set their own first).
    nonisolated(unsafe) static var deadlineHandler: DeadlineHandler?
    /// `queue` and this CPU's compare value. A leaf in the lock order (LockOrder.deadlines):
    /// deadline handlers run after it is released.
    static let lock = SpinLock(.deadlines)

    /// Tick periods this CPU has counted.
    static var ticks: UInt64 { PerCPU.current.clock.ticks }
    /// The counter value of this CPU's next tick.
    static var nextTick: UInt64 { PerCPU.current.clock.nextTick }

    static var now: UInt64 { GenericTimer.count }

    /// Counter ticks since `start`.
    static var uptime: UInt64 { now - bootCount }

    /// The fastest tick `tick=` may ask for: a faster one leaves a CPU little time but for its own
    /// interrupt (at the counter's frequency the next tick would be due before this one returned).
    static let maximumHz: UInt64 = 10_000

    static func start(interrupt id: UInt32, hz: UInt64) -> Bool {
        frequency = GenericTimer.frequency
        guard frequency > 0, hz > 0, hz <= maximumHz, hz <= frequency else { return false }
        tickHz = hz
        period = frequency / hz
        interrupt = id
        // The queue last, once its deadlines can fire: without it, a deadline is refused
        // (`addDeadline`) rather than armed and never met.
        guard Interrupts.register(id, handleInterrupt) else { return false }
        bootCount = now
        PerCPU.current.clock.nextTick = bootCount + period
        GenericTimer.setCompare(PerCPU.current.clock.nextTick)
        GenericTimer.enable()
        let storage = UnsafeMutablePointer<TimerQueue>.allocate(capacity: 1)
        storage.initialize(to: TimerQueue())
        queue = storage
        return true
    }

    /// A secondary CPU's tick, started on that CPU once `start` has run on the boot CPU. It counts
    /// and drives the scheduler's slices; deadlines and the kernel log stay with the boot CPU.
    static func startSecondaryTick() {
        PerCPU.current.clock.nextTick = now + period
        GenericTimer.setCompare(PerCPU.current.clock.nextTick)
        GenericTimer.enable()
    }

    /// A secondary CPU's timer interrupt: counts the periods that have passed and sets its
    /// compare value to the next one, touching nothing outside its per-CPU block. Returns how
    /// many periods it counted.
    @inline(never)
    static func countSecondaryTick() -> UInt64 {
        let periods = countPeriods(until: now)
        GenericTimer.setCompare(PerCPU.current.clock.nextTick)
        return periods
    }

    /// Counts the tick periods that have passed by `current` on this CPU (so that a late
    /// interrupt loses none) and moves its next tick past them.
    private static func countPeriods(until current: UInt64) -> UInt64 {
        var periods: UInt64 = 0
        while current >= PerCPU.current.clock.nextTick {
            periods += 1
            PerCPU.current.clock.nextTick += period
        }
        PerCPU.current.clock.ticks += periods
        return periods
    }

    /// Counter ticks in `milliseconds`.
    static func ticks(milliseconds: UInt64) -> UInt64 { frequency * milliseconds / 1000 }

    /// Counter ticks in `nanoseconds`, rounded down and capped at a quarter of the counter's
    /// range, so that `now` plus the result never wraps.
    static func ticks(forNanoseconds nanoseconds: UInt64) -> UInt64 {
        let (scaled, overflow) = nanoseconds.multipliedReportingOverflow(by: frequency)
        return overflow ? UInt64.max / 4 : min(scaled / 1_000_000_000, UInt64.max / 4)
    }

    /// Arms a one-shot deadline: `outOfMemory` when too many are pending (the queue has room for
    /// every thread's, so this does not happen), `deviceFailed` when the kernel runs without a
    /// tick (booted with `tick=0`, or no usable timer or interrupt controller), where no deadline
    /// would ever pass.
    static func addDeadline(at deadline: UInt64, token: UInt64) throws(KernelError) {
        try lock.withLock { () throws(KernelError) in
            guard let queue else { throw .deviceFailed }
            do throws(TimerQueue.Failure) {
                try queue.pointee.insert(deadline: deadline, token: token)
            } catch {
                throw .outOfMemory
            }
            reprogram()
        }
    }

    static func cancelDeadline(token: UInt64) {
        lock.withLock {
            _ = queue?.pointee.cancel(token: token)
            reprogram()
        }
    }

    static var pendingDeadlines: Int { lock.withLock { queue?.pointee.count ?? 0 } }

    /// Sets this CPU's compare value: its next tick or the earliest deadline, whichever is sooner.
    private static func reprogram() {
        var compare = PerCPU.current.clock.nextTick
        if let earliest = queue?.pointee.earliest, earliest.deadline < compare { compare = earliest.deadline }
        GenericTimer.setCompare(compare)
    }

    /// Tick periods that have passed by `now` but that the interrupt has not counted yet (it can
    /// be late when the host running the machine is busy). Read with IRQs masked.
    static func pendingTicks(at now: UInt64) -> UInt64 {
        guard period > 0, now >= nextTick else { return 0 }
        return (now - nextTick) / period + 1
    }

    /// The timer interrupt: counts every tick period that has passed (so a late interrupt does
    /// not lose ticks), fires due deadlines, and sets the next compare value.
    static let handleInterrupt: InterruptHandler = { _ in
        if PerCPU.current.index != 0 {
            Scheduler.tick(periods: Clock.countSecondaryTick())
            RequestedPanic.checkOnSecondary()
            return
        }
        let current = Clock.now
        RequestedPanic.check(current)
        let periods = Clock.countPeriods(until: current)
        var expired = InlineArray<8, UInt64>(repeating: 0)
        var count = 0
        Clock.lock.withLock {
            while count < 8, let entry = Clock.queue?.pointee.popExpired(now: current) {
                expired[count] = entry.token
                count += 1
            }
            Clock.reprogram()
        }
        if let handler = Clock.deadlineHandler {
            for index in 0..<count { handler(expired[index]) }
        }
        Scheduler.tick(periods: periods)
        // Lines the kernel queued for the console service since the last tick.
        KernelLog.deliverPending()
    }
}
