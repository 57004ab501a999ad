// Preemptive round-robin scheduling with priorities: one FIFO run queue per priority level, the
// highest non-empty level runs first, a thread runs for a time slice of timer ticks and then
// goes to the back of its queue. Blocking takes a thread off the queues until `wake`; the idle
// thread (the boot thread) runs when nothing else can, waiting in WFI. All of it is one CPU's
// state, in that CPU's per-CPU block (`PerCPU.current.scheduler`); every entry point runs with
// interrupts masked (exception context or the idle loop's masked sections).

import AArch64

enum Scheduler {
    static let priorityLevels = 4
    static let defaultPriority = 1
    /// Time slice in timer ticks (20 ms at 100 Hz).
    static let sliceTicks = 2

    struct Queue {
        var head: Thread?
        var tail: Thread?
    }

    /// One CPU's scheduling state, in its per-CPU block.
    struct CPUState {
        /// The running thread, not counted: every thread is held elsewhere while it runs (by its
        /// process, by `idle`, or by `dead` once it has ended), so a switch and the system call
        /// entry cost no reference counting.
        var running: Unmanaged<Thread>?
        /// The CPU's boot thread, which runs when nothing else can.
        var idle: Thread?
        /// One run queue per priority level, on the heap: inline queues would be copied whole on
        /// access.
        var queues: UnsafeMutablePointer<Queue>?
        /// Bit n set when queue n is not empty: `hasReadyThreads(above:)` is one shift.
        var readyLevels: UInt64 = 0
        /// Threads that died on their own stack; released after the switch away from them.
        var dead: Thread?
        var rescheduleNeeded = false
        var switches: UInt64 = 0

        /// `next` runs from now on, and no switch is pending. One method, so that the three
        /// writes share one read of TPIDR_EL1.
        mutating func recordSwitch(to next: Thread) {
            rescheduleNeeded = false
            switches &+= 1
            running = Unmanaged.passUnretained(next)
        }
    }

    /// This CPU's running thread (see `CPUState.running`).
    static var running: Unmanaged<Thread>? { PerCPU.current.scheduler.running }
    static var current: Thread? { running?.takeUnretainedValue() }

    /// Turns the calling (boot) thread into this CPU's idle thread.
    static func start() {
        let levels = UnsafeMutablePointer<Queue>.allocate(capacity: priorityLevels)
        levels.initialize(repeating: Queue(head: nil, tail: nil), count: priorityLevels)
        PerCPU.current.scheduler.queues = levels
        let boot = Thread(id: 0, process: nil, stack: nil, priority: 0)
        boot.state = .running
        PerCPU.current.scheduler.idle = boot
        PerCPU.current.scheduler.running = Unmanaged.passUnretained(boot)
    }

    static func makeReady(_ thread: Thread) {
        guard let queues = PerCPU.current.scheduler.queues, thread.state != .dead else { return }
        thread.state = .ready
        thread.next = nil
        let level = min(max(thread.priority, 0), priorityLevels - 1)
        if let tail = queues[level].tail { tail.next = thread } else { queues[level].head = thread }
        queues[level].tail = thread
        PerCPU.current.scheduler.readyLevels |= 1 << UInt64(level)
        if let current, current !== thread,
           thread.priority > current.priority || current === PerCPU.current.scheduler.idle {
            PerCPU.current.scheduler.rescheduleNeeded = true
        }
    }

    /// Removes a ready thread from its queue (when its process is killed).
    static func removeFromQueue(_ thread: Thread) {
        guard let queues = PerCPU.current.scheduler.queues else { return }
        let level = min(max(thread.priority, 0), priorityLevels - 1)
        var previous: Thread?
        var cursor = queues[level].head
        while let candidate = cursor {
            if candidate === thread {
                if let previous { previous.next = candidate.next } else { queues[level].head = candidate.next }
                if queues[level].tail === candidate { queues[level].tail = previous }
                if queues[level].head == nil { PerCPU.current.scheduler.readyLevels &= ~(1 << UInt64(level)) }
                candidate.next = nil
                return
            }
            previous = candidate
            cursor = candidate.next
        }
    }

    private static func takeNext() -> Thread? {
        guard let queues = PerCPU.current.scheduler.queues else { return nil }
        var level = priorityLevels - 1
        while level >= 0 {
            if let thread = queues[level].head {
                queues[level].head = thread.next
                if queues[level].head == nil {
                    queues[level].tail = nil
                    PerCPU.current.scheduler.readyLevels &= ~(1 << UInt64(level))
                }
                thread.next = nil
                return thread
            }
            level -= 1
        }
        return nil
    }

    static var hasReadyThreads: Bool { hasReadyThreads(above: -1) }

    static func hasReadyThreads(above priority: Int) -> Bool {
        PerCPU.current.scheduler.readyLevels >> UInt64(min(max(priority + 1, 0), priorityLevels)) != 0
    }

    /// Runs the next ready thread (or idle). The caller has already put the current thread where
    /// it belongs: on a queue (yield), blocked, or dead.
    ///
    /// No class reference may live in this frame across `switch_context`: a thread that has ended
    /// never comes back to release it, and its objects would leak. So the choice is made in
    /// `prepareSwitch`, whose references are released when it returns, and only the two context
    /// pointers cross the switch.
    ///
    /// `preferred`, a blocked thread the caller has just given work to (a server handed a call, a
    /// caller handed its reply), runs next without passing through the run queue, unless a thread
    /// of higher priority is ready; then it is queued like any woken thread.
    static func schedule(preferring preferred: Thread? = nil) {
        guard let (from, to) = prepareSwitch(preferring: preferred) else { return }
        switch_context(from, to)
        // Running again as the thread that called schedule().
        if PerCPU.current.scheduler.dead != nil { releaseDeadThreads() }
    }

