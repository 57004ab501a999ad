// Ports: the core's MessagePort (core/MessagePort.swift: queue order, receive rights, closing)
// with the kernel's threads as waiters, woken by the scheduler.

typealias Port = MessagePort<SchedulerWaking>

extension MessagePort: ChargedObject where Waking == SchedulerWaking {}

extension MessagePort where Waking == SchedulerWaking {
    /// `thread` waits here in `receive`, ready to take a message straight into `address`.
    func addReceiver(_ thread: Thread, buffer address: UserAddress) {
        thread.receiveAddress = address
        thread.receiveResult = nil
        receivers.append(thread.receiveLink)
    }

    /// `addReceiver` with the list's work inlined, for the IPC fast path (`WaitList.appendInline`).
    @inline(__always)
    func addReceiverInline(_ thread: Thread, buffer address: UserAddress) {
        thread.receiveAddress = address
        thread.receiveResult = nil
        receivers.appendInline(thread.receiveLink)
    }

    /// The first thread blocked in a plain `receive` here, taken off the list: a message can go
    /// straight into its buffer. (Threads in `waitAny` only learn that something is queued.)
    func takeDirectReceiver() -> Thread? { takeReceiver { $0.isAwaitingDirectMessage } }

    /// Wakes the oldest waiter still blocked here; those killed meanwhile (woken to unwind, not
    /// yet gone) and those already woken for another reason (which look at the queue when they
    /// run) are dropped on the way: the one wake-up must reach a thread that would take the
    /// message, or it waits behind them for ever.
    func wakeOneReceiver() { wakeOneReceiver { $0.killed || $0.state != .blocked } }

}

extension IPC {
    static func port(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Port {
        try Handles.object(handle, of: Port.self, in: process, requiring: rights)
    }

    /// The port behind send handle `handle`, if it can take one more message: a receiver is left
    /// and the queue has room.
    static func portForSending(_ handle: Handle, in process: Process) throws(KernelError) -> Port {
        let port = try port(handle, in: process, requiring: .send)
        try port.checkCanSend()
        return port
    }
}
