// Notifications (core/NotificationWord.swift): their system calls. Device interrupts bound to a
// notification signal it too (DeviceAccess.swift), and so does a process's end (processNotify).

extension NotificationWord: ChargedObject where Waking == SchedulerWaking {}

extension IPC {
    static func notification(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Notification {
        try Handles.object(handle, of: Notification.self, in: process, requiring: rights)
    }

    static func signal(_ handle: Handle, bits: UInt64, process: Process) throws(KernelError) {
        try notification(handle, in: process, requiring: .signal).signal(bits)
    }

    /// Blocks `thread` until `notification` has bits, its deadline passes (`sleepExpired`) or it
    /// is killed: its waiter meanwhile, and not after (the waiter is not counted).
    @inline(__always)
    static func awaitBits(on notification: Notification, thread: Thread) {
        while notification.bits == 0 && !thread.sleepExpired && !thread.killed {
            notification.waiter = Unmanaged.passUnretained(thread)
            Scheduler.block()
        }
        // A signal clears the waiter as it wakes it, and another thread may wait there since;
        // a wait that ends otherwise (killed, timed out) takes only itself off.
        if notification.isWaiter(thread) { notification.waiter = nil }
    }

    /// Waits up to `timeout` nanoseconds for bits on notification `handle`; returns them, now clear.
    static func wait(_ handle: Handle, timeout: UInt64, thread: Thread, process: Process) throws(KernelError) -> UInt64 {
        let notification = try notification(handle, in: process, requiring: .wait)
        if notification.bits == 0 {
            guard timeout > 0 else { throw .wouldBlock }
            guard notification.waiter == nil else { throw .accessDenied }
            let armed = try armTimeout(timeout, for: thread)
            awaitBits(on: notification, thread: thread)
            if armed { Clock.cancelDeadline(token: thread.id) }
            if notification.bits == 0 { throw .timedOut }
        }
        return notification.take()
    }
}
