// Building processes by handle (docs/SYSCALLS.md, "Building processes"): the kernel primitives a
// user-space loader uses, tried with a program assembled here by hand (a few instructions in a
// memory object), so that each call's contract is checked on its own: what is mapped where, what
// the first thread finds in its registers, how the process ends, and that every refusal changes
// nothing and leaks nothing.

import UserSystemCall

/// A code page of small programs, each a few instructions at its own offset.
enum HandBuiltProgram {
    static let codeAddress: UInt64 = 0x40_0000
    static let stackTop: UInt64 = UserSpace.stackTop
    /// exit(x0): ends with its start argument.
    static let exitWithArgument: UInt64 = 0
    /// exit(x1): ends with its start handle's value.
    static let exitWithStartHandle: UInt64 = 8
    /// exit(x2): ends with its start block's address.
    static let exitWithStartBlock: UInt64 = 20
    /// Spins for ever.
    static let spin: UInt64 = 32
    /// call(x1, `UserSpace.end` - 72), then exit with the call's status: a call whose message
    /// lies in the last 72 bytes of user space, its header alone.
    static let callAtTop: UInt64 = 36

    static let instructions: [UInt32] = [
        0xD280_0068, 0xD400_0001,              // mov x8, #3; svc #0
        0xAA01_03E0, 0xD280_0068, 0xD400_0001, // mov x0, x1; mov x8, #3; svc #0
        0xAA02_03E0, 0xD280_0068, 0xD400_0001, // mov x0, x2; mov x8, #3; svc #0
        0x1400_0000,                           // b .
        0xAA01_03E0,                           // mov x0, x1
        0xD29F_F701, 0xF2BF_FFE1,              // mov x1, #0xffb8; movk x1, #0xffff, lsl #16
        0xF2CF_FFE1,                           // movk x1, #0x7fff, lsl #32
        0xD280_02A8, 0xD400_0001,              // mov x8, #21 (call); svc #0
        0xD280_0068, 0xD400_0001,              // mov x8, #3; svc #0
    ]

    /// A memory object holding the instructions (map, duplicate, transfer only: no write).
    static func code() throws(KernelError) -> Handle {
        let memory = try System.invoke(SystemCall.MemoryCreate(bytes: 4096)).handle
        do throws(KernelError) {
            let base = try IPC.map(memory, writable: true)
            for (index, word) in instructions.enumerated() { base.storeBytes(of: word, toByteOffset: index * 4, as: UInt32.self) }
            try System.unmap(base, bytes: 4096)
        } catch {
            // Refused memory for the mapping: the object must not outlive the failure.
            try? IPC.close(memory)
            throw error
        }
        return memory
    }

    /// A new process with the code (at `codeAt`) and a one-page stack mapped, not yet started.
    static func build(_ name: StaticString = "handmade", withCodeAt codeAt: UInt64 = codeAddress) throws(KernelError) -> Handle {
        let process = try ProcessHandles.create(name).handle
        do throws(KernelError) {
            let code = try code()
            defer { try? IPC.close(code) }
            try ProcessHandles.map(code, into: process, at: codeAt, access: .execute)
            let stack = try System.invoke(SystemCall.MemoryCreate(bytes: 4096)).handle
            defer { try? IPC.close(stack) }
            try ProcessHandles.map(stack, into: process, at: stackTop - 4096, access: .write)
        } catch {
            try? IPC.close(process)
            throw error
        }
        return process
    }
}

