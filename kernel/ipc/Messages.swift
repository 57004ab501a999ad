// Messages between user memory and the kernel: read from the sender's buffer with the handles
// they list taken out of its table (all or nothing), then written into a receiver's buffer with
// the handles installed in its table (all or nothing), or queued on the port meanwhile. The
// system calls that move messages (send, receive, call, reply, replyReceive) are here too;
// IPCFastPath does call and replyReceive without the general machinery when it can.

/// The IPC system calls and the rules that apply the core's to the kernel's threads.
enum IPC {}

/// A message inside the kernel, between the copy from the sender and the copy to the receiver.
typealias KernelMessage = InFlightMessage<KernelObject>

extension UserAddress {
    /// Not an address: the message is in the thread's saved registers (`RegisterMessageLayout`),
    /// for `callRegisters` and `replyReceiveRegisters`. No message address (it is not aligned):
    /// the dispatcher refuses it where a program passes an address (`SystemCalls.messageAddress`).
    static let registers = UserAddress(1)
}

/// The current address space's user memory (TTBR0), reached with unprivileged copies.
struct CurrentUserMemory: UserMemoryAccess {
    @inline(__always)
    func copyIn(to kernel: UnsafeMutableRawPointer, from user: UserAddress, count: UInt64) throws(KernelError) {
        try UserMemory.copyIn(to: kernel, from: user, count: count)
    }

    @inline(__always)
    func copyOut(to user: UserAddress, from kernel: UnsafeRawPointer, count: UInt64) throws(KernelError) {
        try UserMemory.copyOut(to: user, from: kernel, count: count)
    }
}

extension IPC {
    /// Reads a message from the current user memory and takes the handles it lists out of the
    /// sender's table, all or nothing (MessageTransfer.readIn). The header passes through the
    /// current thread's `messageHeader`; the payload goes to `payload`.
    @inline(__always)
    static func copyIn(_ message: inout KernelMessage, from address: UserAddress, sender: Process, thread: Thread,
                       payload: UnsafeMutableRawPointer) throws(KernelError) {
        try MessageTransfer.readIn(&message, from: address, memory: CurrentUserMemory(), sender: &sender.handles,
                                   senderID: sender.id, header: thread.messageHeader, payload: payload)
    }

    /// A message in `thread`'s registers. Out of line, so that the paths of messages in memory,
    /// into which `copyIn` is inlined, stay as short as they were.
    @inline(never)
    static func copyIn(_ message: inout KernelMessage, fromRegistersOf thread: Thread, sender: Process,
                       payload: UnsafeMutableRawPointer) throws(KernelError) {
        try MessageTransfer.readIn(&message, fromRegisters: thread.userRegisters, senderID: sender.id, payload: payload)
    }

    /// `copyIn` from memory, or from `thread`'s registers for `.registers`: for the calls that take
    /// either (`call`, `reply` and their register forms); `send` reads memory only.
    @inline(__always)
    static func read(_ message: inout KernelMessage, from address: UserAddress, sender: Process, thread: Thread,
                     payload: UnsafeMutableRawPointer) throws(KernelError) {
        if address == .registers {
            try copyIn(&message, fromRegistersOf: thread, sender: sender, payload: payload)
        } else {
            try copyIn(&message, from: address, sender: sender, thread: thread, payload: payload)
        }
    }

    /// Writes `message` into `target`'s registers; out of line as `copyIn(_:fromRegistersOf:)`.
    /// A call goes to the target's reply slot when that is empty (`ReplySlot`), else to its
    /// process's table.
    @inline(never)
    static func deliver(_ message: inout KernelMessage, toRegistersOf target: Thread,
                        receiver: Process) throws(KernelError) {
        guard target.replySlot == nil, let reply = message.reply?.downcast(to: ReplyCapability.self) else {
            try MessageTransfer.writeOut(&message, toRegisters: target.userRegisters, receiver: &receiver.handles)
            return
        }
        message.reply = nil
        do throws(KernelError) {
            try MessageTransfer.writeOut(&message, toRegisters: target.userRegisters, receiver: &receiver.handles)
        } catch {
            message.reply = reply
            throw error
        }
        ReplySlot.fillGeneral(target, with: reply)
        target.userRegisters[RegisterMessageLayout.replyHandle] = Handle.replySlot.value
    }

