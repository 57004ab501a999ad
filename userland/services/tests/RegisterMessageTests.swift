// Messages in registers (`callRegisters`, `replyReceiveRegisters`; docs/IPC.md): calls and
// answers of up to 64 bytes between a client's registers and a server's, alone and mixed with
// messages in memory, and what does not fit.

/// A register message of `count` bytes whose byte `index` is `index * 3 + seed`.
private func pattern(_ count: Int, seed: Int, label: UInt64) -> RegisterMessage {
    var message = RegisterMessage(label: label)
    message.fill(count: count) { UInt8(truncatingIfNeeded: $0 * 3 + seed) }
    return message
}

private func holdsPattern(_ message: RegisterMessage, _ count: Int, seed: Int) -> Bool {
    message.length == count && (0..<count).allSatisfy { message[byte: $0] == UInt8(truncatingIfNeeded: $0 * 3 + seed) }
}

/// An echo server that serves in registers (its start argument 4), and the port to call it on;
/// nil, reported, when it could not start.
private func startEchoInRegisters(_ suite: inout Suite) -> (port: Handle, server: ChildProcess)? {
    let port = try? IPC.createPort()
    let serverSide = port.flatMap { try? IPC.duplicate($0, rights: [.receive, .transfer]) }
    guard let port, let serverSide, let server = try? System.spawn("echo", argument: 4, handle: serverSide) else {
        if let serverSide { try? IPC.close(serverSide) }
        if let port { try? IPC.close(port) }
        suite.check(false, "an echo server that serves in registers started")
        return nil
    }
    return (port, server)
}

