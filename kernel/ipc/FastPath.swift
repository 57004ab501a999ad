// The IPC fast path: `call` to a server already waiting in `receive`, and `replyReceive` to a
// caller waiting for its answer, when the message carries no handles. The message goes straight
// from one user buffer to the other through one kernel buffer, the CPU passes straight to the
// other thread (no run queue; only when that thread's affinity allows this CPU), and nothing is
// allocated (a thread's reply capability is made with it and reused for every call). The forms
// with the message in registers pass the call through the server's reply slot (`ReplySlot`)
// rather than its handle table.
//
// Each operation reads straight down: every check first, each one falling back to the general
// path (Messages.swift) having changed nothing; then the commit point, after which the operation
// cannot fail back; then the transfer and the switch. The state it leaves is the general code's.
//
// The thread that blocks waits in its exception frame: the calls that may wait come in by an
// entry that saves every register (vectors.S, SYSTEM_CALLS_WAITING_IN_FRAME), so nothing on its
// kernel stack is needed again (`Thread.frameWait`), and its registers are not saved at the
// switch. The thread it passes to, if it waits in its own frame, has its wait finished here and
// returns to user space straight from that frame: nothing runs after the switch on either side.
// A thread that waits in its frame and is switched to the general way (woken by the general
// path, a closed port, its process's end) finishes its wait in `finishFrameWait` instead. Since
// the stack is left for good, nothing counted may be held at these switches.

/// How a wait in the frame ended, once finished the general way (`IPCFastPath.finishFrameWait`).
enum FrameWaitOutcome {
    /// Done; any values it returns are in the thread's registers.
    case completed
    case failed(KernelError)
}

enum IPCFastPath {
    /// `call` to a server blocked in `receive`.
    ///
    /// Objects are borrowed, not counted (`_withUnsafeGuaranteedRef`): the port is held by the
    /// caller's handle table, the server by the port's waiter list, its process by the server
    /// thread, and nothing else runs on this CPU meanwhile. This thread waits in its frame (see
    /// the top): the call returns only when the fast path does not apply, having changed nothing.
    ///
    /// `CPUs` says what the dispatcher knows of the CPUs online (`Scheduler.CPUsOnline`); this
    /// CPU's block is read once (`PerCPU.here`) and passed on, as nothing here switches threads
    /// before the end.
    @inline(__always)
    static func call<CPUs: Scheduler.CPUsOnline>(_ call: SystemCall.Call, thread: Thread, process: Process,
                                                 _ cpus: CPUs.Type) {
        // One step removed, so that the closures below are inlined into the caller.
        lookUpCall(call, thread: thread, process: process, on: PerCPU.here, cpus)
    }

    @inline(__always)
    private static func lookUpCall<CPUs: Scheduler.CPUsOnline>(_ call: SystemCall.Call, thread: Thread, process: Process,
                                                               on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type) {
        guard let port = borrowed(call.port, of: Port.self, in: process, requiring: .send) else { return }
        port._withUnsafeGuaranteedRef { port in
            guard !port.isClosed, port.queue.isEmpty, let server = port.firstReceiver else { return }
            server._withUnsafeGuaranteedRef { server in
                guard server.isAwaitingDirectMessage, server.receiveAddress != .registers, hasAddressSpace(server),
                      Scheduler.mayRunHere(server, on: cpu, cpus), let serverProcess = server.processReference else { return }
                serverProcess._withUnsafeGuaranteedRef { serverProcess in
                    transferCall(call.message, thread: thread, process: process, port: port, server: server,
                                 serverProcess: serverProcess, on: cpu, cpus)
                }
            }
        }
    }

    @inline(__always)
    private static func transferCall<CPUs: Scheduler.CPUsOnline>(_ address: UserAddress, thread: Thread, process: Process,
                                                                 port: Port, server: Thread, serverProcess: Process,
                                                                 on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type) {
        // Checks.
        guard serverProcess.handles.count < serverProcess.handles.capacity,
              !Scheduler.hasReadyThreads(above: server.priority, on: cpu),
              let length = readHeader(at: address, into: thread.messageHeader) else { return }
        // The payload waits in the buffer of the queue slot the message would otherwise take.
        let payload = port.nextPayload
        guard copyPayload(from: address, length: length, to: payload) else { return }
        reusableReplyCapability(of: thread)._withUnsafeGuaranteedRef { reply in
            guard let replyHandle = try? serverProcess.handles.insertInline(reply, rights: .reply) else { return }
            server.translationBase.activate()
            guard write(label: thread.messageHeader[IPCMessageLayout.label / 8], sender: process.id,
                        reply: replyHandle.value, payload: payload, length: length, to: server.receiveAddress) else {
                // The server's buffer is not writable: undo, and let the general path report it.
                serverProcess.handles.discard(replyHandle)
                thread.translationBase.activate()
                return
            }
            // Commit point: the message is in the server's buffer.
            handOffLeavingFrame(port: port, to: server, awaiting: reply, at: address, thread: thread, on: cpu, cpus)
        }
    }

