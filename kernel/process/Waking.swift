// The core's waiting objects (core/MessagePort.swift, NotificationWord.swift, CallState.swift)
// with the kernel's threads as their waiters: a waiting thread is blocked in the scheduler, and
// waking it makes it ready. Processes and threads hold notifications and reply capabilities
// themselves (what a process's end signals; the capability a thread's calls reuse), so these
// names live here, below IPC, which gives them their system calls.

/// Wakes a waiting thread for the IPC rules of the core.
enum SchedulerWaking: WaiterWaking {
    @inline(__always)
    static func wake(_ waiter: Thread) { Scheduler.wake(waiter) }

    /// A thread waiting in its frame takes them: it does not count the notification.
    @inline(__always)
    static func takesBitsAtOnce(_ bits: UInt64, _ waiter: Thread) -> Bool { waiter.takeBitsAtOnce(bits) }

    static func notificationEnded(waiter: Thread) { waiter.notificationEnded() }

    static func portsCounted(alive: Int, closed: Int) {
        PortCensus.alive &+= UInt64(bitPattern: Int64(alive))
        PortCensus.closed &+= UInt64(bitPattern: Int64(closed))
    }

    static var closedPortCharge: UInt64 { ObjectCost.closedPort.bytes }

    static func receives(_ waiter: Thread, for holder: AnyObject) -> Bool {
        waiter.process === holder && waiter.isAwaitingDirectMessage
    }

    static func dismiss(_ waiter: Thread) {
        waiter.receiveResult = .failed(.peerClosed)
        Scheduler.wake(waiter)
    }
}

/// The machine's ports, for `portStatistics`: alive, and closed ones still named by send rights.
/// Changed only by ports being made, closed and ended, all under the big kernel lock (or with one
/// CPU and interrupts masked).
enum PortCensus {
    nonisolated(unsafe) static var alive: UInt64 = 0
    nonisolated(unsafe) static var closed: UInt64 = 0
}

/// A word of bits to signal and wait on: for events without data (device interrupts, process
/// ends, wake-ups).
typealias Notification = NotificationWord<SchedulerWaking>

/// The one-time right to answer a call of a thread, made with the thread and reused.
typealias ReplyCapability = CallReply<SchedulerWaking>
