// Preemptive round-robin scheduling with priorities: one FIFO run queue per priority level, the
// highest non-empty level runs first, a thread runs for a time slice of timer ticks and then
// goes to the back of its queue. Blocking takes a thread off the queues until `wake`; the idle
// thread (the CPU's boot thread) runs when nothing else can, waiting in WFI. Each CPU has its
// own queues and idle thread, in its per-CPU block (`PerCPU.current.scheduler`); every entry
// point runs with interrupts masked (exception context or the idle loop's masked sections).
//
// With more than one CPU (`multiprocessor`), all of this runs under the big kernel lock, which
// makes the other CPUs' queues safe to reach. A woken thread goes back to the queue of the CPU it
// last ran on, whose caches still hold its data; that CPU is interrupted (the reschedule SGI) if
// the thread should preempt what it runs, and otherwise an idle CPU is, which then takes the
// thread. A CPU whose own queue is empty takes the oldest thread of the highest priority from
// another CPU's queue (work stealing); a thread's affinity mask limits where it may go.

import AArch64

enum Scheduler {
    static let priorityLevels = 4
    static let defaultPriority = 1
    /// The highest level a user thread may set itself (`threadPriority`): the default. The levels
    /// above are for threads a grant would raise, which no call makes yet.
    static let highestUserPriority = defaultPriority
    /// Time slice in timer ticks (20 ms at 100 Hz).
    static let sliceTicks = 2
    /// The software-generated interrupt that makes another CPU look at its run queue; its
    /// handler does nothing, the switch happens on the way out of the interrupt.
    static let rescheduleInterrupt: UInt32 = 0

    /// The CPUs that run threads, one bit per CPU index. Shared, behind the big kernel lock: each
    /// secondary CPU sets its own bit as it joins (`join`).
    nonisolated(unsafe) static var onlineCPUs: UInt64 = 1
    /// Whether more than one CPU runs threads. Set once, under the big kernel lock, by
    /// `startMultiprocessing`; a single CPU never pays for the paths it guards.
    nonisolated(unsafe) static var multiprocessor = false

    /// What a path knows of `multiprocessor` when it is compiled. The system call and interrupt
    /// entries of one CPU and of several are apart (vectors.S), and `multiprocessor` is set
    /// before any thread enters user space, so a path behind one of them is specialized for it
    /// (`OneCPU`, `SeveralCPUs`) and skips the tests only the other needs; any other path asks
    /// (`CPUsNow`).
    protocol CPUsOnline { static var several: Bool { get } }
    enum OneCPU: CPUsOnline { static var several: Bool { false } }
    enum SeveralCPUs: CPUsOnline { static var several: Bool { true } }
    enum CPUsNow: CPUsOnline { static var several: Bool { multiprocessor } }

    /// A FIFO of ready threads linked through `Thread.queueNext`. Not counted: a queued thread is
    /// held by its process (`Process.threads`) until it has left every queue (`Processes.end`
    /// unlinks a ready thread before it lets it go; a thread only dies while it runs), and the idle
    /// thread is never queued. So queueing and dequeueing cost no reference counting.
    struct Queue {
        var head: Unmanaged<Thread>?
        var tail: Unmanaged<Thread>?
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
        /// A thread an interrupt woke that runs next, straight from its wait and not through the
        /// run queue (`wakeForInterrupt`); still blocked until the switch. Not counted: it is held
        /// by its process, and stays blocked (so alive) until this CPU's next `preempt`.
        var handoff: Unmanaged<Thread>?
        /// Ticks this CPU counted while its idle thread ran.
        var idleTicks: UInt64 = 0
        /// Threads this CPU took from other CPUs' queues.
        var steals: UInt64 = 0
        /// Reschedule interrupts this CPU sent to others.
        var reschedulesSent: UInt64 = 0

        /// Switches made here but those of the IPC fast paths' legs, which count theirs with the
        /// leg (`IPCStatistics.Counters`); `switchesMade` adds them in.
        var switches: UInt64 = 0

        /// `next` runs from now on, and no switch is pending; `counting` is false for the switch
        /// of an IPC fast path's leg, counted already. One method, so that the writes share one
        /// read of TPIDR_EL1.
        @inline(__always)
        mutating func recordSwitch(to next: Thread, counting: Bool) {
            rescheduleNeeded = false
            if counting { switches &+= 1 }
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
        if multiprocessor {
            makeReadyOnItsCPU(thread)
        } else {
            makeReadyHere(thread)
        }
    }

    /// `makeReady` with one CPU: this CPU's queue.
    @inline(__always)
    private static func makeReadyHere(_ thread: Thread) {
        guard thread.state != .dead, queueHere(thread) else { return }
        if let running = PerCPU.current.scheduler.running, running.toOpaque() != Unmanaged.passUnretained(thread).toOpaque(),
           isIdle(running) || running._withUnsafeGuaranteedRef({ thread.priority > $0.priority }) {
            PerCPU.current.scheduler.rescheduleNeeded = true
        }
    }

