// The IPC fast path: `call` to a server already waiting in `receive`, and `replyReceive` to a
// caller waiting for its answer, when the message carries no handles. The message goes straight
// from one user buffer to the other through one kernel buffer, the CPU passes straight to the
// other thread (no run queue), and nothing is allocated (a thread's reply capability is made on
// its first call and reused after). Every check comes before any change:
// when one fails the fast path returns nil, having changed nothing, and the general code in
// IPC.swift does the work, with the same results. The state it leaves is the general code's.

import AArch64

enum IPCFastPath {
    /// Words of a message header the fast path reads: label, length, handle count.
    static let headerWords = 3

    /// `call`: x0 = port, x1 = message. The status, or nil to take the general path.
    static func call(_ frame: ExceptionFrame, thread: Thread, process: Process) -> KernelError? {
        let address = frame.register(1)
        guard let port = IPCFastPath.port(frame.register(0), in: process, requiring: .send),
              !port.isClosed, port.queue.isEmpty,
              let server = port.receivers.first, server.isAwaitingDirectMessage,
              server.translationBase != 0, let serverProcess = server.process,
              serverProcess.handles.count < serverProcess.handles.capacity,
              !Scheduler.hasReadyThreads(above: server.priority),
              let length = readHeader(at: address, into: thread.messageHeader) else { return nil }
        // The payload waits in the buffer of the queue slot the message would otherwise take.
        let payload = port.nextPayload
        guard copyPayload(from: address, length: length, to: payload) else { return nil }

        let reply = IPC.replyCapability(of: thread)
        guard let replyHandle = try? serverProcess.handles.insert(.reply(reply), rights: .reply) else { return nil }
        let header = thread.messageHeader
        header[IPCMessageLayout.handleCount / 8] = 0
        header[IPCMessageLayout.sender / 8] = process.id
        header[IPCMessageLayout.replyHandle / 8] = replyHandle.value
        aarch64_write_ttbr0(server.translationBase)
        aarch64_isb()
        guard write(header: header, payload: payload, length: length, to: server.receiveAddress) else {
            // The server's buffer is not writable: undo, and let the general path report it.
            _ = try? serverProcess.handles.remove(replyHandle)
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

    /// `replyReceive`: x0 = reply handle, x1 = message, x2 = port, x3 = timeout. The status, or
    /// nil to take the general path.
    static func replyReceive(_ frame: ExceptionFrame, thread: Thread, process: Process) -> KernelError? {
        let address = frame.register(1)
        guard frame.register(3) == UInt64.max, frame.register(0) != 0,
              let port = IPCFastPath.port(frame.register(2), in: process, requiring: .receive),
              !port.isClosed, port.queue.isEmpty,
              let reply = replyCapability(frame.register(0), in: process), reply.isAwaited,
              reply.caller.translationBase != 0,
              !Scheduler.hasReadyThreads(above: reply.caller.priority),
              let length = readHeader(at: address, into: thread.messageHeader) else { return nil }
        let caller = reply.caller
        let payload = caller.messageBuffer
        guard copyPayload(from: address, length: length, to: payload) else { return nil }

        let header = thread.messageHeader
        header[IPCMessageLayout.handleCount / 8] = 0
        header[IPCMessageLayout.sender / 8] = process.id
        header[IPCMessageLayout.replyHandle / 8] = 0
        aarch64_write_ttbr0(caller.translationBase)
        aarch64_isb()
        guard write(header: header, payload: payload, length: length, to: caller.callAddress) else {
            aarch64_write_ttbr0(thread.translationBase)
            aarch64_isb()
            return nil
        }
        _ = try? process.handles.remove(Handle(frame.register(0)))
        reply.status = .success
        reply.finished = true
        // Wait on the port for the next message, as `receive` does.
        thread.sleepExpired = false
        port.addReceiver(thread, buffer: address)
        thread.state = .blocked
        Scheduler.switchDirectly(from: thread, to: caller)
        if let result = thread.takeReceiveResult() { return result }
        // Woken for another reason (the port closed, a message queued, the process ended).
        IPC.removeWaiter(thread, from: port)
        return IPC.receive(from: port, into: address, timeout: .max, thread: thread, receiver: process)
    }

    private static func port(_ handle: UInt64, in process: Process, requiring rights: Rights) -> Port? {
        guard let entry = process.handles.entry(for: Handle(handle), requiring: rights),
              case .port(let port)? = entry.pointee.object else {
            return nil
        }
        return port
    }

    private static func replyCapability(_ handle: UInt64, in process: Process) -> ReplyCapability? {
        guard let entry = process.handles.entry(for: Handle(handle), requiring: .reply),
              case .reply(let reply)? = entry.pointee.object else {
            return nil
        }
        return reply
    }

    /// Reads the label, length and handle count at `address` into `header`; the payload length
    /// when the message is one for the fast path (no handles, a valid length, a buffer that lies
    /// in user space).
    private static func readHeader(at address: UInt64, into header: UnsafeMutablePointer<UInt64>) -> Int? {
        guard IPC.isMessageAddress(address),
              copy_from_user(header, address, UInt64(headerWords * 8)) == 0,
              header[IPCMessageLayout.handleCount / 8] == 0,
              header[IPCMessageLayout.length / 8] <= UInt64(IPCMessageLayout.maximumPayload) else { return nil }
        return Int(header[IPCMessageLayout.length / 8])
    }

    private static func copyPayload(from address: UInt64, length: Int, to payload: UnsafeMutableRawPointer) -> Bool {
        guard length > 0 else { return true }
        return copy_from_user(payload, address + UInt64(IPCMessageLayout.payload), UInt64((length + 7) & ~7)) == 0
    }

    /// Writes the header (its unused handle words zeroed) and payload at `address` in the address
    /// space in TTBR0.
    private static func write(header: UnsafeMutablePointer<UInt64>, payload: UnsafeRawPointer, length: Int,
                              to address: UInt64) -> Bool {
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<IPCMessageLayout.maximumHandles { handles[index] = 0 }
        guard copy_to_user(address, header, UInt64(IPCMessageLayout.payload)) == 0 else { return false }
        guard length > 0 else { return true }
        return copy_to_user(address + UInt64(IPCMessageLayout.payload), payload, UInt64((length + 7) & ~7)) == 0
    }
}