    /// A call's second half, once its message is in the waiting server's buffer or registers:
    /// the server leaves the port's waiters with its message, this thread waits in its frame for
    /// the answer (at `address`), and the CPU passes straight to the server, which returns to user
    /// space from its own frame if it waits in one. `checked`: the caller made sure before its
    /// commit point that no ended thread waits to be released
    /// (`Scheduler.switchLeavingFrameWithNothingToRelease`), as the calls in registers do.
    @inline(__always)
    private static func handOffLeavingFrame<CPUs: Scheduler.CPUsOnline>(
        port: Port, to server: Thread, awaiting reply: ReplyCapability, at address: UserAddress, thread: Thread,
        on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type, checked: Bool = false
    ) -> Never {
        commitCall(port: port, awaiting: reply, at: address, thread: thread)
        enterFrameWait(thread, for: .answer)
        cpu.pointee.ipc.fastCalls &+= 1
        if server.waitsInFrame {
            // Its wait ends here: the message is in its buffer or registers.
            server.receiveAddress = .none
            server.endFrameWait(status: systemCallSuccess)
            switchLeaving(thread, to: server, resumingFrame: true, on: cpu, cpus, checked: checked)
        }
        server.finishReceive(.delivered)
        switchLeaving(thread, to: server, resumingFrame: false, on: cpu, cpus, checked: checked)
    }

    /// The switch that ends a fast leg, by `Scheduler.switchLeavingFrameWithNothingToRelease`
    /// when the leg `checked` there was nothing to release.
    @inline(__always)
    private static func switchLeaving<CPUs: Scheduler.CPUsOnline>(_ thread: Thread, to next: Thread, resumingFrame: Bool,
                                                                  on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type,
                                                                  checked: Bool) -> Never {
        if checked {
            Scheduler.switchLeavingFrameWithNothingToRelease(from: thread, to: next, resumingFrame: resumingFrame,
                                                             on: cpu, cpus)
        }
        if resumingFrame {
            Scheduler.switchLeavingFrame(from: thread, to: next, resumingFrame: true, fastLeg: true, on: cpu, cpus)
        }
        Scheduler.switchLeavingFrame(from: thread, to: next, resumingFrame: false, fastLeg: true, on: cpu, cpus)
    }

    /// What a hand-off changes: the server is off the port's waiters, and this thread waits for
    /// the answer at `address`.
    @inline(__always)
    private static func commitCall(port: Port, awaiting reply: ReplyCapability, at address: UserAddress, thread: Thread) {
        port.takeFirstReceiver()
        reply.call.arm()
        thread.callAddress = address
        // Cleared as any wait for ever does; written with `state` as one word (`Thread.state`).
        thread.sleepExpired = false
        thread.state = .blocked
    }

    /// What the code after a call's switch does, by either path: waits until the call is
    /// answered (or the thread killed), and gives its outcome.
    @inline(__always)
    private static func awaitAnswer(_ reply: ReplyCapability, thread: Thread) -> FrameWaitOutcome {
        while !reply.call.finished && !thread.killed { Scheduler.block() }
        thread.callAddress = .none
        do throws(KernelError) {
            try reply.call.outcome()
            return .completed
        } catch {
            return .failed(error)
        }
    }