    /// `thread` ready, at the back of its level's queue on this CPU (false: no queues yet).
    @inline(__always)
    @discardableResult
    private static func queueHere(_ thread: Thread) -> Bool {
        guard let queues = PerCPU.current.scheduler.queues else { return false }
        thread.state = .ready
        let level = min(max(thread.priority, 0), priorityLevels - 1)
        append(thread, to: queues + level)
        PerCPU.current.scheduler.readyLevels |= 1 << UInt64(level)
        return true
    }

    /// `thread` at the back of `queue`.
    @inline(__always)
    private static func append(_ thread: Thread, to queue: UnsafeMutablePointer<Queue>) {
        let link = Unmanaged.passUnretained(thread)
        thread.queueNext = nil
        if let tail = queue.pointee.tail {
            tail._withUnsafeGuaranteedRef { $0.queueNext = link }
        } else {
            queue.pointee.head = link
        }
        queue.pointee.tail = link
    }

    /// The multiprocessor `makeReady`: the thread goes to the queue of the CPU it last ran on (or
    /// one it may run on), and a CPU is interrupted to run it if one should (see the top).
    private static func makeReadyOnItsCPU(_ thread: Thread) {
        guard thread.state != .dead else { return }
        let here = PerCPU.current.index
        let home = homeCPU(of: thread, here: here)
        let block = PerCPU.block(home)
        guard let queues = block.pointee.scheduler.queues else { return }
        thread.state = .ready
        thread.cpu = home
        let level = min(max(thread.priority, 0), priorityLevels - 1)
        append(thread, to: queues + level)
        block.pointee.scheduler.readyLevels |= 1 << UInt64(level)
        if let running = block.pointee.scheduler.running?.takeUnretainedValue(), running !== thread,
           thread.priority > running.priority || running === block.pointee.scheduler.idle {
            requestReschedule(of: home, from: here)
        } else {
            wakeIdleCPU(for: thread, besides: home, from: here)
        }
    }

    /// Where a woken thread is queued: the CPU it last ran on if its affinity allows, else this
    /// one if allowed, else the first CPU it may run on.
    static func homeCPU(of thread: Thread, here: Int) -> Int {
        let allowed = thread.affinity & onlineCPUs
        if allowed & (1 << UInt64(thread.cpu)) != 0 { return thread.cpu }
        if allowed & (1 << UInt64(here)) != 0 || allowed == 0 { return here }
        return allowed.trailingZeroBitCount
    }

    /// Makes CPU `cpu` switch on its way out of the kernel: at once if it is this CPU, through
    /// the reschedule interrupt if it is another.
    static func requestReschedule(of cpu: Int, from here: Int) {
        let block = PerCPU.block(cpu)
        block.pointee.scheduler.rescheduleNeeded = true
        guard cpu != here, let controller = Interrupts.controller else { return }
        PerCPU.current.scheduler.reschedulesSent &+= 1
        controller.send(rescheduleInterrupt, toCPUAddressedBy: block.pointee.interrupts.sgiAddress)
    }

    /// A thread was queued behind others on a busy CPU: an idle CPU it may run on, if there is
    /// one, is interrupted and takes it (`steal`).
    private static func wakeIdleCPU(for thread: Thread, besides home: Int, from here: Int) {
        var candidates = thread.affinity & onlineCPUs & ~(1 << UInt64(home))
        while candidates != 0 {
            let cpu = candidates.trailingZeroBitCount
            candidates &= candidates - 1
            let block = PerCPU.block(cpu)
            if block.pointee.scheduler.running?.takeUnretainedValue() === block.pointee.scheduler.idle,
               !block.pointee.scheduler.rescheduleNeeded {
                requestReschedule(of: cpu, from: here)
                return
            }
        }
    }

    /// Work stealing: the oldest thread of the highest priority waiting on another CPU's queue
    /// that may run on this one, taken off that queue; nil if there is none.
    private static func steal() -> Thread? {
        let here = PerCPU.current.index
        guard onlineCPUs & (1 << UInt64(here)) != 0 else { return nil }
        let others = onlineCPUs & ~(1 << UInt64(here))
        var level = priorityLevels - 1
        while level >= 0 {
            var remaining = others
            while remaining != 0 {
                let cpu = remaining.trailingZeroBitCount
                remaining &= remaining - 1
                let block = PerCPU.block(cpu)
                guard block.pointee.scheduler.readyLevels & (1 << UInt64(level)) != 0,
                      let queues = block.pointee.scheduler.queues else { continue }
                var cursor = queues[level].head
                while let link = cursor {
                    let candidate = link.takeUnretainedValue()
                    if candidate.affinity & (1 << UInt64(here)) != 0 {
                        unlink(candidate, level: level, from: block)
                        candidate.cpu = here
                        PerCPU.current.scheduler.steals &+= 1
                        return candidate
                    }
                    cursor = candidate.queueNext
                }
            }
            level -= 1
        }
        return nil
    }

