// The IPC fast path: `call` to a server already waiting in `receive`, and `replyReceive` to a
// caller waiting for its answer, when the message carries no handles. The message goes straight
// from one user buffer to the other through one kernel buffer, the CPU passes straight to the
// other thread (no run queue), and nothing is allocated (a thread's reply capability is made on
// its first call and reused after). Every check comes before any change:
// when one fails the fast path returns nil, having changed nothing, and the general code in
// IPC.swift does the work, with the same results. The state it leaves is the general code's.

import AArch64

enum IPCFastPath {
    /// `call`: x0 = port, x1 = message. The status, or nil to take the general path.
    ///
    /// Objects are borrowed, not counted (`_withUnsafeGuaranteedRef`): the port is held by the
    /// caller's handle table, the server by the port's waiter list, its process by the server
    /// thread, and nothing else runs on this CPU meanwhile. After the switch only `thread` and
    /// its own reply capability are touched.
    static func call(_ frame: ExceptionFrame, thread: Thread, process: Process) -> KernelError? {
        guard let port = port(frame.register(0), in: process, requiring: .send) else { return nil }
        return port._withUnsafeGuaranteedRef { port in
            guard !port.isClosed, port.queue.isEmpty, let server = port.firstReceiver else { return nil }
            return server._withUnsafeGuaranteedRef { server in
                guard server.isAwaitingDirectMessage, server.translationBase != 0,
                      let serverProcess = server.processReference else { return nil }
                return serverProcess._withUnsafeGuaranteedRef { serverProcess in
                    call(frame, thread: thread, process: process, port: port, server: server, serverProcess: serverProcess)
                }
            }
        }
    }

    @inline(__always)
    private static func call(_ frame: ExceptionFrame, thread: Thread, process: Process, port: Port, server: Thread,
                             serverProcess: Process) -> KernelError? {
        let address = frame.register(1)
        guard serverProcess.handles.count < serverProcess.handles.capacity,
              !Scheduler.hasReadyThreads(above: server.priority),
              let length = readHeader(at: address, into: thread.messageHeader) else { return nil }
        // The payload waits in the buffer of the queue slot the message would otherwise take.
        let payload = port.nextPayload
        guard copyPayload(from: address, length: length, to: payload) else { return nil }
        return IPC.reusableReplyCapability(of: thread)._withUnsafeGuaranteedRef { reply in
            guard let replyHandle = try? serverProcess.handles.insert(.reply(reply), rights: .reply) else { return nil }
            aarch64_write_ttbr0(server.translationBase)
            aarch64_isb()
            guard write(label: thread.messageHeader[IPCMessageLayout.label / 8], sender: process.id,
                        reply: replyHandle.value, payload: payload, length: length, to: server.receiveAddress) else {
                // The server's buffer is not writable: undo, and let the general path report it.
                serverProcess.handles.discard(replyHandle)
                aarch64_write_ttbr0(thread.translationBase)
                aarch64_isb()
                return nil
            }
            port.takeFirstReceiver()
            server.finishReceive(.success)
            reply.finished = false
            thread.callAddress = address
            thread.state = .blocked
            Scheduler.switchDirectly(from: thread, to: server)
            // Answered (by either path), or killed while waiting.
            while !reply.finished && !thread.killed { Scheduler.block() }
            thread.callAddress = 0
            return reply.finished ? reply.status : .peerClosed
        }
    }

    /// `replyReceive`: x0 = reply handle, x1 = message, x2 = port, x3 = timeout. The status, or
    /// nil to take the general path. Objects are borrowed as in `call`: the port and the reply
    /// capability are held by this process's table, the caller by the capability; after the
    /// switch the port is looked up again, since it may have been closed meanwhile.
    static func replyReceive(_ frame: ExceptionFrame, thread: Thread, process: Process) -> KernelError? {
        guard frame.register(3) == UInt64.max, frame.register(0) != 0,
              let port = port(frame.register(2), in: process, requiring: .receive),
              let reply = replyCapability(frame.register(0), in: process) else { return nil }
        let status: KernelError?? = port._withUnsafeGuaranteedRef { port in
            reply._withUnsafeGuaranteedRef { reply in
                guard !port.isClosed, port.queue.isEmpty, reply.isAwaited else { return nil }
                return reply.unretainedCaller._withUnsafeGuaranteedRef { caller in
                    replyReceive(frame, thread: thread, process: process, port: port, reply: reply, caller: caller)
                }
            }
        }
        guard let status else { return nil }
        if let status { return status }
        // Woken for another reason (the port closed, a message queued, the process ended). Off
        // the waiter list first: the handle may be gone while the port lives on elsewhere.
        WaitLink.unlink(thread.receiveLink)
        guard let again = IPCFastPath.port(frame.register(2), in: process, requiring: .receive) else { return .peerClosed }
        let reopened = again.takeUnretainedValue() // counted: it is held across the waits below
        return IPC.receive(from: reopened, into: frame.register(1), timeout: .max, thread: thread, receiver: process)
    }

