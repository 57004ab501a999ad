// Notifications: a word of bits that threads signal and one thread waits on. Device interrupts
// bound to a notification signal it too (DeviceAccess.swift).

/// A word of bits to signal and wait on: for events without data (device interrupts, wake-ups).
final class Notification: ChargedObject {
    var bits: UInt64 = 0
    /// The one thread waiting for bits, if any.
    var waiter: Thread?
    /// What its creator paid for it.
    var charge = MemoryCharge()

    deinit { charge.release() }

    /// Sets `bits` and wakes the waiter: the one signal of `notificationSignal` and of a device
    /// interrupt bound to this notification. Inlined: out of line, `notificationSignal` also pays
    /// for the call and for keeping the caller's process retained across it (about 30 instructions).
    @inline(__always)
    func signal(_ bits: UInt64) {
        self.bits |= bits
        if let waiter {
            self.waiter = nil
            Scheduler.wake(waiter)
        }
    }
}

extension IPC {
    static func notification(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Notification {
        guard case .notification(let notification) = try lookup(handle, in: process, requiring: rights).object else {
            throw .invalidHandle
        }
        return notification
    }

    static func signal(_ handle: Handle, bits: UInt64, process: Process) throws(KernelError) {
        try notification(handle, in: process, requiring: .signal).signal(bits)
    }

    /// Waits up to `timeout` nanoseconds for bits on notification `handle`; returns them, now clear.
    static func wait(_ handle: Handle, timeout: UInt64, thread: Thread, process: Process) throws(KernelError) -> UInt64 {
        let notification = try notification(handle, in: process, requiring: .wait)
        if notification.bits == 0 {
            guard timeout > 0 else { throw .wouldBlock }
            guard notification.waiter == nil else { throw .accessDenied }
            let armed = try armTimeout(timeout, for: thread)
            while notification.bits == 0 && !thread.sleepExpired && !thread.killed {
                notification.waiter = thread
                Scheduler.block()
            }
            notification.waiter = nil
            if armed { Clock.cancelDeadline(token: thread.id) }
            if notification.bits == 0 { throw .timedOut }
        }
        let bits = notification.bits
        notification.bits = 0
        return bits
    }
}