    /// Whether another CPU's queue holds a thread (for an idle CPU's tick).
    private static var workElsewhere: Bool {
        let here = PerCPU.current.index
        guard onlineCPUs & (1 << UInt64(here)) != 0 else { return false }
        var others = onlineCPUs & ~(1 << UInt64(here))
        while others != 0 {
            let cpu = others.trailingZeroBitCount
            others &= others - 1
            if PerCPU.block(cpu).pointee.scheduler.readyLevels != 0 { return true }
        }
        return false
    }

    /// Removes a ready thread from its queue (when its process is killed).
    static func removeFromQueue(_ thread: Thread) {
        unlink(thread, level: min(max(thread.priority, 0), priorityLevels - 1), from: PerCPU.block(thread.cpu))
    }

    private static func unlink(_ thread: Thread, level: Int, from block: UnsafeMutablePointer<PerCPU>) {
        guard let queues = block.pointee.scheduler.queues else { return }
        let target = Unmanaged.passUnretained(thread).toOpaque()
        var previous: Unmanaged<Thread>?
        var cursor = queues[level].head
        while let link = cursor {
            let following = link._withUnsafeGuaranteedRef { $0.queueNext }
            if link.toOpaque() == target {
                if let previous {
                    previous._withUnsafeGuaranteedRef { $0.queueNext = following }
                } else {
                    queues[level].head = following
                }
                if queues[level].tail?.toOpaque() == target { queues[level].tail = previous }
                if queues[level].head == nil { block.pointee.scheduler.readyLevels &= ~(1 << UInt64(level)) }
                thread.queueNext = nil
                return
            }
            previous = link
            cursor = following
        }
    }

    /// The first thread of the highest non-empty queue, taken off it (uncounted: see `Queue`).
    private static func takeNext() -> Unmanaged<Thread>? {
        guard let queues = PerCPU.current.scheduler.queues else { return nil }
        let levels = PerCPU.current.scheduler.readyLevels
        guard levels != 0 else { return nil }
        let level = 63 - levels.leadingZeroBitCount
        guard level < priorityLevels, let link = queues[level].head else { return nil }
        let following = link._withUnsafeGuaranteedRef { thread in
            let following = thread.queueNext
            thread.queueNext = nil
            return following
        }
        queues[level].head = following
        if following == nil {
            queues[level].tail = nil
            PerCPU.current.scheduler.readyLevels &= ~(1 << UInt64(level))
        }
        return link
    }

    static var hasReadyThreads: Bool { hasReadyThreads(above: -1) }

    /// `priority` is a thread's level (0 up to `priorityLevels - 1`) or -1, so the shift is 0 to
    /// 4 places: a plain shift, with no clamping or overflow test (the IPC fast path asks on
    /// every leg). No ready thread at all is tested first, without the thread's level: the
    /// common case when threads hand the CPU to each other.
    @inline(__always)
    static func hasReadyThreads(above priority: Int) -> Bool { hasReadyThreads(above: priority, on: PerCPU.here) }

    /// `hasReadyThreads(above:)` on `cpu`, this CPU's block (`PerCPU.here`).
    @inline(__always)
    static func hasReadyThreads(above priority: Int, on cpu: UnsafeMutablePointer<PerCPU>) -> Bool {
        let levels = cpu.pointee.scheduler.readyLevels
        return levels != 0 && levels &>> UInt64(truncatingIfNeeded: priority &+ 1) != 0
    }

    /// Whether `thread`'s affinity lets it run on this CPU: for the switches that take a blocked
    /// thread straight to this CPU (the IPC fast path, `schedule(preferring:)`) instead of
    /// queueing it where it may run. Every CPU (the default) is tested first, without the CPU's index.
    @inline(__always)
    static func mayRunHere(_ thread: Thread) -> Bool { mayRunHere(thread, on: PerCPU.here, CPUsNow.self) }

    /// `mayRunHere` on `cpu`, this CPU's block. One CPU alone needs no test: an affinity always
    /// includes an online CPU (`setAffinity`), so there CPU 0.
    @inline(__always)
    static func mayRunHere<CPUs: CPUsOnline>(_ thread: Thread, on cpu: UnsafeMutablePointer<PerCPU>, _: CPUs.Type)
        -> Bool {
        !CPUs.several || thread.affinity == .max || thread.affinity & 1 << UInt64(cpu.pointee.index) != 0
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

    /// Threads are borrowed here, not counted: the running thread is held while it runs (see
    /// `CPUState.running`), a queued one by its process (see `Queue`), the idle thread by `idle`.
    private static func prepareSwitch(preferring preferred: Thread?) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer)? {
        guard let previousLink = running else { return nil }
        let nextLink: Unmanaged<Thread>
        if let preferred, preferred.state == .blocked, !hasReadyThreads(above: preferred.priority), mayRunHere(preferred) {
            nextLink = Unmanaged.passUnretained(preferred)
        } else {
            if let preferred, preferred.state == .blocked { makeReady(preferred) }
            if let taken = takeNext() {
                nextLink = taken
            } else if multiprocessor, let stolen = steal() {
                nextLink = Unmanaged.passUnretained(stolen)
            } else if previousLink._withUnsafeGuaranteedRef({ $0.state == .running }) {
                nextLink = previousLink
            } else if let idle = PerCPU.current.scheduler.idle {
                nextLink = Unmanaged.passUnretained(idle)
            } else {
                return nil
            }
        }
        return previousLink._withUnsafeGuaranteedRef { previous in
            if nextLink.toOpaque() == previousLink.toOpaque() {
                PerCPU.current.scheduler.rescheduleNeeded = false
                previous.state = .running
                return nil
            }
            return nextLink._withUnsafeGuaranteedRef { next in enter(next, leaving: previous) }
        }
    }