    /// The answer and the wait: nil to take the general path (nothing changed), .some(nil) when
    /// woken without a message delivered, else the receive's status.
    @inline(__always)
    private static func replyReceive(_ frame: ExceptionFrame, thread: Thread, process: Process, port: Port,
                                     reply: ReplyCapability, caller: Thread) -> KernelError?? {
        let address = frame.register(1)
        guard caller.translationBase != 0, !Scheduler.hasReadyThreads(above: caller.priority),
              let length = readHeader(at: address, into: thread.messageHeader) else { return nil }
        let payload = caller.messageBuffer
        guard copyPayload(from: address, length: length, to: payload) else { return nil }

        aarch64_write_ttbr0(caller.translationBase)
        aarch64_isb()
        guard write(label: thread.messageHeader[IPCMessageLayout.label / 8], sender: process.id, reply: 0,
                    payload: payload, length: length, to: caller.callAddress) else {
            aarch64_write_ttbr0(thread.translationBase)
            aarch64_isb()
            return nil
        }
        reply.status = .success
        reply.finished = true
        // Drops the table's reference; the caller thread still holds its capability.
        process.handles.discard(Handle(frame.register(0)))
        // Wait on the port for the next message, as `receive` does.
        thread.sleepExpired = false
        port.addReceiver(thread, buffer: address)
        thread.state = .blocked
        Scheduler.switchDirectly(from: thread, to: caller)
        return .some(thread.takeReceiveResult())
    }

    /// The port `handle` names with `rights`, unretained: its table entry holds it.
    private static func port(_ handle: UInt64, in process: Process, requiring rights: Rights) -> Unmanaged<Port>? {
        process.handles.entry(for: Handle(handle), requiring: rights)?.pointee.object?.unretainedPort
    }

    private static func replyCapability(_ handle: UInt64, in process: Process) -> Unmanaged<ReplyCapability>? {
        process.handles.entry(for: Handle(handle), requiring: .reply)?.pointee.object?.unretainedReply
    }

    /// Reads the label, length and handle count at `address` into `header`; the payload length
    /// when the message is one for the fast path (no handles, a valid length, a buffer that lies
    /// in user space).
    @inline(__always)
    private static func readHeader(at address: UInt64, into header: UnsafeMutablePointer<UInt64>) -> Int? {
        guard IPC.isMessageAddress(address),
              read_message_header(header, address) == 0,
              header[IPCMessageLayout.handleCount / 8] == 0,
              header[IPCMessageLayout.length / 8] <= UInt64(IPCMessageLayout.maximumPayload) else { return nil }
        return Int(header[IPCMessageLayout.length / 8])
    }

    private static func copyPayload(from address: UInt64, length: Int, to payload: UnsafeMutableRawPointer) -> Bool {
        guard length > 0 else { return true }
        return copy_from_user(payload, address + UInt64(IPCMessageLayout.payload), UInt64((length + 7) & ~7)) == 0
    }

    /// Writes a handle-less message (header straight from registers, then the payload) at
    /// `address` in the address space in TTBR0.
    private static func write(label: UInt64, sender: UInt64, reply: UInt64, payload: UnsafeRawPointer, length: Int,
                              to address: UInt64) -> Bool {
        guard write_message_header(address, label, UInt64(length), sender, reply) == 0 else { return false }
        guard length > 0 else { return true }
        return copy_to_user(address + UInt64(IPCMessageLayout.payload), payload, UInt64((length + 7) & ~7)) == 0
    }
}
