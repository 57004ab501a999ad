// Ports: bounded message queues with a list of threads waiting to receive. A port is closed when
// the last handle with the receive right goes; its queued messages are dropped then and its
// waiters woken to find it closed.

final class Port {
    static let queueCapacity = 16

    var queue = MessageRing<KernelMessage>(capacity: Port.queueCapacity)
    /// One payload buffer per queue slot; a queued message points into the buffer of its slot.
    let payloads = UnsafeMutableRawPointer.allocate(byteCount: Port.queueCapacity * IPCMessageLayout.maximumPayload,
                                                    alignment: 16)

    /// The buffer for the message the next push will queue.
    var nextPayload: UnsafeMutableRawPointer { payloads + queue.nextIndex * IPCMessageLayout.maximumPayload }
    /// Threads blocked in `receive` or `waitAny` on this port, oldest first, linked through
    /// their own wait links (one per port a thread can wait on at once, see `Thread.waitLinks`).
    let receivers = WaitList<Thread>()
    /// Handles with the receive right; when the last goes, the port is closed.
    var receiveHandles = 0
    var isClosed = false

    /// No receiver is left: queued messages are dropped (their reply capabilities fail their
    /// callers) and blocked receivers, if any, are woken to find the port closed.
    func close() {
        isClosed = true
        queue.drain { message in
            for index in 0..<message.handleCount { if let handle = message.handles[index] { IPC.released(handle) } }
            message.reply?.fail()
        }
        receivers.removeAll { waiter in Scheduler.wake(waiter.takeUnretainedValue()) }
    }

    /// The first thread blocked in a plain `receive` here, taken off the list: a message can go
    /// straight into its buffer. (Threads in `waitAny` only learn that something is queued.)
    func takeDirectReceiver() -> Thread? {
        guard let link = receivers.first(where: { $0._withUnsafeGuaranteedRef { $0.isAwaitingDirectMessage } }) else {
            return nil
        }
        receivers.remove(link)
        return link.pointee.waiter.takeUnretainedValue()
    }

    /// `thread` waits here in `receive`, ready to take a message straight into `address`.
    func addReceiver(_ thread: Thread, buffer address: UserAddress) {
        thread.receiveAddress = address
        thread.receiveResult = nil
        receivers.append(thread.receiveLink)
    }

    /// Queues `message` (the caller checked there is room), its payload moved into the buffer
    /// of the slot it takes.
    func enqueue(_ message: inout KernelMessage) {
        if message.length > 0, let payload = message.payload, payload != nextPayload {
            nextPayload.copyMemory(from: payload, byteCount: message.length)
        }
        message.payload = nextPayload
        try? queue.push(message)
    }

    /// The oldest waiter, unretained (the list holds it), for the fast path.
    var firstReceiver: Unmanaged<Thread>? { receivers.first?.pointee.waiter }

    /// Drops the oldest waiter from the list (the fast path has just handed it a message).
    func takeFirstReceiver() {
        _ = receivers.removeFirst()
    }

    /// Wakes the oldest live waiter; threads killed while waiting are dropped on the way.
    func wakeOneReceiver() {
        while let waiter = receivers.removeFirst() {
            let thread = waiter.takeUnretainedValue()
            if thread.state != .dead {
                Scheduler.wake(thread)
                return
            }
        }
    }

    deinit {
        queue.destroy()
        receivers.destroy()
        payloads.deallocate()
    }
}

extension IPC {
    static func port(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Port {
        guard case .port(let port) = try lookup(handle, in: process, requiring: rights).object else { throw .invalidHandle }
        return port
    }

    /// The port behind send handle `handle`, if it can take one more message: a receiver is left
    /// and the queue has room.
    static func portForSending(_ handle: Handle, in process: Process) throws(KernelError) -> Port {
        let port = try port(handle, in: process, requiring: .send)
        guard !port.isClosed else { throw .peerClosed }
        guard !port.queue.isFull else { throw .queueFull }
        return port
    }
}