    /// A thread that waited in its user frame, switched to the general way
    /// (thread_resume_frame_wait): finishes its wait as the code after a switch in the general
    /// path would have (which may wait again), and leaves the outcome in x0 (and a
    /// notification's bits in x1).
    static func finishFrameWait(_ thread: Thread) {
        let wait = thread.frameWait
        thread.frameWait = .none
        let outcome: FrameWaitOutcome
        switch wait {
        case .none:
            return
        case .answer:
            outcome = awaitAnswer(IPC.replyCapability(of: thread), thread: thread)
        case .message(let port, let address):
            guard let process = thread.processReference else { return }
            outcome = process._withUnsafeGuaranteedRef { received(on: port, into: address, thread: thread, process: $0) }
        case .finished:
            // Its values are in its frame already.
            return
        case .bits(let waitedOn):
            // Still its waiter, so the notification is there (`FrameWait.bits`); counted from
            // here, since the general wait may block again.
            let notification = waitedOn.takeUnretainedValue()
            if !IPC.awaitBits(on: notification, thread: thread) {
                outcome = .failed(.accessDenied)
            } else if thread.killed {
                // It only unwinds: the bits stay for the waiters that live on.
                outcome = .failed(.peerClosed)
            } else if notification.bits != 0 {
                returning(SystemCall.NotificationWait.Result(bits: notification.take()), in: thread.userRegisters)
                outcome = .completed
            } else {
                outcome = .failed(notification.isEnded ? .peerClosed : .timedOut)
            }
        }
        switch outcome {
        case .completed: thread.userRegisters[0] = systemCallSuccess
        case .failed(let error): thread.userRegisters[0] = error.rawValue
        }
    }

    /// `replyReceive` to a caller blocked in `call`, waiting for ever on a port with nothing
    /// queued. Objects are borrowed as in `call`: the port and the reply capability are held by
    /// this process's table, the caller by the capability. This thread then waits in its frame
    /// (see the top): the call returns only when the fast path does not apply.
    @inline(__always)
    static func replyReceive<CPUs: Scheduler.CPUsOnline>(_ call: SystemCall.ReplyReceive, thread: Thread,
                                                         process: Process, _ cpus: CPUs.Type) {
        let cpu = PerCPU.here
        _ = answer(call.reply, port: call.port, timeout: call.timeout, process: process) { port, reply, caller in
            caller.callAddress != .registers
                && transferReply(call, thread: thread, process: process, port: port, reply: reply, caller: caller,
                                 on: cpu, cpus)
        }
    }

    /// What `replyReceive`'s fast path checks first: a wait for ever, a reply handle and a
    /// receive handle that name what they should, nothing queued on the port, a caller still
    /// waiting. Then `transfer` answers it (false: it did not apply, nothing changed). Objects
    /// are borrowed as `replyReceive` says.
    @inline(__always)
    private static func answer(_ replyHandle: Handle, port portHandle: Handle, timeout: UInt64, process: Process,
                               _ transfer: (Port, ReplyCapability, Thread) -> Bool) -> Bool {
        guard timeout == UInt64.max, replyHandle != .none,
              let port = borrowed(portHandle, of: Port.self, in: process, requiring: .receive),
              let reply = borrowed(replyHandle, of: ReplyCapability.self, in: process, requiring: .reply) else { return false }
        return port._withUnsafeGuaranteedRef { port in
            reply._withUnsafeGuaranteedRef { reply in
                guard !port.isClosed, port.queue.isEmpty, reply.isAwaited else { return false }
                return reply.unretainedCaller._withUnsafeGuaranteedRef { caller in transfer(port, reply, caller) }
            }
        }
    }

    /// After `replyReceive`'s answer and wait on the port, once switched to the general way: the
    /// message a sender delivered, or else a receive again by the general path.
    @inline(__always)
    private static func received(on handle: Handle, into address: UserAddress, thread: Thread,
                                 process: Process) -> FrameWaitOutcome {
        switch thread.takeReceiveResult() {
        case .delivered: return .completed
        case .failed(let error): return .failed(error)
        case nil: break
        }
        // Woken for another reason (the port closed, a message queued, the process ended). Off
        // the waiter list first: the handle may be gone while the port lives on elsewhere.
        WaitLink.unlink(thread.receiveLink)
        guard let again = borrowed(handle, of: Port.self, in: process, requiring: .receive) else {
            return .failed(.peerClosed)
        }
        let reopened = again.takeUnretainedValue() // counted: it is held across the waits below
        do throws(KernelError) {
            try IPC.receive(from: reopened, into: address, timeout: .max, thread: thread, receiver: process)
            return .completed
        } catch {
            return .failed(error)
        }
    }