func testProcessBuilding(_ suite: inout Suite) {
    let error = { (code: KernelError) in code.rawValue }
    // Warm the slabs these objects come from.
    if let process = try? HandBuiltProgram.build() { try? IPC.close(process) }
    let before = KernelHoldings.steady
    let liveBefore = System.processes.live
    let refusalsBefore = System.outOfMemoryResults

    // A hand-built program runs and ends with what it was given.
    var ran = false
    if let process = try? HandBuiltProgram.build() {
        let started = (try? ProcessHandles.start(process, entry: HandBuiltProgram.codeAddress, stackTop: HandBuiltProgram.stackTop,
                                                  argument: 0x5EED)) != nil
        // (Waiting for a process that never started would wait for ever.)
        let status = started ? try? ProcessHandles.wait(process) : nil
        let again = started ? try? ProcessHandles.wait(process, poll: true) : nil
        ran = started && status?.reason == .exited && status?.code == 0x5EED && again?.code == 0x5EED
        try? IPC.close(process)
    }
    suite.check(ran, "a process built by hand (code and stack objects mapped by handle) runs and exits with its start argument")

    // Its start handle and start block arrive in x1 and x2; a given handle lands in its table.
    var registers = false
    let (process2, token, given) = (try? HandBuiltProgram.build(), try? IPC.createNotification(), try? IPC.createNotification())
    if let process = process2, let token, let given {
        let value = try? ProcessHandles.give(given, to: process)
        let gone = raw(SystemCallNumber.handleClose.rawValue, given.value).status == error(.invalidHandle)
        let started = (try? ProcessHandles.start(process, entry: HandBuiltProgram.codeAddress + HandBuiltProgram.exitWithStartHandle,
                                                  stackTop: HandBuiltProgram.stackTop, handle: token)) != nil
        let code = started ? (try? ProcessHandles.wait(process))?.code ?? 0 : 0
        let tokenMoved = raw(SystemCallNumber.handleClose.rawValue, token.value).status == error(.invalidHandle)
        try? IPC.close(process)
        var blockSeen = false
        if let second = try? HandBuiltProgram.build() {
            blockSeen = (try? ProcessHandles.start(second, entry: HandBuiltProgram.codeAddress + HandBuiltProgram.exitWithStartBlock,
                                                   stackTop: HandBuiltProgram.stackTop, startBlock: ProgramStart.blockAddress)) != nil
                && (try? ProcessHandles.wait(second))?.code == ProgramStart.blockAddress
            try? IPC.close(second)
        }
        registers = value != nil && gone && started && tokenMoved && code != 0 && code != value?.value && blockSeen
    } else {
        // Under memory pressure some were not made: give back the others.
        for handle in [process2, token, given] { if let handle { try? IPC.close(handle) } }
    }
    suite.check(registers, "processGive moves a handle into the new process; its start handle arrives in x1 and its start block in x2")

    // A call whose message does not lie whole in user space is refused before it is sent: its
    // answer may fill the whole message. The program's last page (mapped here) holds the
    // header; the 256 bytes of payload would lie past the end of user space.
    var topRefused = false
    if let port = try? IPC.createPort(), let sendRight = try? IPC.duplicate(port, rights: [.send, .transfer]) {
        if let process = try? HandBuiltProgram.build(), let top = try? System.invoke(SystemCall.MemoryCreate(bytes: 4096)).handle {
            let mapped = (try? ProcessHandles.map(top, into: process, at: UserSpace.end - 4096, access: .write)) != nil
            try? IPC.close(top)
            let started = mapped && (try? ProcessHandles.start(process, entry: HandBuiltProgram.codeAddress + HandBuiltProgram.callAtTop,
                                                               stackTop: HandBuiltProgram.stackTop, handle: sendRight)) != nil
            if !started { try? IPC.close(sendRight) }
            // Had it been sent, it would be here: answered, so that the caller ends.
            var request = IPCMessage()
            let sent = started && (try? IPC.receive(port, into: &request, timeout: 200_000_000)) != nil
            if sent, let reply = request.replyHandle {
                request.fill(count: IPCMessageLayout.maximumPayload) { UInt8(truncatingIfNeeded: $0) }
                try? IPC.reply(reply, &request)
            }
            let end = started ? try? ProcessHandles.wait(process) : nil
            topRefused = !sent && end?.reason == .exited && end?.code == KernelError.badAddress.rawValue
            try? IPC.close(process)
        } else {
            try? IPC.close(sendRight)
        }
        try? IPC.close(port)
    }
    suite.check(topRefused, "a call whose 328-byte message runs past the end of user space is refused with bad address before it is sent, though its header alone fits")

    // A receive right moved to another process while a thread here waits on it: the wait ends
    // (peer closed), and a message sent afterwards is left for the new holder, not taken here on
    // the authority this process gave away.
    var dismissed = false
    let waiterStackBytes: UInt64 = 16 * 1024
    if let port = try? IPC.createPort(), let sendRight = try? IPC.duplicate(port, rights: [.send]),
       let holder = try? HandBuiltProgram.build(), let stack = try? System.map(bytes: waiterStackBytes, access: .write) {
        MovedRightWaiter.port = port
        MovedRightWaiter.waiting = false
        MovedRightWaiter.outcome = .max
        let started = (try? createThread(onStack: stack, bytes: waiterStackBytes, movedRightWaiterBody)) != nil
        for _ in 0..<2000 where started && !MovedRightWaiter.waiting { System.sleep(nanoseconds: 1_000_000) }
        // Into its receive (it says so just before).
        System.sleep(nanoseconds: 20_000_000)
        let given = started && (try? ProcessHandles.give(port, to: holder)) != nil
        var note = IPCMessage(label: 77)
        let sent = given && (try? IPC.send(sendRight, &note)) != nil
        for _ in 0..<2000 where started && MovedRightWaiter.outcome == .max { System.sleep(nanoseconds: 1_000_000) }
        dismissed = sent && MovedRightWaiter.outcome == KernelError.peerClosed.rawValue
        // Never started, the holder ends when closed, and the port with its right (and the
        // waiter, were it still waiting, with peer closed).
        try? IPC.close(holder)
        if !given { try? IPC.close(port) }
        try? IPC.close(sendRight)
        for _ in 0..<2000 where started && MovedRightWaiter.outcome == .max { System.sleep(nanoseconds: 1_000_000) }
        if !started || MovedRightWaiter.outcome != .max { try? System.unmap(stack, bytes: waiterStackBytes) }
    }
    suite.check(dismissed, "a receive right moved to another process while a thread here waits to receive on it: the wait ends with peer closed (\(MovedRightWaiter.outcome)), and a message sent then is not taken here")

    // The same, but the waiter's timeout has fired and it has not run yet (a lower priority, on
    // this thread's CPU, which spins): it is no longer waiting when the right goes, so nothing
    // dismisses it, and when it runs the message sent meanwhile must still not be taken here.
    // Twice: the right given away at once; and after a first message, sent and taken here
    // while the waiter still had not run (that send took it off the port's waiters).
    var lateOutcomes = InlineArray<2, UInt64>(repeating: .max)
    for round in 0..<2 {
        guard let port = try? IPC.createPort(), let sendRight = try? IPC.duplicate(port, rights: [.send]),
              let holder = try? HandBuiltProgram.build(), let stack = try? System.map(bytes: waiterStackBytes, access: .write),
              let level = (try? System.setPriority(nil))?.previous, level > 0, let pinned = try? System.setAffinity(1) else { break }
        MovedRightWaiter.port = port
        MovedRightWaiter.waiting = false
        MovedRightWaiter.outcome = .max
        MovedRightWaiter.timeout = 30_000_000
        let thread = try? createThread(onStack: stack, bytes: waiterStackBytes, movedRightWaiterBody)
        let ready = thread.map { (try? System.setAffinity(1, thread: $0)) != nil
            && (try? System.setPriority(level - 1, thread: $0)) != nil } ?? false
        // It runs while this thread sleeps, into its receive.
        for _ in 0..<2000 where ready && !MovedRightWaiter.waiting { System.sleep(nanoseconds: 1_000_000) }
        System.sleep(nanoseconds: 5_000_000)
        // Past its timeout: it is made ready, and waits for this CPU.
        let start = System.clock
        while ready && System.clock.milliseconds(since: start) < 100 {}
        var first = IPCMessage(label: 77)
        let firstTaken = round == 0 || (ready && (try? IPC.send(sendRight, &first)) != nil
            && (try? IPC.receive(port, into: &first, timeout: 0)) != nil && first.label == 77)
        let given = ready && firstTaken && (try? ProcessHandles.give(port, to: holder)) != nil
        var note = IPCMessage(label: 78)
        let sent = given && (try? IPC.send(sendRight, &note)) != nil
        for _ in 0..<2000 where ready && MovedRightWaiter.outcome == .max { System.sleep(nanoseconds: 1_000_000) }
        if sent { lateOutcomes[round] = MovedRightWaiter.outcome }
        _ = try? System.setAffinity(pinned.previous)
        try? IPC.close(holder)
        if !given { try? IPC.close(port) }
        try? IPC.close(sendRight)
        for _ in 0..<2000 where thread != nil && MovedRightWaiter.outcome == .max { System.sleep(nanoseconds: 1_000_000) }
        if thread == nil || MovedRightWaiter.outcome != .max { try? System.unmap(stack, bytes: waiterStackBytes) }
        MovedRightWaiter.timeout = .max
    }
    let peerClosed = KernelError.peerClosed.rawValue
    suite.check(lateOutcomes[0] == peerClosed && lateOutcomes[1] == peerClosed, "a receive right moved away after a waiter's timeout fired but before it ran, at once or after a message taken here meanwhile: the waiter ends with peer closed (\(lateOutcomes[0]), \(lateOutcomes[1])), and the message sent then is not taken here")

    // Refusals: each changes nothing. The first that does not get its error is named.
    var refusals = false
    var firstWrong: UInt64 = 0xFF00
    let made = (try? ProcessHandles.create("refusals").handle, try? HandBuiltProgram.code(), try? IPC.createPort(),
                try? IPC.createNotification())
    let readOnly3 = made.1.flatMap { try? IPC.duplicate($0, rights: [.map]) }
    let waitOnly3 = made.0.flatMap { try? IPC.duplicate($0, rights: [.wait]) }
    if let process = made.0, let code = made.1, let port = made.2, let bell = made.3, let readOnly = readOnly3,
       let waitOnly = waitOnly3 {
        let map = SystemCallNumber.processMap.rawValue
        let start = SystemCallNumber.processStart.rawValue
        let stackTop = UserSpace.stackTop
        let cases: [(status: UInt64, expected: KernelError?)] = [
            (user_system_call(map, process.value, code.value, 0x40_0000, 3, 0, 0).status, .invalidArgument), // writable and executable
            (user_system_call(map, process.value, code.value, 0x40_0800, 2, 0, 0).status, .invalidArgument), // unaligned
            (user_system_call(map, process.value, code.value, UserSpace.mapBase, 0, 0, 0).status, .invalidArgument), // `map`'s range
            (user_system_call(map, process.value, code.value, 0, 0, 0, 0).status, .invalidArgument),        // below user space
            (user_system_call(map, process.value, port.value, 0x40_0000, 0, 0, 0).status, .accessDenied),   // a port: no map right
            (user_system_call(map, process.value, readOnly.value, 0x40_0000, 1, 0, 0).status, .accessDenied), // no write right
            (user_system_call(map, waitOnly.value, code.value, 0x40_0000, 2, 0, 0).status, .accessDenied),  // no control
            (user_system_call(map, code.value, code.value, 0x40_0000, 2, 0, 0).status, .accessDenied),      // memory: no control right
            (user_system_call(map, process.value, code.value, 0x40_0000, 2, 0, 0).status, nil),
            (user_system_call(map, process.value, code.value, 0x40_0000, 2, 0, 0).status, .invalidArgument), // overlaps
            (user_system_call(start, process.value, 0x40_0002, stackTop, 0, 0, 0).status, .invalidArgument), // unaligned entry
            (user_system_call(start, process.value, 0x40_0000, stackTop, 0, 0, 0).status, .invalidArgument), // no stack there
            (user_system_call(start, waitOnly.value, 0x40_0000, stackTop, 0, 0, 0).status, .accessDenied),
            (user_system_call(start, process.value, 0x40_0000, 0x40_1000, 0, 0, 0).status, .invalidArgument), // stack not writable
            (raw(SystemCallNumber.processKill.rawValue, waitOnly.value).status, .accessDenied),
            (raw(SystemCallNumber.processWait.rawValue, process.value, 2).status, .invalidArgument),
            (raw(SystemCallNumber.processWait.rawValue, process.value, 1).status, .wouldBlock),
            (raw(SystemCallNumber.processNotify.rawValue, process.value, port.value, 1).status, .accessDenied), // no signal right
            (raw(SystemCallNumber.processWait.rawValue, bell.value, 1).status, .invalidHandle),     // has wait, not a process
            (raw(SystemCallNumber.processGive.rawValue, waitOnly.value, port.value).status, .accessDenied),
            (raw(SystemCallNumber.processCreate.rawValue, 0x10, 4).status, .badAddress),
            (raw(SystemCallNumber.processCreate.rawValue, 0x40_0000, 0).status, .invalidArgument),
            (raw(SystemCallNumber.processCreate.rawValue, 0x40_0000, 65).status, .invalidArgument),
        ]
        refusals = true
        for (index, refusal) in cases.enumerated() where refusal.status != (refusal.expected?.rawValue ?? systemCallSuccess) {
            if refusals { firstWrong = UInt64(index) << 8 | refusal.status }
            refusals = false
            // Raw calls bypass the runtime's count of refusals for memory: count them here, so
            // that a case the kernel refused memory (as it may) is reported as such.
            if refusal.status == KernelError.outOfMemory.rawValue { System.outOfMemoryResults &+= 1 }
        }
    }
    for handle in [made.0, made.1, made.2, made.3, readOnly3, waitOnly3] { if let handle { try? IPC.close(handle) } }
    suite.check(refusals, "processMap, processStart, processKill, processWait, processNotify, processGive and processCreate refuse bad arguments, handles and rights (first wrong: case \(firstWrong >> 8), status \(firstWrong & 0xFF))")

    // processMap of part of an object: its middle page alone, the code (the pages around it are
    // zero, no instruction), then its last page beside it ("through its end"); ranges that do
    // not lie in the object on pages are refused.
    var ranged = false
    var firstWrongRange = -1
    let (process5, memory5) = (try? HandBuiltProgram.build(withCodeAt: 0x60_0000),
                               try? System.invoke(SystemCall.MemoryCreate(bytes: 3 * 4096)).handle)
    if let process = process5, let memory = memory5 {
        let written = HandBuiltProgram.instructions.withUnsafeBytes { bytes in
            (try? IPC.writeMemory(memory, at: 4096, from: bytes)) != nil
        }
        let map = SystemCallNumber.processMap.rawValue
        let code = HandBuiltProgram.codeAddress
        let refused: [UInt64] = [
            user_system_call(map, process.value, memory.value, code, 2, 0x800, 0).status,        // offset not on a page
            user_system_call(map, process.value, memory.value, code, 2, 3 * 4096, 0).status,     // offset at its end
            user_system_call(map, process.value, memory.value, code, 2, 4096, 3 * 4096).status,  // past its end
            user_system_call(map, process.value, memory.value, code, 2, 4096, .max).status,      // a size that wraps
        ]
        firstWrongRange = refused.firstIndex { $0 != error(.invalidArgument) } ?? -1
        let middle = (try? ProcessHandles.map(memory, into: process, at: code, access: .execute, offset: 4096, bytes: 1)) != nil
        let last = (try? ProcessHandles.map(memory, into: process, at: code + 4096, access: [], offset: 2 * 4096)) != nil
        let started = middle && (try? ProcessHandles.start(process, entry: code + HandBuiltProgram.exitWithArgument,
                                                            stackTop: HandBuiltProgram.stackTop, argument: 0x5EED)) != nil
        // Started, it is built: no more is mapped into it.
        let afterStart = started ? catching { () throws(KernelError) in
            try ProcessHandles.map(memory, into: process, at: code + 2 * 4096, access: [], offset: 0, bytes: 4096)
        } : nil
        let status = started ? try? ProcessHandles.wait(process) : nil
        ranged = written && firstWrongRange < 0 && middle && last && afterStart == .invalidArgument
            && status?.reason == .exited && status?.code == 0x5EED
    }
    for handle in [process5, memory5] { if let handle { try? IPC.close(handle) } }
    suite.check(ranged, "processMap maps part of a memory object: one page from its middle runs there, its last page fits beside it; offsets off a page or past its end are refused (first wrong: \(firstWrongRange)), and so is any mapping once the process started")

    // A process closed before it starts ends; one killed while running is reported killed, and
    // its end signals every notification bound to it (a second binding does not displace the
    // first; a fifth is refused); a started one cannot be started again.
    var ends = false
    let (unstarted4, spinner4, bell4) = (try? HandBuiltProgram.build(), try? HandBuiltProgram.build(), try? IPC.createNotification())
    let others = [try? IPC.createNotification(), try? IPC.createNotification(), try? IPC.createNotification(),
                  try? IPC.createNotification()]
    if let unstarted = unstarted4, let spinner = spinner4, let bell = bell4, let second = others[0], let third = others[1],
       let fourth = others[2], let fifth = others[3] {
        let liveWithBoth = System.processes.live
        try? IPC.close(unstarted)
        let unstartedEnded = System.processes.live == liveWithBoth - 1
        try? ProcessHandles.notify(bell, bits: 0b1, whenEnds: spinner)
        try? ProcessHandles.notify(second, bits: 0b10, whenEnds: spinner)
        try? ProcessHandles.notify(bell, bits: 0b100, whenEnds: spinner) // again: new bits, same binding
        try? ProcessHandles.notify(third, bits: 1, whenEnds: spinner)
        try? ProcessHandles.notify(fourth, bits: 1, whenEnds: spinner)
        let fifthRefused = catching { () throws(KernelError) in try ProcessHandles.notify(fifth, bits: 1, whenEnds: spinner) }
        let started = (try? ProcessHandles.start(spinner, entry: HandBuiltProgram.codeAddress + HandBuiltProgram.spin,
                                                  stackTop: HandBuiltProgram.stackTop)) != nil
        let startedTwice = raw(SystemCallNumber.processStart.rawValue, spinner.value, HandBuiltProgram.codeAddress,
                               HandBuiltProgram.stackTop).status == error(.invalidArgument)
        System.sleep(nanoseconds: 20_000_000)
        let stillRunning = raw(SystemCallNumber.processWait.rawValue, spinner.value, 1).status == error(.wouldBlock)
        let quiet = raw(SystemCallNumber.notificationWait.rawValue, bell.value, 0).status == error(.wouldBlock)
        try? ProcessHandles.kill(spinner)
        // Bounded: a binding that a refused request for memory never made would never signal.
        let bits = try? IPC.wait(bell, timeout: 1_000_000_000)
        let secondBits = try? IPC.wait(second, timeout: 0)
        let status = try? ProcessHandles.wait(spinner)
        ends = unstartedEnded && started && startedTwice && stillRunning && quiet && bits == 0b100 && secondBits == 0b10
            && fifthRefused == .queueFull && status?.reason == .killed
        try? IPC.close(spinner)
        try? IPC.close(bell)
    } else {
        for handle in [unstarted4, spinner4, bell4] { if let handle { try? IPC.close(handle) } }
    }
    for other in others { if let other { try? IPC.close(other) } }
    suite.check(ends, "a process closed before it starts ends; a running one is killed by handle and its end signals each of the 4 notifications bound to it (rebinding one changes its bits; a fifth is refused)")

    // The account right: memory charged to another process, and its account read.
    var charged = false
    if let process = try? ProcessHandles.create("payer", memoryLimit: 256 * 1024).handle {
        let start = try? System.invoke(SystemCall.MemoryAccount(process: process))
        let object = try? System.invoke(SystemCall.MemoryCreate(bytes: 64 * 1024, account: process)).handle
        let during = try? System.invoke(SystemCall.MemoryAccount(process: process))
        let tooMuch = raw(SystemCallNumber.memoryCreate.rawValue, 512 * 1024, process.value).status == error(.outOfMemory)
        let noRight = (try? IPC.duplicate(process, rights: [.wait, .control])).map { handle in
            defer { try? IPC.close(handle) }
            return raw(SystemCallNumber.memoryCreate.rawValue, 4096, handle.value).status == error(.accessDenied)
                && raw(SystemCallNumber.memoryAccount.rawValue, handle.value).status == error(.accessDenied)
        } ?? false
        if let object { try? IPC.close(object) }
        // A process made on its account (processCreate's `account`) is paid through it too.
        let beforeChild = try? System.invoke(SystemCall.MemoryAccount(process: process))
        let child = try? ProcessHandles.create("paid", account: process).handle
        let withChild = try? System.invoke(SystemCall.MemoryAccount(process: process))
        if let child { try? IPC.close(child) }
        let childPaid = child != nil && withChild.map { $0.used > (beforeChild?.used ?? .max) } == true
        let childNoRight = (try? IPC.duplicate(process, rights: [.wait, .control])).map { handle in
            defer { try? IPC.close(handle) }
            return catching { () throws(KernelError) in _ = try ProcessHandles.create("unpaid", account: handle) } == .accessDenied
        } ?? false
        let end = try? System.invoke(SystemCall.MemoryAccount(process: process))
        charged = object != nil && start?.limit == 256 * 1024 && during.map { $0.used >= (start?.used ?? 0) + 64 * 1024 } == true
            && end?.used == start?.used && tooMuch && noRight && childPaid && childNoRight
        try? IPC.close(process)
    }
    suite.check(charged, "with the account right a memory object or a new process (processCreate's account) is charged to another process, within its limit, and its account is read; without it both are refused")

    // The process table is fixed: a process with a limit of its own holds at most a quarter of
    // it (64 slots), itself and its descendants together, however much memory its limit leaves.
    // (Each new process's handle is given to the holder, whose table has room for them all.)
    // Slots come back as processes leave the table: one while the holder lives, then the rest
    // with it.
    var shared = false
    var madeInShare = 0
    var shareRefusal: KernelError?
    if let holder = try? ProcessHandles.create("holder", memoryLimit: 16 << 20).handle {
        let before = (try? System.invoke(SystemCall.ProcessStatistics()))?.liveProcesses ?? 0
        // All but the last made are given to the holder; the last stays here.
        var last: Handle?
        while madeInShare < 64 {
            do throws(KernelError) {
                let made = try ProcessHandles.create("share", account: holder).handle
                if let previous = last, (try? ProcessHandles.give(previous, to: holder)) == nil {
                    try? IPC.close(previous)
                    try? IPC.close(made)
                    break
                }
                last = made
                madeInShare += 1
            } catch {
                shareRefusal = error
                break
            }
        }
        // The last one closed leaves the table at once (never started), and its slot comes back
        // while the holder and the rest live: one more fits, and then no more.
        if let last { try? IPC.close(last) }
        let refill = try? ProcessHandles.create("share", account: holder).handle
        let overAgain = catching { () throws(KernelError) in
            let extra = try ProcessHandles.create("share", account: holder).handle
            try? IPC.close(extra)
        }
        if let refill { try? IPC.close(refill) }
        let room = try? System.invoke(SystemCall.MemoryAccount(process: holder))
        let outside = try? ProcessHandles.create("outside").handle
        if let outside { try? IPC.close(outside) }
        try? IPC.close(holder)
        let after = (try? System.invoke(SystemCall.ProcessStatistics()))?.liveProcesses ?? 0
        shared = madeInShare == 63 && shareRefusal == .outOfMemory && refill != nil && overAgain == .outOfMemory
            && outside != nil && after == before - 1
            && room.map { $0.limit - $0.used > 8 << 20 } == true
    }
    suite.check(shared, "a process with a memory limit holds at most a quarter of the process table with its descendants (it and 63 more; made \(madeInShare), then refused with status \(shareRefusal.map { UInt64($0.rawValue) } ?? 0)), with most of its memory left; one that leaves the table gives its slot back (one more fits, then none); they leave the table with the holder")

    // Processes that never started and that only unstarted processes hold. A chain of them,
    // each holding the next one's only handle, ends link by link when its head is closed (the
    // kernel ends them in a loop: as a recursion it would overrun its stack); one holding its
    // own handle, and two holding each other's, end with the process that made them.
    var chainEnded = false
    let liveBeforeChain = System.processes.live
    // The kernel's process table has 256 slots; some stay free for the services.
    let links = Int(max(0, min(160, 256 - Int64(liveBeforeChain) - 24)))
    var head: Handle?
    var linked = 0
    for _ in 0..<links {
        guard let link = try? ProcessHandles.create("link").handle else { break }
        if let previous = head, (try? ProcessHandles.give(previous, to: link)) == nil {
            try? IPC.close(link)
            break
        }
        head = link
        linked += 1
    }
    let chainLive = System.processes.live
    if let head { try? IPC.close(head) }
    chainEnded = chainLive == liveBeforeChain + UInt64(linked) && System.processes.live == liveBeforeChain
    let orphans = run("crasher", 11)
    // Its exit code: how many it left (3), plus 16 for each request for memory it was refused.
    let orphansEnded = orphans?.reason == .exited && (orphans?.code == 3 || (orphans?.code ?? 0) >= 16)
        && System.processes.live == liveBeforeChain
    suite.check(chainEnded && orphansEnded && linked == links,
                "a chain of \(linked) unstarted processes, each holding the next one's only handle, ends when its head is closed; unstarted children holding their own handle or each other's end with their parent (\((orphans?.code ?? 0) % 16) left)",
                since: refusalsBefore)

    // A lineage is at most 64 accounts deep (the root's, init's, this suite's, then its own):
    // generation 61 of crasher 13, each waiting for the next, is refused a child; all of it ends.
    let liveBeforeLineage = System.processes.live
    let lineage = run("crasher", 13)
    suite.check(lineage?.reason == .exited && lineage?.code == 61 && System.processes.live == liveBeforeLineage,
                "a lineage in which each process starts the next is refused its generation 62 (64 accounts deep) with out of memory, and ends whole (the last generation: \(lineage?.code ?? 0))",
                since: refusalsBefore)

    // A start handle that would not fit in the new process's table is refused before it moves,
    // even the process's own last handle (closing it there would end the process it starts).
    var fullRefused = false
    if let target = try? HandBuiltProgram.build() {
        var given = 0
        while given < 64, let filler = try? IPC.createNotification() {
            guard (try? ProcessHandles.give(filler, to: target)) != nil else {
                try? IPC.close(filler)
                break
            }
            given += 1
        }
        // Only with the table full: else the start would succeed, and the process would spin
        // for ever holding its own last handle.
        if given == 64 {
            let liveFull = System.processes.live
            let refused = catching { () throws(KernelError) in
                try ProcessHandles.start(target, entry: HandBuiltProgram.codeAddress + HandBuiltProgram.spin,
                                         stackTop: HandBuiltProgram.stackTop, handle: target)
            }
            let stillThere = raw(SystemCallNumber.processWait.rawValue, target.value, 1).status == KernelError.wouldBlock.rawValue
            fullRefused = refused == .handleTableFull && stillThere && System.processes.live == liveFull
        }
        try? IPC.close(target)
    }
    suite.check(fullRefused, "processStart refuses a start handle the new process has no room for (its own last handle among them), and the process stays unstarted")

    let after = KernelHoldings.settled(toNoMoreThan: before)
    let kept = after.holdsNoMoreThan(before)
    if !kept { after.printChange(from: before, in: "building processes") }
    suite.check(kept && System.processes.live <= liveBefore,
                "building processes by handle leaks nothing (objects \(before.objects) → \(after.objects), free frames \(before.freeFrames) → \(after.freeFrames))", since: refusalsBefore)
}

/// What the waiting thread of the moved receive right's test shares with it.
enum MovedRightWaiter {
    nonisolated(unsafe) static var port = Handle(0)
    nonisolated(unsafe) static var waiting = false
    /// How its receive ended: 0 with a message, else the error; `.max` while it waits.
    nonisolated(unsafe) static var outcome = UInt64.max
    /// How long it waits (ns).
    nonisolated(unsafe) static var timeout = UInt64.max
}

/// Receives on `MovedRightWaiter.port` for ever, once, and says how that ended.
let movedRightWaiterBody: System.ThreadBody = { _ in
    var message = IPCMessage()
    MovedRightWaiter.waiting = true
    let error = catching { () throws(KernelError) in try IPC.receive(MovedRightWaiter.port, into: &message, timeout: MovedRightWaiter.timeout) }
    MovedRightWaiter.outcome = error?.rawValue ?? 0
    System.exitThread()
}