func testRegisterMessages(_ suite: inout Suite) {
    let before = KernelFootprint.steady()
    let refusalsBefore = System.outOfMemoryResults
    guard let started = startEchoInRegisters(&suite) else { return }
    let (port, server) = started

    // Both sides in registers: the fast path when the server waits on this CPU.
    var wrongSize: Int?
    for size in [0, 1, 31, 32, 64] where wrongSize == nil {
        var message = pattern(size, seed: size, label: 10)
        let error = catching { () throws(KernelError) in try IPC.callInRegisters(port, &message) }
        if error != nil || message.label != 11 || !holdsPattern(message, size, seed: size) { wrongSize = size }
    }
    if let wrongSize {
        suite.check(false, "calls in registers to a server answering in registers: the answer to \(wrongSize) bytes is wrong")
    } else {
        suite.check(true, "calls in registers to a server answering in registers: label + 1 and the same 0, 1, 31, 32 and 64 bytes back")
    }

    var who = RegisterMessage(label: 2)
    let asked = catching { () throws(KernelError) in try IPC.callInRegisters(port, &who) }
    suite.check(asked == nil && who.label == 3 && who.length == 8 && who.word(0) == System.processID.value,
                "a call in registers carries the kernel-reported sender id to the server (\(who.word(0)) for \(System.processID.value))")

    // The runtime calls by `svc #1`; `svc #0` with the number in x8, and an SVC whose immediate
    // names no call, reach the same call (docs/SYSCALLS.md).
    let byNumber = [0, 3].map { immediate in
        var message = pattern(32, seed: 7 + immediate, label: 10)
        let error = catching { () throws(KernelError) in
            try message.invoke(SystemCall.CallRegisters(port: port, label: message.label, length: 32), svc: UInt64(immediate))
        }
        return error == nil && message.label == 11 && holdsPattern(message, 32, seed: 7 + immediate)
    }
    suite.check(byNumber == [true, true],
                "callRegisters by `svc #0` and by `svc #3` with its number in x8 answers as by `svc #1`")

    // Whole words past the length arrive as zero: the server answers with all 8 payload words.
    var spill = RegisterMessage(label: 4)
    for index in 0..<8 { spill.setWord(index, 0xa5a5_a5a5_a5a5_a5a5) }
    spill.length = 20
    let spilled = catching { () throws(KernelError) in try IPC.callInRegisters(port, &spill) }
    suite.check(spilled == nil && spill.label == 5 && spill.length == 64
                    && (0..<3).allSatisfy { spill.word($0) == 0xa5a5_a5a5_a5a5_a5a5 } && (3..<8).allSatisfy { spill.word($0) == 0 },
                "a 20-byte message in registers reaches the server with its three words and five words of zero, never the sender's other registers")

    // What the kernel refuses before anything moves.
    var tooLong = RegisterMessage(label: 10)
    tooLong.length = 65
    let lengthError = catching { () throws(KernelError) in try IPC.callInRegisters(port, &tooLong) }
    var forged = RegisterMessage(label: 10)
    let forgedError = catching { () throws(KernelError) in try IPC.callInRegisters(Handle(0x7777_0003), &forged) }
    let receiveOnly = try? IPC.duplicate(port, rights: [.receive])
    var unsendable = RegisterMessage(label: 10)
    let rightsError = catching { () throws(KernelError) in try IPC.callInRegisters(receiveOnly ?? Handle(0), &unsendable) }
    if let receiveOnly { try? IPC.close(receiveOnly) }
    suite.check(lengthError == .invalidArgument && forgedError == .invalidHandle && rightsError == .accessDenied,
                "a call in registers with 65 bytes is invalid argument, on a forged handle invalid handle, without the send right access denied")

    // Inside the kernel, address 1 stands for a thread's registers: passed where a message
    // address goes, it is a bad address, never a message in registers.
    let one = UserAddress(1)
    let probes = [
        catching { () throws(KernelError) in _ = try System.invoke(SystemCall.Call(port: port, message: one)) },
        catching { () throws(KernelError) in _ = try System.invoke(SystemCall.Send(port: port, message: one)) },
        catching { () throws(KernelError) in _ = try System.invoke(SystemCall.Receive(port: port, message: one, timeout: 0)) },
        catching { () throws(KernelError) in _ = try System.invoke(SystemCall.Reply(reply: Handle(0x7777_0003), message: one)) },
        catching { () throws(KernelError) in
            _ = try System.invoke(SystemCall.ReplyReceive(reply: .none, message: one, port: port, timeout: 0))
        },
    ]
    suite.check(probes.allSatisfy { $0 == .badAddress },
                "call, send, receive, reply and replyReceive with message address 1 (the kernel's mark for registers) are bad addresses")

    // Mixed: a call in memory to the server in registers (the general path writes its registers,
    // and its answer goes into this buffer).
    var fromMemory = IPCMessage(label: 30)
    fromMemory.fill(count: 64) { UInt8(truncatingIfNeeded: 255 - $0) }
    let memoryCall = catching { () throws(KernelError) in try IPC.call(port, &fromMemory) }
    suite.check(memoryCall == nil && fromMemory.label == 31 && fromMemory.length == 64
                    && (0..<64).allSatisfy { fromMemory[byte: $0] == UInt8(truncatingIfNeeded: 255 - $0) },
                "a call in memory to a server waiting in registers: the 64 bytes reach its registers and its answer this buffer")

    // A message that does not fit in registers stays first in the queue: the server's
    // `replyReceiveRegisters` fails with message too long, and its `receive` takes it.
    var long = IPCMessage(label: 40)
    long.fill(count: 100) { UInt8(truncatingIfNeeded: $0) }
    let longCall = catching { () throws(KernelError) in try IPC.call(port, &long) }
    var carrying = IPCMessage(label: 50)
    let carried = try? IPC.createNotification()
    if let carried { carrying.attach(carried) }
    let carryingCall = catching { () throws(KernelError) in try IPC.call(port, &carrying) }
    suite.check(longCall == nil && long.label == 41 && long.length == 100 && carryingCall == nil && carrying.label == 51,
                "messages with 100 bytes or with a handle wait in the queue for a server that receives in registers, which takes them with receive and answers")

    var stop = RegisterMessage(label: 0)
    let stopped = catching { () throws(KernelError) in try IPC.callInRegisters(port, &stop) }
    let serverEnd = try? System.wait(server)
    suite.check(stopped == nil && stop.label == 1 && serverEnd?.code == 0,
                "a server in registers answered in memory, to a call in registers, and exited")

    // The other way round: calls in registers to a server that receives in memory.
    let memoryPort = try? IPC.createPort()
    let memorySide = memoryPort.flatMap { try? IPC.duplicate($0, rights: [.receive, .transfer]) }
    if let memoryPort, let memorySide, let memoryServer = try? System.spawn("echo", handle: memorySide) {
        var message = pattern(48, seed: 9, label: 60)
        let call = catching { () throws(KernelError) in try IPC.callInRegisters(memoryPort, &message) }
        var askLong = RegisterMessage(label: 6)
        let longAnswer = catching { () throws(KernelError) in try IPC.callInRegisters(memoryPort, &askLong) }
        var after = pattern(8, seed: 1, label: 70)
        let afterCall = catching { () throws(KernelError) in try IPC.callInRegisters(memoryPort, &after) }
        var end = IPCMessage(label: 0)
        _ = try? IPC.call(memoryPort, &end)
        let ended = try? System.wait(memoryServer)
        suite.check(call == nil && message.label == 61 && holdsPattern(message, 48, seed: 9)
                        && longAnswer == .messageTooLong && afterCall == nil && after.label == 71 && ended?.code == 0,
                    "calls in registers to a server receiving in memory: answered in registers; a 256-byte answer fails the call with message too long, and the server goes on")
    } else {
        // The receive side stays here if the server did not start.
        if let memorySide { try? IPC.close(memorySide) }
        suite.check(false, "an echo server that receives in memory started")
    }
    if let memoryPort { try? IPC.close(memoryPort) }

    // A server that dies holding a call in registers: the caller gets peer closed.
    let dyingPort = try? IPC.createPort()
    let clientSide = dyingPort.flatMap { try? IPC.duplicate($0, rights: [.send]) }
    if let dyingPort, let clientSide, let dying = try? System.spawn("echo", argument: 1, handle: dyingPort) {
        var request = RegisterMessage(label: 5)
        let result = catching { () throws(KernelError) in try IPC.callInRegisters(clientSide, &request) }
        let status = try? System.wait(dying)
        suite.check(result == .peerClosed && status?.code == 3,
                    "a server dies holding a call in registers: the caller gets peer closed")
    } else {
        if let dyingPort { try? IPC.close(dyingPort) }
        suite.check(false, "an echo server that dies on its first call started")
    }
    if let clientSide { try? IPC.close(clientSide) }

    // Receiving in registers from a queue: a plain send, then a wait with nothing queued.
    if let local = try? IPC.createPort() {
        var sent = IPCMessage(label: 80)
        sent.fill(count: 16) { UInt8($0 + 1) }
        let queued = catching { () throws(KernelError) in try IPC.send(local, &sent) }
        var taken = RegisterMessage()
        let received = catching { () throws(KernelError) in try IPC.replyAndReceiveInRegisters(nil, local, &taken, timeout: 0) }
        var nothing = RegisterMessage()
        let empty = catching { () throws(KernelError) in try IPC.replyAndReceiveInRegisters(nil, local, &nothing, timeout: 0) }
        let timed = catching { () throws(KernelError) in try IPC.replyAndReceiveInRegisters(nil, local, &nothing, timeout: 1_000_000) }
        suite.check(queued == nil && received == nil && taken.label == 80 && taken.length == 16 && taken.replyHandle == nil
                        && taken.sender == System.processID && (0..<16).allSatisfy { taken[byte: $0] == UInt8($0 + 1) }
                        && empty == .wouldBlock && timed == .timedOut,
                    "a queued send taken in registers: label, 16 bytes, no reply handle, the sender; then would block, and timed out")
        try? IPC.close(local)
    } else {
        suite.check(false, "a port to receive in registers from created")
    }

    testRegisterWaitsEnded(&suite)
    testReplySlot(&suite)

    // Moved to the server by the call that carried it, unless that call failed.
    if let carried { try? IPC.close(carried) }
    try? IPC.close(port)
    let after = KernelFootprint.settled(toward: before)
    suite.check(after == before,
                "messages in registers leave frames (free and kernel heap) and kernel objects as they were (frames \(before.frames) -> \(after.frames), objects \(before.objects) -> \(after.objects))", since: refusalsBefore)
}