    /// The IPC fast path's switch: the current thread has just blocked, waiting in its user
    /// frame (`Thread.waitInFrame`), and `next`, blocked until now and given work by it (its
    /// priority checked against the ready threads), runs at once. Nothing on the current
    /// thread's stack is returned to, so its registers are not saved. `next`, if it waits in its
    /// frame too and the caller has finished its wait, returns to user space from there (giving
    /// up the big kernel lock on a multiprocessor, as its dispatcher would have); else its
    /// context is loaded, and it runs on under the lock as after any switch. Inlined: its
    /// callers have frames of their own, and it leaves them for good.
    ///
    /// `cpu` is this CPU's block (`PerCPU.here`), read once by the fast path, and `CPUs` what it
    /// knows of the CPUs online. `fastLeg`: the switch is an IPC fast path's leg's, which counted
    /// it (`IPCStatistics.Counters`) and found `next` blocked and not killed, so with its
    /// address space (`IPCFastPath.hasAddressSpace`).
    @inline(__always)
    static func switchLeavingFrame<CPUs: CPUsOnline>(from previous: Thread, to next: Thread, resumingFrame: Bool,
                                                     fastLeg: Bool = false, on cpu: UnsafeMutablePointer<PerCPU>,
                                                     _ cpus: CPUs.Type) -> Never {
        let frame = next.userRegisters // read first, as in `enter`
        let (_, to) = enter(next, leaving: previous, fastLeg: fastLeg, on: cpu, cpus)
        if cpu.pointee.scheduler.dead != nil { releaseDeadThreads(thenResume: frame, or: to, resumingFrame, cpus) }
        if resumingFrame { resumeUserFrame(frame, cpus) }
        load_context(to)
    }

    /// `switchLeavingFrame` of a fast leg, when the caller made sure before its commit point that
    /// no ended thread waits to be released on this CPU (`hasNothingToRelease`): then the switch
    /// makes no call (resume_user_frame and load_context_branching are branches), and with one
    /// CPU a fast path that ends here needs no stack frame of its own.
    @inline(__always)
    static func switchLeavingFrameWithNothingToRelease<CPUs: CPUsOnline>(
        from previous: Thread, to next: Thread, resumingFrame: Bool, on cpu: UnsafeMutablePointer<PerCPU>,
        _ cpus: CPUs.Type
    ) -> Never {
        let frame = next.userRegisters // read first, as in `enter`
        let (_, to) = enter(next, leaving: previous, fastLeg: true, on: cpu, cpus)
        if resumingFrame { resumeUserFrame(frame, cpus) }
        load_context_branching(to)
    }

    /// Whether no ended thread waits on `cpu` (this CPU's block) to be released by the next switch.
    @inline(__always)
    static func hasNothingToRelease(on cpu: UnsafeMutablePointer<PerCPU>) -> Bool { cpu.pointee.scheduler.dead == nil }

    /// Back to user space from `frame`, another thread's, leaving this stack; on a multiprocessor
    /// giving up the big kernel lock on the way, as that thread's dispatcher would have.
    @inline(__always)
    private static func resumeUserFrame<CPUs: CPUsOnline>(_ frame: UnsafeMutablePointer<UInt64>, _: CPUs.Type) -> Never {
        if CPUs.several { resume_user_frame_unlocking(frame) }
        resume_user_frame(frame)
    }

    /// `switchLeavingFrame`'s end when threads died before the switch: out of line, so that the
    /// switch keeps nothing across a call and its callers need no registers saved for it.
    /// Releasing may ready a thread above `next` (or serve an interrupt that does): then `next`
    /// goes the general way, whose epilogue preempts (its wait is finished, so
    /// `frame_wait_resume` only returns).
    @inline(never)
    private static func releaseDeadThreads<CPUs: CPUsOnline>(thenResume frame: UnsafeMutablePointer<UInt64>,
                                                             or context: UnsafeMutableRawPointer,
                                                             _ resumingFrame: Bool, _: CPUs.Type) -> Never {
        releaseDeadThreads()
        if resumingFrame && !PerCPU.current.scheduler.rescheduleNeeded { resumeUserFrame(frame, CPUs.self) }
        load_context(context)
    }