    /// The answer and the wait: false to take the general path (nothing changed); else it does
    /// not return.
    @inline(__always)
    private static func transferReply<CPUs: Scheduler.CPUsOnline>(
        _ call: SystemCall.ReplyReceive, thread: Thread, process: Process, port: Port, reply: ReplyCapability,
        caller: Thread, on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type
    ) -> Bool {
        // Checks.
        guard hasAddressSpace(caller), !Scheduler.hasReadyThreads(above: caller.priority, on: cpu),
              Scheduler.mayRunHere(caller, on: cpu, cpus),
              let length = readHeader(at: call.message, into: thread.messageHeader) else { return false }
        let payload = caller.messageBuffer
        guard copyPayload(from: call.message, length: length, to: payload) else { return false }
        caller.translationBase.activate()
        guard write(label: thread.messageHeader[IPCMessageLayout.label / 8], sender: process.id, reply: 0,
                    payload: payload, length: length, to: caller.callAddress) else {
            thread.translationBase.activate()
            return false
        }
        // Commit point: the answer is in the caller's buffer.
        finishAnswerLeavingFrame(reply, to: caller, thenWaitOn: port, named: call.port, at: call.message,
                                 thread: thread, on: cpu, cpus) {
            // The table's reference dropped; the caller thread still holds its capability. The
            // handle was found current in `answer`, and nothing has touched the table since.
            process.handles.discard(current: call.reply)
        }
    }

    /// An answer's second half, once it is in the caller's buffer or registers: the call is
    /// finished, the reply handle used up (`useUp`), this thread waits in its frame for a message
    /// on the port `portHandle` names (into `address`), and the CPU passes straight to the
    /// caller, which returns to user space from its own frame if it waits in one. `checked` as
    /// in `handOffLeavingFrame`, for the caller.
    @inline(__always)
    private static func finishAnswerLeavingFrame<CPUs: Scheduler.CPUsOnline>(
        _ reply: ReplyCapability, to caller: Thread, thenWaitOn port: Port, named portHandle: Handle,
        at address: UserAddress, thread: Thread, on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type,
        checked: Bool = false, useUp: () -> Void
    ) -> Never {
        commitAnswer(reply, thenWaitOn: port, at: address, thread: thread)
        enterFrameWait(thread, for: .message(on: portHandle, into: address))
        cpu.pointee.ipc.fastAnswers &+= 1
        // Last, as it may be a call: what is kept across it would be saved and loaded again.
        useUp()
        if caller.isAwaitingAnswerInFrame {
            // Its wait ends here: the answer is in its buffer or registers.
            caller.callAddress = .none
            caller.endFrameWait(status: systemCallSuccess)
            switchLeaving(thread, to: caller, resumingFrame: true, on: cpu, cpus, checked: checked)
        }
        switchLeaving(thread, to: caller, resumingFrame: false, on: cpu, cpus, checked: checked)
    }

    /// What an answer changes but the reply handle: the call is finished, and this thread waits
    /// on `port` at `address`.
    @inline(__always)
    private static func commitAnswer(_ reply: ReplyCapability, thenWaitOn port: Port, at address: UserAddress,
                                     thread: Thread) {
        reply.call.finish(failure: nil)
        // Wait on the port for the next message, as `receive` does (`sleepExpired` last, written
        // with `state` as one word).
        port.addReceiverInline(thread, buffer: address)
        thread.sleepExpired = false
        thread.state = .blocked
    }

    /// `callRegisters` to a server blocked in `replyReceiveRegisters`: the message goes from this
    /// thread's saved registers (`registers`) to the server's, and nothing passes through memory
    /// but the two register frames. Borrowing as in `call`. This thread waits in its frame: the
    /// call returns only when the fast path does not apply, having changed nothing.
    @inline(__always)
    static func callRegisters<CPUs: Scheduler.CPUsOnline>(_ registers: UnsafeMutablePointer<UInt64>, thread: Thread,
                                                          process: Process, _ cpus: CPUs.Type) {
        // One step removed, so that the closures below are inlined into the caller.
        lookUpCallRegisters(registers, thread: thread, process: process, on: PerCPU.here, cpus)
    }