/// A port, a copy of it with `copyRights`, and echo started with `argument` and one of the two
/// (the copy if `givingCopy`): the other one and the process, or nil with nothing left behind.
private func startEcho(_ argument: UInt64, copyRights: Rights, givingCopy: Bool) -> (kept: Handle, server: ChildProcess)? {
    guard let port = try? IPC.createPort() else { return nil }
    guard let copy = try? IPC.duplicate(port, rights: copyRights) else {
        try? IPC.close(port)
        return nil
    }
    guard let server = try? System.spawn("echo", argument: argument, handle: givingCopy ? copy : port) else {
        try? IPC.close(copy)
        try? IPC.close(port)
        return nil
    }
    return (givingCopy ? port : copy, server)
}

/// Both sides of a call in registers taken by the fast path wait in their exception frames, with
/// nothing else on their kernel stacks (ipc/FastPath.swift). Each way such a wait can end other
/// than by the answer or message: the server dies holding the call, a server waiting for its next
/// message is killed, a caller waiting for its answer is killed. (On more CPUs the fast path
/// applies only between threads on the same one; the checks hold either way.)
private func testRegisterWaitsEnded(_ suite: inout Suite) {
    // A server in registers that dies holding a call: the caller gets peer closed.
    if let (port, server) = startEcho(4, copyRights: [.receive, .transfer], givingCopy: true) {
        var first = RegisterMessage(label: 10)
        let answered = catching { () throws(KernelError) in try IPC.callInRegisters(port, &first) }
        var fatal = RegisterMessage(label: 8)
        let result = catching { () throws(KernelError) in try IPC.callInRegisters(port, &fatal) }
        let status = try? System.wait(server)
        suite.check(answered == nil && first.label == 11 && result == .peerClosed && status?.code == 3,
                    "a server in registers that dies holding a call in registers: the caller gets peer closed")
        try? IPC.close(port)
    } else {
        suite.check(false, "an echo server that serves in registers started (to die holding a call)")
    }

    // A server in registers killed while it waits for its next message. It holds the port's only
    // receive handle.
    if let (clientSide, server) = startEcho(4, copyRights: [.send], givingCopy: false) {
        var message = pattern(16, seed: 4, label: 10)
        let answered = catching { () throws(KernelError) in try IPC.callInRegisters(clientSide, &message) }
        let killed = (try? System.kill(server)) != nil
        let status = try? System.wait(server)
        var after = RegisterMessage(label: 10)
        let afterKill = catching { () throws(KernelError) in try IPC.callInRegisters(clientSide, &after) }
        suite.check(answered == nil && holdsPattern(message, 16, seed: 4) && killed && status?.reason == .killed
                        && afterKill == .peerClosed,
                    "a server waiting in registers for its next message is killed: it ends, and a call to its port gets peer closed")
        try? IPC.close(clientSide)
    } else {
        suite.check(false, "an echo server that serves in registers started (to be killed)")
    }

    // A caller in registers killed while it waits for its answer: this thread is its server.
    if let (port, client) = startEcho(5, copyRights: [.send, .transfer], givingCopy: true) {
        var request = RegisterMessage()
        let received = catching { () throws(KernelError) in
            try IPC.replyAndReceiveInRegisters(nil, port, &request, timeout: 5_000_000_000)
        }
        let killed = (try? System.kill(client)) != nil
        let status = try? System.wait(client)
        var answer = RegisterMessage(label: 10)
        let late = request.replyHandle.map { reply in
            catching { () throws(KernelError) in try IPC.replyAndReceiveInRegisters(reply, port, &answer, timeout: 0) }
        }
        suite.check(received == nil && request.label == 9 && request.replyHandle != nil && killed
                        && status?.reason == .killed && late == .wouldBlock,
                    "a caller waiting in registers for its answer is killed: it ends, and the late answer is dropped (replyReceive goes on to receive: nothing there)")
        try? IPC.close(port)
    } else {
        suite.check(false, "an echo client that calls in registers started")
    }

    // The same, answered in memory with a handle attached: the answer is dropped with the handle
    // (closed, not left in this table), though `replyReceive` does not tell this server.
    if let (port, client) = startEcho(5, copyRights: [.send, .transfer], givingCopy: true),
       let carried = try? IPC.createNotification() {
        var request = RegisterMessage()
        let received = catching { () throws(KernelError) in
            try IPC.replyAndReceiveInRegisters(nil, port, &request, timeout: 5_000_000_000)
        }
        let killed = (try? System.kill(client)) != nil
        _ = try? System.wait(client)
        var answer = IPCMessage(label: 10)
        answer.attach(carried)
        let late = request.replyHandle.map { reply in
            catching { () throws(KernelError) in try IPC.replyAndReceive(reply, port, &answer, timeout: 0) }
        }
        let closed = catching { () throws(KernelError) in try IPC.signal(carried, bits: 1) }
        suite.check(received == nil && killed && late == .wouldBlock && closed == .invalidHandle,
                    "an answer in memory with a handle, to a caller killed while it waited: replyReceive goes on to receive, and the handle is closed with the dropped answer")
        if closed == nil { try? IPC.close(carried) }
        try? IPC.close(port)
    } else {
        suite.check(false, "an echo client that calls in registers started (to be answered in memory)")
    }
}