    /// The running thread, blocked and waiting in its user frame (`Thread.waitInFrame`), gives
    /// up the CPU: the next thread is the one `schedule` would take, and returns to user space
    /// straight from its own frame if it waits in one and its wait is over.
    ///
    /// Nothing counted may be held here: this thread's stack is never returned to, so a
    /// reference on it would never be given back. The next thread is borrowed. Out of line:
    /// inlined, it gave the fast path that calls it a larger frame, which the calls that do not
    /// wait paid for too.
    @inline(never)
    static func blockLeavingFrame<CPUs: CPUsOnline>(_ previous: Thread, _ cpus: CPUs.Type) -> Never {
        guard let nextLink = nextToRun() else { kernelPanic("no thread to run, not even the idle one") }
        nextLink._withUnsafeGuaranteedRef { next -> Never in
            let cpu = PerCPU.here
            if next.finishWaitAtOnce() { switchLeavingFrame(from: previous, to: next, resumingFrame: true, on: cpu, cpus) }
            switchLeavingFrame(from: previous, to: next, resumingFrame: false, on: cpu, cpus)
        }
    }

    /// What runs when the running thread stops: the first ready thread, one taken from another
    /// CPU, or the idle thread. Not counted: each is held by its process, or by `idle`.
    private static func nextToRun() -> Unmanaged<Thread>? {
        if let taken = takeNext() { return taken }
        if multiprocessor, let stolen = steal() { return Unmanaged.passUnretained(stolen) }
        return PerCPU.current.scheduler.idle.map { Unmanaged.passUnretained($0) }
    }

    /// Makes `next` the running thread (its address space, FP trap; its slice is what it has
    /// left, `Thread.sliceRemaining`) and gives the
    /// two contexts for `switch_context`; `previous` is already where it belongs.
    @inline(__always)
    private static func enter(_ next: Thread, leaving previous: Thread) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        enter(next, leaving: previous, on: PerCPU.here, CPUsNow.self)
    }