    /// Writes a message to the current user memory, or to `target`'s saved registers, installing
    /// its handles (and reply capability) in the receiver's table, all or nothing
    /// (MessageTransfer.writeOut). Handles that reach the receiver were moved, so receive-right
    /// counts stay as they are.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, of target: Thread, receiver: Process,
                        header: UnsafeMutablePointer<UInt64>) throws(KernelError) {
        if address == .registers {
            try deliver(&message, toRegistersOf: target, receiver: receiver)
        } else {
            try MessageTransfer.writeOut(&message, to: address, memory: CurrentUserMemory(), receiver: &receiver.handles,
                                         header: header)
        }
        PerCPU.current.ipc.messages &+= 1
    }

    /// Delivers `message` into `target`'s memory at `address` while `thread` runs: with the
    /// target's address space in TTBR0 for the copy.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, of target: Thread,
                        by thread: Thread) throws(KernelError) {
        guard let process = target.process, target.translationBase != .none else { throw .peerClosed }
        if address == .registers {
            // Kernel memory: no other address space needed.
            try deliver(&message, to: address, of: target, receiver: process, header: thread.messageHeader)
            return
        }
        target.translationBase.activate()
        defer { thread.translationBase.activate() }
        try deliver(&message, to: address, of: target, receiver: process, header: thread.messageHeader)
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
                // Its receive fails with the reason, and the message waits in the queue instead
                // (unless it is a call the receiver has no room for, which fails now).
                receiver.finishReceive(.failed(error))
                Scheduler.wake(receiver)
                if refuseCall(&message, because: error) { return nil }
            }
        }
        port.enqueue(&message)
        port.wakeOneReceiver()
        return nil
    }

    /// Inlined into the dispatcher, its one caller: out of line it costs about 50 instructions more.
    @inline(__always)
    static func send(port handle: Handle, message address: UserAddress, thread: Thread, sender: Process) throws(KernelError) {
        let port = try portForSending(handle, in: sender)
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: sender, thread: thread, payload: port.nextPayload)
        if let receiver = post(&message, on: port, by: thread) { Scheduler.wake(receiver) }
    }

    static func receive(port handle: Handle, message address: UserAddress, timeout: UInt64, thread: Thread,
                        receiver: Process) throws(KernelError) {
        let port = try port(handle, in: receiver, requiring: .receive)
        // An address that cannot be user memory is refused before waiting; one that is not
        // mapped is found when a message is delivered, which then stays queued.
        guard MessageTransfer.isMessageAddress(address) else { throw .badAddress }
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: receiver)
    }

    /// Takes the next message from `port` into `address`, waiting up to `timeout` nanoseconds.
    /// While the thread waits, a sender delivers straight into its buffer (`post`). `partner`, a
    /// caller just answered by `replyReceive`, runs next if this thread waits, or is woken.
    /// `address` is a message address (`MessageTransfer.isMessageAddress`, which the callers
    /// check) or `.registers`.
    static func receive(from port: Port, into address: UserAddress, timeout: UInt64, thread: Thread, receiver: Process,
                        handingOffTo partner: Thread? = nil) throws(KernelError) {
        var partner = partner
        defer { if let partner { Scheduler.wake(partner) } }
        var armed = false
        defer { if armed { Clock.cancelDeadline(token: thread.id) } }
        while true {
            // A thread whose process ended only unwinds: its memory is gone.
            if thread.killed { throw .peerClosed }
            if var message = port.queue.pop() {
                do throws(KernelError) {
                    try deliver(&message, to: address, of: thread, receiver: receiver, header: thread.messageHeader)
                    return
                } catch {
                    // Not taken: the message goes back to the head, so the port's order is kept
                    // (it came from the queue, so there is room); a call the receiver has no
                    // room for fails instead.
                    if !refuseCall(&message, because: error) { port.putBack(&message) }
                    throw error
                }
            }
            if port.isClosed { throw .peerClosed }
            guard timeout > 0 else { throw .wouldBlock }
            if !armed {
                armed = try armTimeout(timeout, for: thread)
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
            case nil: guard leaveWaiting(thread, port) else { throw .peerClosed }
            }
        }
    }

    /// After a wake without a message (its timeout, a message queued): takes `thread` off
    /// `port`'s waiters, and tells whether its process still holds a receive right there. It may
    /// have given the right up meanwhile, and that dismisses only the receives still on the
    /// port's waiters (`receiveRightLeft`): a send takes a receive it finds no longer blocked off
    /// them. A message there now is then the new holder's.
    @inline(never)
    static func leaveWaiting(_ thread: Thread, _ port: Port) -> Bool {
        removeWaiter(thread, from: port)
        guard let process = thread.process else { return false }
        return Handles.holdsReceiveRight(to: port, in: process)
    }

    /// A call whose receiver's handle table has no room for it (its handles and the reply
    /// capability) fails at once with `handleTableFull`, and the handles it carried are closed:
    /// otherwise its caller would wait for as long as that table stays full. Whether `message`
    /// was such a call; any other message is left to wait in the queue.
    static func refuseCall(_ message: inout KernelMessage, because error: KernelError) -> Bool {
        guard error == .handleTableFull, let capability = message.reply?.downcast(to: ReplyCapability.self) else { return false }
        message.reply = nil
        message.releaseAll()
        capability.fail(error)
        return true
    }

    static func call(port handle: Handle, message address: UserAddress, thread: Thread, caller: Process) throws(KernelError) {
        // The answer may fill the whole message, so all of it must be user space, as for a
        // receive buffer (and as the fast path asks): the answer's writes are checked against
        // that bound alone (`UserMemory`'s checked copies), not against the request's length.
        guard address == .registers || MessageTransfer.isMessageAddress(address) else { throw .badAddress }
        let port = try portForSending(handle, in: caller)
        var message = KernelMessage()
        try read(&message, from: address, sender: caller, thread: thread, payload: port.nextPayload)
        let reply = replyCapability(of: thread)
        reply.call.arm()
        message.reply = reply
        PerCPU.current.ipc.calls &+= 1
        thread.callAddress = address
        // A server waiting in `receive` has the message already and runs next.
        var server = post(&message, on: port, by: thread)
        while !reply.call.finished && !thread.killed {
            Scheduler.block(handingOffTo: server)
            server = nil
        }
        if let server { Scheduler.wake(server) }
        thread.callAddress = .none
        try reply.call.outcome()
    }

    /// Takes reply handle `handle` (found current) away from `thread` of `server`: from the
    /// thread's reply slot for `Handle.replySlot`, else from the table. `lettingGo` fails the
    /// call, as closing the handle does; an answer uses it up without.
    private static func useUp(_ handle: Handle, of thread: Thread, in server: Process, lettingGo: Bool) throws(KernelError) {
        if handle == .replySlot {
            try ReplySlot.empty(thread, lettingGo: lettingGo)
        } else if lettingGo {
            try Handles.uninstall(handle, from: server).release()
        } else {
            _ = try Handles.uninstall(handle, from: server)
        }
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
        guard address == .registers || MessageTransfer.isMessageAddress(address) else { throw .badAddress }
        var caller: Thread?
        if handle != .none {
            do throws(KernelError) {
                caller = try answer(handle, message: address, thread: thread, server: server)
            } catch {
                // A caller that died meanwhile is no error here (a `catch where` clause would let
                // this one through instead: the server would stop to handle an error it cannot
                // act on, and a memory manager took it for its port's end).
                guard error == .peerClosed else { throw error }
            }
        }
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: server, handingOffTo: caller)
    }

    /// Answers call `handle` with the message at `address`, written straight into the waiting
    /// caller's buffer. Returns the caller, answered but not yet woken; `peerClosed` when the
    /// caller no longer waits (the capability is used up all the same).
    static func answer(_ handle: Handle, message address: UserAddress, thread: Thread, server: Process) throws(KernelError) -> Thread {
        let capability = handle == .replySlot ? try ReplySlot.capability(of: thread)
                                : try Handles.object(handle, of: ReplyCapability.self, in: server, requiring: .reply)
        let caller = capability.caller
        guard capability.isAwaited else {
            // The caller was killed while waiting: nobody to answer, and its buffer is gone.
            try useUp(handle, of: thread, in: server, lettingGo: true)
            // The answer is dropped with the handles it carries, as with a port that closes: a
            // server in `replyReceive` is not told (it goes on to receive), and would keep them
            // for good. This thread is in no call of its own, so its answer buffer is free to
            // take the payload. A message that cannot be read moves nothing.
            if address != .registers {
                var dropped = KernelMessage()
                if (try? copyIn(&dropped, from: address, sender: server, thread: thread, payload: thread.messageBuffer)) != nil {
                    dropped.releaseAll()
                }
            }
            throw .peerClosed
        }
        var message = KernelMessage()
        try read(&message, from: address, sender: server, thread: thread, payload: caller.messageBuffer)
        try useUp(handle, of: thread, in: server, lettingGo: false)
        do throws(KernelError) {
            try deliver(&message, to: caller.callAddress, of: caller, by: thread)
            capability.call.finish(failure: nil)
        } catch {
            // The caller gets the error; handles it could not take are closed.
            message.releaseAll()
            capability.call.finish(failure: error)
        }
        return caller
    }
}