    private static func prepareSwitch(preferring preferred: Thread?) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer)? {
        guard let previous = current else { return nil }
        let next: Thread
        if let preferred, preferred.state == .blocked, !hasReadyThreads(above: preferred.priority) {
            next = preferred
        } else {
            if let preferred, preferred.state == .blocked { makeReady(preferred) }
            guard let chosen = takeNext() ?? (previous.state == .running ? previous : PerCPU.current.scheduler.idle)
            else { return nil }
            next = chosen
        }
        if next === previous {
            PerCPU.current.scheduler.rescheduleNeeded = false
            previous.state = .running
            return nil
        }
        return enter(next, leaving: previous)
    }

    /// The IPC fast path's switch: the current thread has just blocked, and `next`, blocked until
    /// now and given work by it (its priority checked against the ready threads), runs at once.
    static func switchDirectly(from previous: Thread, to next: Thread) {
        guard next !== previous else { return }
        let (from, to) = enter(next, leaving: previous)
        switch_context(from, to)
        if PerCPU.current.scheduler.dead != nil { releaseDeadThreads() }
    }

    /// Makes `next` the running thread (its address space, FP trap, a fresh slice) and gives the
    /// two contexts for `switch_context`; `previous` is already where it belongs.
    @inline(__always)
    private static func enter(_ next: Thread, leaving previous: Thread) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        #if KERNEL_DEBUG
        // The next thread would run with them held, and this CPU could wait on its own lock.
        if PerCPU.current.locksHeld != 0 { kernelPanic("thread switch with spin locks held") }
        #endif
        if next.translationBase != .none {
            next.translationBase.activate()
        } else {
            NoAddressSpace.activate()
        }
        LazyFloatingPoint.switched(to: next.floatingPoint)
        next.state = .running
        next.sliceRemaining = sliceTicks
        PerCPU.current.scheduler.recordSwitch(to: next)
        return (UnsafeMutableRawPointer(previous.context), UnsafeMutableRawPointer(next.context))
    }

    static func yield() {
        // The reference is dropped before the switch (see schedule()).
        if let thread = current, thread !== PerCPU.current.scheduler.idle { makeReady(thread) }
        schedule()
    }

    /// Blocks the current thread until `wake`; `target` (blocked, given work by the caller) runs
    /// next if its priority allows (see `schedule`), and is woken in any case. Out of line: the
    /// waiting paths would each inline a copy of the switch, and a call is a few instructions
    /// against the switch's hundreds.
    @inline(never)
    static func block(handingOffTo target: Thread? = nil) {
        current?.state = .blocked
        schedule(preferring: target)
    }

    static func wake(_ thread: Thread) {
        if thread.state == .blocked { makeReady(thread) }
    }

    /// The current thread will never run again. It is marked dead and queued for release; the
    /// switch away happens on the way out of the exception (`preemptIfNeeded`), once every
    /// frame above the dispatcher, and the references it held, are gone.
    static func markCurrentDead() {
        guard let thread = current, thread !== PerCPU.current.scheduler.idle else { return }
        thread.state = .dead
        PerCPU.current.scheduler.rescheduleNeeded = true
        // Last: the list takes over the reference `current` gave, with no count in between.
        thread.next = PerCPU.current.scheduler.dead
        PerCPU.current.scheduler.dead = thread
    }

    static func releaseDeadThreads() {
        while let thread = PerCPU.current.scheduler.dead, thread !== current {
            PerCPU.current.scheduler.dead = thread.next
            LazyFloatingPoint.forget(thread.floatingPoint)
            thread.process?.threadReleased(thread)
            thread.release()
        }
    }

    /// The timer tick: charges the running thread's slice.
    static func tick() {
        guard let thread = current else { return }
        if thread === PerCPU.current.scheduler.idle {
            if hasReadyThreads { PerCPU.current.scheduler.rescheduleNeeded = true }
            return
        }
        thread.process?.ticks &+= 1
        thread.sliceRemaining -= 1
        if thread.sliceRemaining <= 0 && hasReadyThreads { PerCPU.current.scheduler.rescheduleNeeded = true }
    }

    /// On the way out of an exception: switch if a tick or a wake asked for it, or away for good
    /// from a thread that has ended.
    @inline(__always)
    static func preemptIfNeeded() {
        if PerCPU.current.scheduler.rescheduleNeeded { preempt() }
    }

    /// Out of line: its panic message would otherwise grow the exception dispatcher's frame.
    @inline(never)
    private static func preempt() {
        if current?.state == .dead {
            schedule()
            kernelPanic("a dead thread was scheduled")
        }
        yield()
    }

    /// The idle loop: waits for interrupts; the IRQ path switches to whatever became ready.
    static func idleLoop() -> Never {
        while true {
            CPU.disableInterrupts()
            if hasReadyThreads { schedule() }
            releaseDeadThreads()
            CPU.enableInterrupts()
            CPU.waitForInterrupt()
        }
    }
}