    /// `enter` on `cpu`, this CPU's block, with what is known of the CPUs online.
    @inline(__always)
    private static func enter<CPUs: CPUsOnline>(_ next: Thread, leaving previous: Thread, fastLeg: Bool = false,
                                                on cpu: UnsafeMutablePointer<PerCPU>, _: CPUs.Type)
        -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        #if KERNEL_DEBUG
        // The next thread would run with them held, and this CPU could wait on its own lock.
        if cpu.pointee.locksHeld & ~LockOrder.bigKernel.bit != 0 { kernelPanic("thread switch with spin locks held") }
        if CPUs.several != multiprocessor { kernelPanic("a switch specialized for the wrong number of CPUs") }
        #endif
        // What is read of the threads, first: a borrowed reference is kept in memory, and every
        // store below (to the per-CPU block, to `next`) would make the compiler load it again.
        let base = next.translationBase
        let area = next.floatingPoint
        let contexts = (UnsafeMutableRawPointer(previous.context), UnsafeMutableRawPointer(next.context))
        next.state = .running
        cpu.pointee.scheduler.recordSwitch(to: next, counting: !fastLeg)
        if fastLeg || base != .none {
            base.install()
        } else {
            NoAddressSpace.base.install()
        }
        if CPUs.several {
            switchCarefully(from: previous, to: next)
        } else {
            LazyFloatingPoint.switched(to: area, on: cpu)
        }
        return contexts
    }

    /// A switch's multiprocessor part, out of line, which a single CPU's switch never reaches:
    /// `previous` may run on another CPU next, so its FP/SIMD state goes to memory now, and
    /// `next` is recorded as running here.
    @inline(never)
    private static func switchCarefully(from previous: Thread, to next: Thread) {
        LazyFloatingPoint.leave(previous.floatingPoint)
        next.cpu = PerCPU.current.index
        LazyFloatingPoint.switchedCarefully(to: next.floatingPoint)
    }

    static func yield() {
        if multiprocessor {
            yieldOnMultiprocessor()
            return
        }
        // Borrowed, so nothing is held across the switch (see schedule()).
        if let running, !isIdle(running) { running._withUnsafeGuaranteedRef { makeReadyHere($0) } }
        schedule()
    }

    @inline(never)
    private static func yieldOnMultiprocessor() {
        if let running, !isIdle(running) { running._withUnsafeGuaranteedRef { makeReadyOnItsCPU($0) } }
        schedule()
    }

    /// Blocks the current thread until `wake`; `target` (blocked, given work by the caller) runs
    /// next if its priority allows (see `schedule`), and is woken in any case. Out of line: the
    /// waiting paths would each inline a copy of the switch, and a call is a few instructions
    /// against the switch's hundreds.
    @inline(never)
    static func block(handingOffTo target: Thread? = nil) {
        running?._withUnsafeGuaranteedRef { $0.state = .blocked }
        schedule(preferring: target)
    }

    /// Whether `thread` is this CPU's idle thread, compared by address (no reference taken).
    @inline(__always)
    static func isIdle(_ thread: Unmanaged<Thread>) -> Bool {
        withExtendedLifetime(PerCPU.current.scheduler.idle) { idle in
            idle.map { Unmanaged.passUnretained($0).toOpaque() } == thread.toOpaque()
        }
    }

    static func wake(_ thread: Thread) {
        if thread.state == .blocked { makeReady(thread) }
    }

    /// `wake` from the interrupt path, for a driver's handler thread: if it should preempt the
    /// running thread (a higher priority than it, and no ready thread above it: one of its own
    /// level queued earlier waits, as it would for any preemption), it stays off the run queue
    /// and the switch on the way out of the interrupt (`preempt`) goes straight to it. Only for an
    /// interrupt that switches on its way out (from EL0 or the idle thread, not one served inside
    /// a system call), and on one CPU, so this CPU may run it: otherwise it is woken as any.
    static func wakeForInterrupt(_ thread: Thread) {
        guard !multiprocessor, !Interrupts.isServingPending, thread.state == .blocked,
              PerCPU.current.scheduler.handoff == nil,
              let running = PerCPU.current.scheduler.running, !hasReadyThreads(above: thread.priority),
              isIdle(running) || running._withUnsafeGuaranteedRef({ thread.priority > $0.priority }) else {
            wake(thread)
            return
        }
        PerCPU.current.scheduler.handoff = Unmanaged.passUnretained(thread)
        PerCPU.current.scheduler.rescheduleNeeded = true
    }

    /// Whether the running thread was killed by another CPU while it ran in user space (a thread
    /// killed inside a system call unwinds it instead). Its references end with the call.
    @inline(never)
    static var currentKilledInUserSpace: Bool {
        guard let thread = current else { return false }
        return thread.killed && !thread.inSystemCall
    }

    /// The running thread, killed while it ran in user space, has entered the kernel: it ends
    /// here, before anything it came in for is done.
    static func endKilledThread() -> Never {
        markCurrentDead()
        schedule()
        kernelPanic("a killed thread was scheduled")
    }

    /// The current thread will never run again. It is marked dead and queued for release; the
    /// switch away happens on the way out of the exception (`preemptIfNeeded`), once every
    /// frame above the dispatcher, and the references it held, are gone.
    static func markCurrentDead() {
        guard let thread = current, thread !== PerCPU.current.scheduler.idle else { return }
        thread.state = .dead
        PerCPU.current.scheduler.rescheduleNeeded = true
        // Last: the list takes over the reference `current` gave, with no count in between.
        thread.nextDead = PerCPU.current.scheduler.dead
        PerCPU.current.scheduler.dead = thread
    }

    /// Out of line: the switch paths that call it when `dead` is set would otherwise carry its
    /// body, and pay for the registers it needs on every switch (4 instructions a call+reply).
    @inline(never)
    static func releaseDeadThreads() {
        while let thread = PerCPU.current.scheduler.dead, thread !== current {
            PerCPU.current.scheduler.dead = thread.nextDead
            LazyFloatingPoint.forget(thread.floatingPoint)
            thread.process?.threadReleased(thread)
            thread.release()
        }
    }

    /// The timer interrupt, after `periods` tick periods have passed (more than one when the
    /// interrupt came late, none when it came for a deadline between ticks): charges them to the
    /// running thread's slice and process, or to this CPU's idle time.
    static func tick(periods: UInt64) {
        guard let thread = current else { return }
        if thread === PerCPU.current.scheduler.idle {
            PerCPU.current.scheduler.idleTicks &+= periods
            if hasReadyThreads || (multiprocessor && workElsewhere) { PerCPU.current.scheduler.rescheduleNeeded = true }
            return
        }
        guard periods > 0 else { return }
        thread.process?.ticks &+= periods
        thread.sliceRemaining -= Int(truncatingIfNeeded: min(periods, UInt64(sliceTicks)))
        if thread.sliceRemaining <= 0 {
            // Spent: filled again for the thread's next turn, which comes after the ready
            // threads'. Filled here and not at each switch, which would let two threads calling
            // each other never spend one (`Thread.sliceRemaining`).
            thread.sliceRemaining = sliceTicks
            if hasReadyThreads { PerCPU.current.scheduler.rescheduleNeeded = true }
        }
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
        let handoff = takeHandoff()
        if running?._withUnsafeGuaranteedRef({ $0.state == .dead }) == true {
            handoff?._withUnsafeGuaranteedRef { wake($0) }
            schedule()
            kernelPanic("a dead thread was scheduled")
        }
        guard let handoff, let previousLink = running else {
            yield()
            return
        }
        handoff._withUnsafeGuaranteedRef { next in
            // Still blocked, and still first (the rest of a system call that served pending
            // interrupts may have woken it, or readied a thread above it): straight to it.
            guard next.state == .blocked, !hasReadyThreads(above: next.priority) else {
                wake(next)
                yield()
                return
            }
            // Queued as `makeReadyHere` would, without asking for the switch under way.
            if !isIdle(previousLink) { _ = previousLink._withUnsafeGuaranteedRef { queueHere($0) } }
            // A handler waiting in its frame (notificationWait) was handed its bits by the
            // signal, and returns to user space from there.
            let finished = next.finishHandedWaitAtOnce()
            let (from, to) = previousLink._withUnsafeGuaranteedRef { enter(next, leaving: $0) }
            if finished {
                switch_to_user_frame(from, next.userRegisters)
            } else {
                switch_context(from, to)
            }
        }
        // Running again as the preempted thread.
        if PerCPU.current.scheduler.dead != nil { releaseDeadThreads() }
    }

    /// `preemptIfNeeded` after an interrupt taken from EL0 on one CPU (`userInterruptDispatch`),
    /// for the interrupt's hand-off to a handler thread: the interrupted thread has nothing on
    /// its kernel stack but its frame, so it is queued to return to user space from that frame
    /// later (`Thread.leaveInFrame`), and nothing is saved for it or unwound when it runs again.
    /// The handler's wait, if it waits in its frame, was finished by the signal, and it returns
    /// to user space from there. Anything else (no hand-off, ended threads to release, a handler
    /// no longer blocked) goes the general way.
    static func preemptAtUserInterrupt() {
        guard PerCPU.current.scheduler.rescheduleNeeded else { return }
        guard let handoff = PerCPU.current.scheduler.handoff, PerCPU.current.scheduler.dead == nil,
              let previousLink = running, !isIdle(previousLink) else {
            preempt()
            return
        }
        handoff._withUnsafeGuaranteedRef { next in
            previousLink._withUnsafeGuaranteedRef { previous in
                // Nothing ran since `wakeForInterrupt` chose it but this interrupt's path.
                guard next.state == .blocked, queueHere(previous) else { return }
                PerCPU.current.scheduler.handoff = nil
                previous.leaveInFrame()
                let finished = next.finishHandedWaitAtOnce()
                let (_, to) = enter(next, leaving: previous, on: PerCPU.here, OneCPU.self) // one CPU's entry only
                if finished { resume_user_frame(next.userRegisters) }
                load_context(to)
            }
        }
        preempt()
    }

    /// An interrupt that does not switch on its way out leaves no hand-off behind: its thread is
    /// woken as any (`wakeForInterrupt` makes none then; this keeps it so).
    static func wakeHandedOff() {
        takeHandoff()?._withUnsafeGuaranteedRef { wake($0) }
    }

    /// The interrupt's hand-off (`wakeForInterrupt`), cleared.
    @inline(__always)
    private static func takeHandoff() -> Unmanaged<Thread>? {
        defer { PerCPU.current.scheduler.handoff = nil }
        return PerCPU.current.scheduler.handoff
    }

    /// The idle loop: waits for interrupts; the IRQ path switches to whatever became ready. With
    /// more than one CPU it looks at the queues under the big kernel lock, which the boot CPU
    /// already holds when it first comes here (`startMultiprocessing`).
    static func idleLoop() -> Never {
        while true {
            CPU.disableInterrupts()
            // Read once: it turns on while a secondary CPU waits here.
            let locked = multiprocessor
            // Without the lock, the queues are only a hint (read again under it): an idle CPU
            // takes the lock only when there may be work, so idle CPUs do not crowd the lock.
            // When another CPU keeps the lock a while, this one waits for its next interrupt
            // (a tick at the latest) rather than spin for it.
            if !locked || BigKernelLock.isHeldHere || (hasWork && BigKernelLock.tryAcquire(patience: idlePatience)) {
                if hasReadyThreads || (locked && workElsewhere) { schedule() }
                releaseDeadThreads()
                // Releasing them (here or in `schedule` on its way back) may have woken a thread
                // onto this CPU's queue, a parent in `wait` say, with no interrupt to say so.
                let wokenHere = hasReadyThreads
                if locked { BigKernelLock.release() }
                if wokenHere { continue }
            }
            CPU.enableInterrupts()
            CPU.waitForInterrupt()
        }
    }

    /// How many times an idle CPU looks for the big kernel lock before it waits for its next
    /// interrupt: long enough for a system call or a switch on another CPU to end.
    private static let idlePatience = 20_000

    /// Whether this idle CPU may have something to do: a ready thread here or elsewhere, a
    /// switch asked for, or ended threads to release.
    private static var hasWork: Bool {
        hasReadyThreads || workElsewhere || PerCPU.current.scheduler.rescheduleNeeded || PerCPU.current.scheduler.dead != nil
    }

    /// Whether this CPU runs its idle thread (for an interrupt that found it waiting).
    static var isIdle: Bool { running?.toOpaque() == idleThread?.toOpaque() }
    private static var idleThread: Unmanaged<Thread>? {
        PerCPU.current.scheduler.idle.map { Unmanaged.passUnretained($0) }
    }

    /// The boot CPU, when it starts user space with other CPUs online: takes the big kernel lock
    /// (its idle loop releases it), moves to the vector table that takes it (the other CPUs use
    /// it already), and turns on the multiprocessor paths. Each other CPU then `join`s.
    static func startMultiprocessing() {
        CPU.disableInterrupts()
        BigKernelLock.acquire()
        Exceptions.install(multiprocessor: true)
        LazyFloatingPoint.start()
        multiprocessor = true
    }

    /// A secondary CPU, its registers ready for user space, under the big kernel lock: from now
    /// on threads are queued on it and it takes work from the others.
    static func join() {
        onlineCPUs |= 1 << UInt64(PerCPU.current.index)
    }
}