    @inline(__always)
    private static func lookUpCallRegisters<CPUs: Scheduler.CPUsOnline>(
        _ registers: UnsafeMutablePointer<UInt64>, thread: Thread, process: Process,
        on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type
    ) {
        guard let port = borrowed(Handle(registers[0]), of: Port.self, in: process, requiring: .send) else { return }
        port._withUnsafeGuaranteedRef { port in
            guard !port.isClosed, port.queue.isEmpty, let server = port.firstReceiver else { return }
            // A port's receivers are threads of processes (the idle thread never receives). A
            // switch that has ended threads to release is left to the general path, which
            // releases them: the switch here then makes no call
            // (`Scheduler.switchLeavingFrameWithNothingToRelease`).
            server._withUnsafeGuaranteedRef { server in
                guard server.isAwaitingMessageInRegisters, hasAddressSpace(server),
                      Scheduler.mayRunHere(server, on: cpu, cpus), Scheduler.hasNothingToRelease(on: cpu) else { return }
                transferCallRegisters(registers, thread: thread, process: process, port: port, server: server,
                                      on: cpu, cpus)
            }
        }
    }

    @inline(__always)
    private static func transferCallRegisters<CPUs: Scheduler.CPUsOnline>(
        _ registers: UnsafeMutablePointer<UInt64>, thread: Thread, process: Process, port: Port, server: Thread,
        on cpu: UnsafeMutablePointer<PerCPU>, _ cpus: CPUs.Type
    ) {
        // Checks. The call goes to the server's reply slot, which must be empty (`ReplySlot`).
        let length = registers[RegisterMessageLayout.length]
        guard length <= UInt64(RegisterMessageLayout.maximumPayload), server.replySlot == nil,
              !Scheduler.hasReadyThreads(above: server.priority, on: cpu) else { return }
        reusableReplyCapability(of: thread)._withUnsafeGuaranteedRef { reply in
            // Commit point: nothing below fails.
            ReplySlot.fill(server, with: reply, of: thread)
            write(label: registers[RegisterMessageLayout.label], length: length, reply: Handle.replySlot.value,
                  sender: process.id, payload: registers, to: server.userRegisters)
            handOffLeavingFrame(port: port, to: server, awaiting: reply, at: .registers, thread: thread, on: cpu, cpus,
                                checked: true)
        }
    }

    /// `replyReceiveRegisters` answering the call in this thread's reply slot (`ReplySlot`), to a
    /// caller blocked in `callRegisters`, then waiting for ever on a port with nothing queued:
    /// the answer goes from this thread's registers to the caller's. This thread then waits in
    /// its frame, as in `callRegisters`, and the call returns only when the fast path does
    /// not apply. An answer through a table handle goes the general way: a call taken in
    /// registers gets one only when the slot was full.
    @inline(__always)
    static func replyReceiveRegisters<CPUs: Scheduler.CPUsOnline>(_ registers: UnsafeMutablePointer<UInt64>,
                                                                  thread: Thread, process: Process,
                                                                  _ cpus: CPUs.Type) {
        // One step removed, so that the closures below are inlined into the caller.
        answerSlot(registers, thread: thread, process: process, on: PerCPU.here, cpus)
    }

    @inline(__always)
    private static func answerSlot<CPUs: Scheduler.CPUsOnline>(_ registers: UnsafeMutablePointer<UInt64>, thread: Thread,
                                                               process: Process, on cpu: UnsafeMutablePointer<PerCPU>,
                                                               _ cpus: CPUs.Type) {
        let call = SystemCall.ReplyReceiveRegisters(registers: ArgumentRegisters(
            x0: registers[0], x3: registers[3], x4: registers[4]))
        guard call.timeout == UInt64.max, call.reply == .replySlot, let slot = thread.replySlot,
              let port = borrowed(call.port, of: Port.self, in: process, requiring: .receive) else { return }
        port._withUnsafeGuaranteedRef { port in
            slot._withUnsafeGuaranteedRef { reply in
                guard !port.isClosed, port.queue.isEmpty, reply.isAwaitedInRegisters else { return }
                reply.unretainedCaller._withUnsafeGuaranteedRef { caller in
                    // Checks.
                    let length = registers[RegisterMessageLayout.length]
                    // Ended threads to release: the general path's, as in `callRegisters`.
                    guard length <= UInt64(RegisterMessageLayout.maximumPayload),
                          hasAddressSpace(caller), !Scheduler.hasReadyThreads(above: caller.priority, on: cpu),
                          Scheduler.mayRunHere(caller, on: cpu, cpus), Scheduler.hasNothingToRelease(on: cpu) else { return }
                    // Commit point: the answer goes into the caller's registers.
                    write(label: registers[RegisterMessageLayout.label], length: length, reply: 0, sender: process.id,
                          payload: registers, to: caller.userRegisters)
                    finishAnswerLeavingFrame(reply, to: caller, thenWaitOn: port, named: call.port, at: .registers,
                                             thread: thread, on: cpu, cpus, checked: true) {
                        ReplySlot.emptyAnswered(thread, caller: caller)
                    }
                }
            }
        }
    }

