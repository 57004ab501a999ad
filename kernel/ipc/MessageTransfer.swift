// Messages between user memory and the kernel: read from the sender's buffer with the handles
// they list taken out of its table (all or nothing), then written into a receiver's buffer with
// the handles installed in its table (all or nothing), or queued on the port meanwhile. The
// system calls that move messages (send, receive, call, reply, replyReceive) are here too;
// IPCFastPath does call and replyReceive without the general machinery when it can.

/// Up to four handles moving with a message. Plain fields rather than an inline array: indexing
/// an inline array stored in a struct can copy the whole array, on every access.
struct HandleSlots {
    var first: TransferredHandle?
    var second: TransferredHandle?
    var third: TransferredHandle?
    var fourth: TransferredHandle?

    subscript(index: Int) -> TransferredHandle? {
        get {
            switch index {
            case 0: return first
            case 1: return second
            case 2: return third
            default: return fourth
            }
        }
        set {
            switch index {
            case 0: first = newValue
            case 1: second = newValue
            case 2: third = newValue
            default: fourth = newValue
            }
        }
    }
}

/// A message inside the kernel, between the copy from the sender and the copy to the receiver.
struct KernelMessage {
    var label: UInt64 = 0
    var length = 0
    var sender: UInt64 = 0
    var handles = HandleSlots()
    var handleCount = 0
    /// The payload's bytes: a 256-byte buffer owned by the port's queue slot or the waiting
    /// caller's thread, so the message itself stays a few words and user data is copied once in
    /// and once out.
    var payload: UnsafeMutableRawPointer?
    var reply: ReplyCapability?
}

extension IPC {
    /// Whether a whole `IPCMessage` at `address` lies in user space, 8-byte aligned.
    @inline(__always)
    static func isMessageAddress(_ address: UserAddress) -> Bool {
        address.value & 7 == 0 && UserMemory.isUserRange(address, UInt64(IPCMessageLayout.size))
    }

    /// Reads a message from user memory and takes the handles it lists out of the sender's table.
    /// All or nothing: on an error, the sender keeps every handle. The header passes through the
    /// current thread's `messageHeader`; the payload goes to `payload`.
    static func copyIn(_ message: inout KernelMessage, from address: UserAddress, sender: Process, thread: Thread,
                       payload: UnsafeMutableRawPointer) throws(KernelError) {
        guard address.value & 7 == 0 else { throw .badAddress }
        // The header first; then only as much payload as the message says it carries.
        let header = thread.messageHeader
        try UserMemory.copyIn(to: header, from: address, count: UInt64(IPCMessageLayout.payload))
        let length = header[IPCMessageLayout.length / 8]
        let count = header[IPCMessageLayout.handleCount / 8]
        guard length <= UInt64(IPCMessageLayout.maximumPayload), count <= UInt64(IPCMessageLayout.maximumHandles) else {
            throw .invalidArgument
        }
        if length > 0 {
            let padded = (length + 7) & ~7
            try UserMemory.copyIn(to: payload, from: address.advanced(by: UInt64(IPCMessageLayout.payload)), count: padded)
        }
        // Check every handle first, then move them all.
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<Int(count) {
            for earlier in 0..<index where handles[earlier] == handles[index] { throw .invalidArgument }
            _ = try lookup(Handle(handles[index]), in: sender, requiring: .transfer)
        }
        for index in 0..<Int(count) {
            message.handles[index] = try uninstall(Handle(handles[index]), from: sender)
        }
        message.label = header[IPCMessageLayout.label / 8]
        message.length = Int(length)
        message.handleCount = Int(count)
        message.sender = sender.id
        message.payload = payload
    }