// MARK: Affinity and per-CPU figures (system calls)

extension Scheduler {
    /// `threadAffinity`: restricts `thread` to the CPUs in `cpus` (0: leaves it) and returns the
    /// mask it had. A thread now on the wrong CPU moves: queued, it is queued again; running, its
    /// CPU switches away from it on the way out of the kernel, and it is queued where it may run.
    static func setAffinity(of thread: Thread, to cpus: UInt64) throws(KernelError) -> UInt64 {
        let previous = thread.affinity
        guard cpus != 0 else { return previous }
        guard cpus & onlineCPUs != 0 else { throw .invalidArgument }
        thread.affinity = cpus
        guard cpus & (1 << UInt64(thread.cpu)) == 0 else { return previous }
        switch thread.state {
        case .ready:
            removeFromQueue(thread)
            thread.state = .blocked
            makeReady(thread)
        case .running:
            requestReschedule(of: thread.cpu, from: PerCPU.current.index)
        case .blocked, .dead:
            break // woken, it goes where it may run (`homeCPU`)
        }
        return previous
    }

    /// A killed thread that must still run to unwind runs at least at the default level (which a
    /// thread may always ask for, so `setPriority` cannot refuse it). Out of line: inlined into
    /// `Processes.end`, it made every end longer.
    @inline(never)
    static func raiseToDefault(_ thread: Thread) {
        guard thread.priority < defaultPriority else { return }
        _ = try? setPriority(of: thread, to: UInt64(defaultPriority))
    }