    /// A message in registers from `payload`'s payload registers into `registers`, as
    /// `MessageTransfer.writeOut(_:toRegisters:receiver:)` writes one.
    @inline(__always)
    private static func write(label: UInt64, length: UInt64, reply: UInt64, sender: UInt64,
                              payload: UnsafeMutablePointer<UInt64>, to registers: UnsafeMutablePointer<UInt64>) {
        registers[RegisterMessageLayout.label] = label
        registers[RegisterMessageLayout.length] = length
        registers[RegisterMessageLayout.replyHandle] = reply
        registers[RegisterMessageLayout.sender] = sender
        MessageTransfer.copyPayload(from: UnsafeRawPointer(payload + RegisterMessageLayout.payload), length: Int(length),
                                    to: registers)
    }

    /// The running thread, its call committed, waits in its frame from now on
    /// (`Thread.waitInFrame`), and is in the call: the fast paths are tried before the
    /// dispatcher, which does this (and counts the call) for the calls they leave to it
    /// (`SystemCalls.dispatchWaitingInFrame`). Each fast path counts its own call: a leg of a
    /// call or an answer adds 1 to its counter, which stands for all the leg did
    /// (`IPCStatistics.Counters`).
    @inline(__always)
    private static func enterFrameWait(_ thread: Thread, for wait: FrameWait) {
        thread.inSystemCall = true
        thread.waitInFrame(for: wait)
    }

    /// Whether `thread`, found blocked and not killed, still has its address space to switch to:
    /// always. A process's end kills and wakes each of its threads inside a system call (every
    /// blocked thread is) before it drops the space and sets their `translationBase` to `.none`
    /// (`Processes.endNow`), so the fast paths need not test it; `DEBUG=1` does.
    @inline(__always)
    private static func hasAddressSpace(_ thread: Thread) -> Bool {
        #if KERNEL_DEBUG
        if thread.translationBase == .none { kernelPanic("a thread waiting in IPC without its address space") }
        #endif
        return true
    }

    /// `IPC.replyCapability(of:)` unretained (the thread holds it).
    private static func reusableReplyCapability(of thread: Thread) -> Unmanaged<ReplyCapability> {
        Unmanaged.passUnretained(IPC.replyCapability(of: thread))
    }

    /// The `Kind` object `handle` names with `rights`, unretained: its table entry holds it.
    @inline(__always)
    private static func borrowed<Kind: KernelObjectType>(_ handle: Handle, of kind: Kind.Type, in process: Process,
                                                         requiring rights: Rights) -> Unmanaged<Kind>? {
        process.handles.unretainedObject(for: handle, requiring: rights)?.downcast(to: kind)
    }

    /// Reads the label, length and handle count at `address` into `header`; the payload length
    /// when the message is one for the fast path (no handles, a valid length, a buffer that lies
    /// in user space).
    @inline(__always)
    private static func readHeader(at address: UserAddress, into header: UnsafeMutablePointer<UInt64>) -> Int? {
        guard MessageTransfer.isMessageAddress(address),
              UserMemory.readMessageHeader(into: header, fromChecked: address),
              header[IPCMessageLayout.handleCount / 8] == 0,
              header[IPCMessageLayout.length / 8] <= UInt64(IPCMessageLayout.maximumPayload) else { return nil }
        return Int(header[IPCMessageLayout.length / 8])
    }

    private static func copyPayload(from address: UserAddress, length: Int, to payload: UnsafeMutableRawPointer) -> Bool {
        guard length > 0 else { return true }
        return UserMemory.copyIn(to: payload, fromChecked: address.advanced(by: UInt64(IPCMessageLayout.payload)),
                                 count: UInt64((length + 7) & ~7))
    }