    /// Writes a message to user memory (the current TTBR0's), installing its handles (and reply
    /// capability) in the receiver's table. All or nothing: if they do not fit or the memory is
    /// not writable, the message keeps everything and the error says why. (Handles that reach
    /// the receiver were moved, so counts stay as they are.) The header is built in the current
    /// thread's `messageHeader`, `header`.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, receiver: Process,
                        header: UnsafeMutablePointer<UInt64>) throws(KernelError) {
        guard isMessageAddress(address) else { throw .badAddress }
        let needed = message.handleCount + (message.reply == nil ? 0 : 1)
        guard receiver.handles.capacity - receiver.handles.count >= needed else { throw .handleTableFull }
        header[IPCMessageLayout.label / 8] = message.label
        header[IPCMessageLayout.length / 8] = UInt64(message.length)
        header[IPCMessageLayout.handleCount / 8] = UInt64(message.handleCount)
        header[IPCMessageLayout.sender / 8] = message.sender
        header[IPCMessageLayout.replyHandle / 8] = 0
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<IPCMessageLayout.maximumHandles { handles[index] = 0 }
        // Room was checked, so every install succeeds.
        for index in 0..<message.handleCount {
            guard let transferred = message.handles[index],
                  let handle = try? install(transferred.object, rights: transferred.rights, in: receiver) else { continue }
            handles[index] = handle.value
            message.handles[index] = nil
        }
        if let reply = message.reply, let handle = try? install(.reply(reply), rights: .reply, in: receiver) {
            header[IPCMessageLayout.replyHandle / 8] = handle.value
        }
        do throws(KernelError) {
            try UserMemory.copyOut(to: address, from: header, count: UInt64(IPCMessageLayout.payload))
            if message.length > 0, let payload = message.payload {
                let padded = UInt64((message.length + 7) & ~7)
                try UserMemory.copyOut(to: address.advanced(by: UInt64(IPCMessageLayout.payload)), from: payload,
                                       count: padded)
            }
        } catch {
            // Not taken: the handles come back out of the receiver's table into the message.
            for index in 0..<message.handleCount where handles[index] != 0 {
                message.handles[index] = try? uninstall(Handle(handles[index]), from: receiver)
            }
            if header[IPCMessageLayout.replyHandle / 8] != 0 {
                _ = try? uninstall(Handle(header[IPCMessageLayout.replyHandle / 8]), from: receiver)
            }
            throw error
        }
        message.reply = nil
    }

    /// Delivers `message` into `target`'s memory at `address` while `thread` runs: with the
    /// target's address space in TTBR0 for the copy.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, of target: Thread,
                        by thread: Thread) throws(KernelError) {
        guard let process = target.process, target.translationBase != .none else { throw .peerClosed }
        target.translationBase.activate()
        defer { thread.translationBase.activate() }
        try deliver(&message, to: address, receiver: process, header: thread.messageHeader)
    }

    /// Gives a message to the first thread blocked in `receive` on `port`, straight into its
    /// buffer, or else queues it (the caller checked there is room). Returns the receiver that
    /// took it, still blocked, for the caller to hand the CPU to or wake.
    static func post(_ message: inout KernelMessage, on port: Port, by thread: Thread) -> Thread? {
        if port.queue.isEmpty, let receiver = port.takeDirectReceiver() {
            do throws(KernelError) {
                try deliver(&message, to: receiver.receiveAddress, of: receiver, by: thread)
                receiver.finishReceive(.delivered)
                return receiver
            } catch {
                // Its receive fails with the reason, and the message waits in the queue instead.
                receiver.finishReceive(.failed(error))
                Scheduler.wake(receiver)
            }
        }
        port.enqueue(&message)
        port.wakeOneReceiver()
        return nil
    }

    static func send(port handle: Handle, message address: UserAddress, thread: Thread, sender: Process) throws(KernelError) {
        let port = try portForSending(handle, in: sender)
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: sender, thread: thread, payload: port.nextPayload)
        if let receiver = post(&message, on: port, by: thread) { Scheduler.wake(receiver) }
    }

    static func receive(port handle: Handle, message address: UserAddress, timeout: UInt64, thread: Thread,
                        receiver: Process) throws(KernelError) {
        let port = try port(handle, in: receiver, requiring: .receive)
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: receiver)
    }

    /// Takes the next message from `port` into `address`, waiting up to `timeout` nanoseconds.
    /// While the thread waits, a sender delivers straight into its buffer (`post`). `partner`, a
    /// caller just answered by `replyReceive`, runs next if this thread waits, or is woken.
    static func receive(from port: Port, into address: UserAddress, timeout: UInt64, thread: Thread, receiver: Process,
                        handingOffTo partner: Thread? = nil) throws(KernelError) {
        var partner = partner
        defer { if let partner { Scheduler.wake(partner) } }
        // An address that cannot be user memory is refused before waiting; one that is not
        // mapped is found when a message is delivered, which then stays queued.
        guard isMessageAddress(address) else { throw .badAddress }
        var armed = false
        defer { if armed { Clock.cancelDeadline(token: thread.id) } }
        while true {
            // A thread whose process ended only unwinds: its memory is gone.
            if thread.killed { throw .peerClosed }
            if var message = port.queue.pop() {
                do throws(KernelError) {
                    try deliver(&message, to: address, receiver: receiver, header: thread.messageHeader)
                    return
                } catch {
                    // Not taken: the message goes back (it came from the queue, so there is room).
                    port.enqueue(&message)
                    throw error
                }
            }
            if port.isClosed { throw .peerClosed }
            guard timeout > 0 else { throw .wouldBlock }
            if !armed {
                armed = armTimeout(timeout, for: thread)
            } else if thread.sleepExpired {
                throw .timedOut
            }
            port.addReceiver(thread, buffer: address)
            Scheduler.block(handingOffTo: partner)
            partner = nil
            // A sender delivered (or tried to) straight into the buffer.
            switch thread.takeReceiveResult() {
            case .delivered: return
            case .failed(let error): throw error
            case nil: removeWaiter(thread, from: port)
            }
        }
    }

    static func call(port handle: Handle, message address: UserAddress, thread: Thread, caller: Process) throws(KernelError) {
        let port = try portForSending(handle, in: caller)
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: caller, thread: thread, payload: port.nextPayload)
        let reply = replyCapability(of: thread)
        reply.arm()
        message.reply = reply
        thread.callAddress = address
        // A server waiting in `receive` has the message already and runs next.
        var server = post(&message, on: port, by: thread)
        while !reply.finished && !thread.killed {
            Scheduler.block(handingOffTo: server)
            server = nil
        }
        if let server { Scheduler.wake(server) }
        thread.callAddress = .none
        try reply.outcome()
    }

    static func reply(_ handle: Handle, message address: UserAddress, thread: Thread, server: Process) throws(KernelError) {
        Scheduler.wake(try answer(handle, message: address, thread: thread, server: server))
    }

    /// `replyReceive`: answers call `handle` (none if 0), then waits on `port` for the next
    /// message into the same buffer. The answered caller runs while this thread waits, with no
    /// pass through the run queue. With a bad port handle the call is not answered either; a
    /// caller that died meanwhile is no error for the server, which goes on to receive.
    static func replyReceive(reply handle: Handle, message address: UserAddress, port portHandle: Handle,
                             timeout: UInt64, thread: Thread, server: Process) throws(KernelError) {
        let port = try port(portHandle, in: server, requiring: .receive)
        var caller: Thread?
        if handle != .none {
            do throws(KernelError) {
                caller = try answer(handle, message: address, thread: thread, server: server)
            } catch where error != .peerClosed {
                throw error
            }
        }
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: server, handingOffTo: caller)
    }

    /// Answers call `handle` with the message at `address`, written straight into the waiting
    /// caller's buffer. Returns the caller, answered but not yet woken; `peerClosed` when the
    /// caller no longer waits (the capability is used up all the same).
    static func answer(_ handle: Handle, message address: UserAddress, thread: Thread, server: Process) throws(KernelError) -> Thread {
        guard case .reply(let capability) = try lookup(handle, in: server, requiring: .reply).object else {
            throw .invalidHandle
        }
        let caller = capability.caller
        guard capability.isAwaited else {
            // The caller was killed while waiting: nobody to answer, and its buffer is gone.
            released(try uninstall(handle, from: server))
            throw .peerClosed
        }
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: server, thread: thread, payload: caller.messageBuffer)
        _ = try uninstall(handle, from: server)
        do throws(KernelError) {
            try deliver(&message, to: caller.callAddress, of: caller, by: thread)
            capability.finish(failure: nil)
        } catch {
            // The caller gets the error; handles it could not take are closed.
            for index in 0..<message.handleCount { if let handle = message.handles[index] { released(handle) } }
            capability.finish(failure: error)
        }
        return caller
    }
}
