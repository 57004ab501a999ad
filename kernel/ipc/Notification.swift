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

    /// Blocks `thread` until `notification` has bits, its deadline passes (`sleepExpired`), it
    /// is killed, or no wait right is left (`isEnded`): its waiter meanwhile, and not after (the
    /// waiter is not counted). False if
    /// another thread began waiting there while this one was woken without bits (a signal clears
    /// the waiter as it wakes it, and another thread took the bits first): that thread keeps the
    /// notification, which may be one waiting in its frame, which relies on staying the waiter.
    @inline(__always)
    static func awaitBits(on notification: Notification, thread: Thread) -> Bool {
        while notification.bits == 0 && !thread.sleepExpired && !thread.killed && !notification.isEnded {
            guard notification.waiter == nil || notification.isWaiter(thread) else { return false }
            notification.waiter = Unmanaged.passUnretained(thread)
            Scheduler.block()
        }
        // A wait that ends otherwise than by a signal (killed, timed out) takes only itself off.
        if notification.isWaiter(thread) { notification.waiter = nil }
        return true
    }

    /// Waits up to `timeout` nanoseconds for bits on notification `handle`; returns them, now clear.
    static func wait(_ handle: Handle, timeout: UInt64, thread: Thread, process: Process) throws(KernelError) -> UInt64 {
        let notification = try notification(handle, in: process, requiring: .wait)
        if notification.bits == 0 {
            guard timeout > 0 else { throw .wouldBlock }
            guard notification.waiter == nil else { throw .accessDenied }
            let armed = try armTimeout(timeout, for: thread)
            let kept = awaitBits(on: notification, thread: thread)
            if armed { Clock.cancelDeadline(token: thread.id) }
            guard kept else { throw .accessDenied }
            // A thread killed meanwhile only unwinds: the bits stay for the waiters that live on.
            if thread.killed { throw .peerClosed }
            if notification.bits == 0 { throw notification.isEnded ? .peerClosed : .timedOut }
        }
        return notification.take()
    }
}