    /// Writes a handle-less message (header straight from registers, then the payload) at
    /// `address` in the address space in TTBR0.
    private static func write(label: UInt64, sender: UInt64, reply: UInt64, payload: UnsafeRawPointer, length: Int,
                              to address: UserAddress) -> Bool {
        guard UserMemory.writeMessageHeader(toChecked: address, label: label, length: UInt64(length), sender: sender,
                                            reply: reply) else { return false }
        guard length > 0 else { return true }
        return UserMemory.copyOut(toChecked: address.advanced(by: UInt64(IPCMessageLayout.payload)), from: payload,
                                  count: UInt64((length + 7) & ~7))
    }
}

// Notifications: `notificationSignal`, and `notificationWait` with bits there or waiting for
// ever, without the general dispatch and with the objects borrowed. A timed wait, a handle that
// does not name a notification with the right, or a notification someone else waits on takes
// the general path (ipc/Notification.swift), which reports the error.

extension IPCFastPath {
    /// `registers` are the caller's saved x0-x18: its arguments, and where the values go, as the
    /// general path puts them (x1 and x2, here nothing and the bits). Whether it did the call.
    static func signal(_ registers: UnsafeMutablePointer<UInt64>, process: Process) -> Bool {
        let call = SystemCall.NotificationSignal(registers: ArgumentRegisters(x0: registers[0], x1: registers[1]))
        guard let found = borrowed(call.notification, of: Notification.self, in: process, requiring: .signal) else { return false }
        // Its values first: nothing is then kept across the waking, which is a call.
        returning(NoValues(), in: registers)
        found._withUnsafeGuaranteedRef { $0.signal(call.bits) }
        return true
    }

    /// The bits, taken (true: done, counted, the status and bits in the registers). A wait for
    /// ever with no bits there waits in the thread's frame (see the top) and does not return;
    /// anything else is the general path's (false).
    @inline(__always)
    static func wait<CPUs: Scheduler.CPUsOnline>(_ registers: UnsafeMutablePointer<UInt64>, thread: Thread,
                                                 process: Process, _ cpus: CPUs.Type) -> Bool {
        let call = SystemCall.NotificationWait(registers: ArgumentRegisters(x0: registers[0], x1: registers[1]))
        guard let found = borrowed(call.notification, of: Notification.self, in: process, requiring: .wait) else { return false }
        let waits: Bool = found._withUnsafeGuaranteedRef { notification in
            if notification.bits != 0 {
                returning(SystemCall.NotificationWait.Result(bits: notification.take()), in: registers)
                return false
            }
            return true
        }
        guard waits else {
            PerCPU.current.systemCalls &+= 1
            registers[0] = systemCallSuccess
            return true
        }
        guard call.timeout == .max, found._withUnsafeGuaranteedRef({ $0.waiter == nil }) else { return false }
        // Not counted, though its handle may be closed meanwhile: the signal that wakes this
        // thread hands it the bits, and the notification's end tells it (`FrameWait.bits`).
        // Nothing counted may be held from here on: this stack is never returned to.
        found._withUnsafeGuaranteedRef { $0.waiter = Unmanaged.passUnretained(thread) }
        thread.sleepExpired = false
        thread.state = .blocked
        enterFrameWait(thread, for: .bits(found))
        PerCPU.current.systemCalls &+= 1
        Scheduler.blockLeavingFrame(thread, cpus)
    }

    /// A call's values in x1 and x2, as `SystemCalls.serve` leaves them.
    @inline(__always)
    private static func returning<Result: SystemCallResult>(_ result: Result, in registers: UnsafeMutablePointer<UInt64>) {
        let values = result.registers
        registers[1] = values.x1
        registers[2] = values.x2
    }
}

// What only the fast path uses: objects borrowed in place, without counting a reference.

extension Unmanaged where Instance == KernelObject {
    /// The object as a `Kind`, if it is one, still without counting a reference.
    @inline(__always)
    fileprivate func downcast<Kind: KernelObjectType>(to type: Kind.Type) -> Unmanaged<Kind>? {
        guard _withUnsafeGuaranteedRef({ $0.isKind(type) }) else { return nil }
        return Unmanaged<Kind>.fromOpaque(toOpaque())
    }
}

extension ReplyCapability {
    /// The caller: this capability holds it.
    fileprivate var unretainedCaller: Unmanaged<Thread> { Unmanaged.passUnretained(caller) }
}