/// echo as a caller (start argument 5: one call in registers, label 9, to the port it is given;
/// exit code 0 when answered, 1 when the call failed), with a send right to `port` of its own.
private func startCaller(_ port: Handle) -> ChildProcess? {
    guard let right = try? IPC.duplicate(port, rights: [.send, .transfer]) else { return nil }
    guard let caller = try? System.spawn("echo", argument: 5, handle: right) else {
        try? IPC.close(right)
        return nil
    }
    return caller
}

/// What `ReplySlotProbe.body` found: how its `handleClose(.replySlot)` ended (0: closed; `.max`
/// until it has run).
enum ReplySlotProbe {
    nonisolated(unsafe) static var outcome = UInt64.max
    static let stackBytes: UInt64 = 16 * 1024

    /// Another thread of this process closes `.replySlot`, which names its own slot.
    static let body: System.ThreadBody = { _ in
        outcome = catching { () throws(KernelError) in try IPC.close(.replySlot) }?.rawValue ?? 0
        System.exitThread()
    }
}

/// The reply slot (docs/IPC.md, "Reply slots"): this thread serves, echo processes call. A call
/// taken in registers goes to the receiving thread's slot while that is empty, a second one to
/// the table; each is answered through its own handle, in either order. `.replySlot` names the
/// slot of the thread that uses it, so another thread's is empty; closing the slot fails its
/// call, and an empty slot is no handle.
private func testReplySlot(_ suite: inout Suite) {
    guard let port = try? IPC.createPort() else {
        suite.check(false, "a port for the reply slot's callers created")
        return
    }
    defer { try? IPC.close(port) }
    guard let firstCaller = startCaller(port), let secondCaller = startCaller(port) else {
        suite.check(false, "two echo callers started (for the reply slot)")
        return
    }
    var first = RegisterMessage()
    var second = RegisterMessage()
    let received = catching { () throws(KernelError) in
        try IPC.replyAndReceiveInRegisters(nil, port, &first, timeout: 5_000_000_000)
        try IPC.replyAndReceiveInRegisters(nil, port, &second, timeout: 5_000_000_000)
    }
    let secondHandle = second.replyHandle ?? .none
    // Another thread's `.replySlot` is its own slot, empty.
    ReplySlotProbe.outcome = .max
    if let stack = try? System.map(bytes: ReplySlotProbe.stackBytes, access: .write) {
        if (try? createThread(onStack: stack, bytes: ReplySlotProbe.stackBytes, ReplySlotProbe.body)) != nil {
            for _ in 0..<2000 where ReplySlotProbe.outcome == .max { System.sleep(nanoseconds: 1_000_000) }
            System.sleep(nanoseconds: 5_000_000) // on to its exit
        }
        if ReplySlotProbe.outcome != .max { try? System.unmap(stack, bytes: ReplySlotProbe.stackBytes) }
    }
    // The second call first, through the table; then the slot's, with the general path's
    // `replyReceiveRegisters` (a timeout), which goes on to receive: nothing there.
    var answer = IPCMessage(label: 10)
    let secondAnswered = catching { () throws(KernelError) in try IPC.reply(secondHandle, &answer) }
    var slotAnswer = RegisterMessage(label: 10)
    let firstAnswered = catching { () throws(KernelError) in
        try IPC.replyAndReceiveInRegisters(.replySlot, port, &slotAnswer, timeout: 1_000_000)
    }
    let firstStatus = try? System.wait(firstCaller)
    let secondStatus = try? System.wait(secondCaller)
    let emptyAfterAnswer = catching { () throws(KernelError) in try IPC.close(.replySlot) }
    suite.check(received == nil && first.label == 9 && first.replyHandle == .replySlot && second.label == 9
                    && secondHandle != .none && secondHandle != .replySlot
                    && ReplySlotProbe.outcome == KernelError.invalidHandle.rawValue
                    && secondAnswered == nil && firstAnswered == .timedOut && firstStatus?.code == 0 && secondStatus?.code == 0
                    && emptyAfterAnswer == .invalidHandle,
                "two calls taken in registers: the first in this thread's reply slot (\(first.replyHandle?.value ?? 0)), the second in the table; another thread's slot is empty (\(ReplySlotProbe.outcome)); answered second first, both callers get their answers, and the slot is empty after")

    // Closing the slot fails its call, as closing a reply handle does.
    var closedOutcome: KernelError?? = .none
    var thirdStatus: (reason: ExitReason, code: UInt64)?
    if let thirdCaller = startCaller(port) {
        var third = RegisterMessage()
        let taken = catching { () throws(KernelError) in
            try IPC.replyAndReceiveInRegisters(nil, port, &third, timeout: 5_000_000_000)
        }
        if taken == nil && third.replyHandle == .replySlot {
            closedOutcome = .some(catching { () throws(KernelError) in try IPC.close(.replySlot) })
        }
        thirdStatus = try? System.wait(thirdCaller)
    }
    let emptyAfterClose = catching { () throws(KernelError) in try IPC.close(.replySlot) }
    suite.check(closedOutcome == .some(nil) && thirdStatus?.code == 1 && emptyAfterClose == .invalidHandle,
                "closing the reply slot fails the call in it (its caller's call fails), and leaves it empty")

    // A call that waits in the queue while its caller is killed and released: then only the
    // queued message holds its reply capability, and the slot that takes it must count it.
    var late: (ready: Int?, killed: Bool, taken: KernelError?, handle: Handle?, answered: KernelError?, empty: KernelError?)
    late = (nil, false, nil, nil, nil, nil)
    if let lateCaller = startCaller(port) {
        // Ready means queued: this thread is not receiving.
        late.ready = try? IPC.waitAny([port], timeout: 5_000_000_000)
        late.killed = (try? System.kill(lateCaller)) != nil && (try? System.wait(lateCaller))?.reason == .killed
        var queued = RegisterMessage()
        late.taken = catching { () throws(KernelError) in
            try IPC.replyAndReceiveInRegisters(nil, port, &queued, timeout: 5_000_000_000)
        }
        late.handle = queued.replyHandle
        var dropped = RegisterMessage(label: 10)
        late.answered = catching { () throws(KernelError) in
            try IPC.replyAndReceiveInRegisters(.replySlot, port, &dropped, timeout: 1_000_000)
        }
        late.empty = catching { () throws(KernelError) in try IPC.close(.replySlot) }
    }
    suite.check(late.ready == 0 && late.killed && late.taken == nil && late.handle == .replySlot
                    && late.answered == .timedOut && late.empty == .invalidHandle,
                "a call queued by a caller killed before this thread took it: it arrives in the reply slot, the late answer is dropped (replyReceive goes on to receive), and the slot is empty after")

    // The runtime serves by `svc #2`; `svc #0` with the number in x8 takes and answers a call the
    // same way (the answer's wait then times out, as above).
    var bySVC0: (taken: KernelError?, label: UInt64, handle: Handle?, answered: KernelError?, code: UInt64?)
    bySVC0 = (.invalidArgument, 0, nil, nil, nil)
    if let caller = startCaller(port) {
        var served = RegisterMessage()
        bySVC0.taken = catching { () throws(KernelError) in
            try served.invoke(SystemCall.ReplyReceiveRegisters(reply: .none, label: 0, length: 0, port: port,
                                                              timeout: 5_000_000_000), svc: 0)
        }
        (bySVC0.label, bySVC0.handle) = (served.label, served.replyHandle)
        bySVC0.answered = catching { () throws(KernelError) in
            try served.invoke(SystemCall.ReplyReceiveRegisters(reply: .replySlot, label: 10, length: 0, port: port,
                                                              timeout: 1_000_000), svc: 0)
        }
        bySVC0.code = (try? System.wait(caller))?.code
    }
    suite.check(bySVC0.taken == nil && bySVC0.label == 9 && bySVC0.handle == .replySlot && bySVC0.answered == .timedOut
                    && bySVC0.code == 0,
                "replyReceiveRegisters by `svc #0` with its number in x8 takes a call in the reply slot and answers it, as by `svc #2`")
}