    /// `threadPriority`: `thread` runs at `priority` from now on (`UInt64.max`: unchanged); the
    /// level it had. A ready thread moves to its new level's queue; a thread lowered below a
    /// ready one, or a ready one raised above the running one, makes its CPU reschedule, which
    /// happens on the way out of this call.
    static func setPriority(of thread: Thread, to priority: UInt64) throws(KernelError) -> Int {
        let previous = thread.priority
        guard priority != UInt64.max else { return previous }
        guard priority < UInt64(priorityLevels) else { throw .invalidArgument }
        guard priority <= UInt64(highestUserPriority) else { throw .accessDenied }
        let level = Int(priority)
        guard level != previous else { return previous }
        switch thread.state {
        case .ready:
            removeFromQueue(thread)
            thread.state = .blocked
            thread.priority = level
            makeReady(thread)
        case .running:
            thread.priority = level
            if thread === current {
                if hasReadyThreads(above: level) { PerCPU.current.scheduler.rescheduleNeeded = true }
            } else if level < previous {
                // Running on another CPU, lowered: that CPU looks whether a ready thread now
                // outranks it.
                requestReschedule(of: thread.cpu, from: PerCPU.current.index)
            }
        case .blocked, .dead:
            thread.priority = level
        }
        return previous
    }

    /// `cpuStatistics`: CPU `cpu`'s figures (`CPUStatistics`) to user memory.
    static func copyStatistics(of cpu: UInt64, to buffer: UserAddress, capacity: UInt64) throws(KernelError) {
        guard cpu < 64, onlineCPUs & (1 << cpu) != 0, let storage = PerCPU.storage, Int(cpu) < storage.count else {
            throw .notFound
        }
        guard capacity >= UInt64(CPUStatistics.size) else { throw .invalidArgument }
        let block = PerCPU.block(Int(cpu))
        let figures = CPUStatistics(
            ticks: block.pointee.clock.ticks, idleTicks: block.pointee.scheduler.idleTicks,
            switches: block.pointee.switchesMade, systemCalls: block.pointee.systemCallsTaken,
            interrupts: block.pointee.interrupts.handled, reschedulesSent: block.pointee.scheduler.reschedulesSent,
            reschedulesReceived: block.pointee.interrupts.privateCounts[Int(rescheduleInterrupt)],
            steals: block.pointee.scheduler.steals)
        var words = InlineArray<8, UInt64>(repeating: 0)
        for index in 0..<CPUStatistics.words { words[index] = figures.word(index) }
        try withUnsafeBytes(of: &words) { bytes throws(KernelError) in
            try UserMemory.copyOut(to: buffer, from: bytes.baseAddress!, count: UInt64(CPUStatistics.size))
        }
    }
}