/// A thread's time slice is its own, spent across the switches of IPC and filled again only once
/// spent. A client and a server passing the CPU back and forth by fast IPC, hundreds of times a
/// tick, leave a thread of their priority its turns: were every switch a fresh slice, neither
/// would ever use one up, and the spinner would not run while they went on. This thread and the
/// spinner are kept to CPU 0 (`onOneCPU`, start argument 1); with several CPUs the server may be
/// taken by another, which only gives the spinner more time (the next call brings it back).
func testSliceAcrossIPC(_ suite: inout Suite) {
    guard let started = startEchoInRegisters(&suite) else { return }
    let (port, server) = started
    let spinner = try? System.spawn("spinner", argument: 1)
    let start = System.clock
    var calls = 0
    var failed = false
    while !failed && System.clock.milliseconds(since: start) < 200 {
        var message = RegisterMessage(label: 7)
        failed = (try? IPC.callInRegisters(port, &message)) == nil || message.label != 8
        calls += 1
    }
    let spun = spinner.flatMap { try? ProcessHandles.info($0.process) }?.cpuNanoseconds ?? 0
    let spinnerEnded = spinner.map { (try? System.kill($0)) != nil && (try? System.wait($0))?.reason == .killed }
    var stop = RegisterMessage(label: 0)
    _ = try? IPC.callInRegisters(port, &stop)
    let serverEnd = try? System.wait(server)
    try? IPC.close(port)
    suite.check(spinner != nil && !failed && spun >= 20_000_000 && spinnerEnded == true && serverEnd?.code == 0,
                "a client and a server calling back and forth for 200 ms (\(calls) calls) leave a spinning thread of their priority its turns (it ran \(spun / 1_000_000) ms)")
}
