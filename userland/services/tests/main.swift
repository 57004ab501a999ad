// tests: the user-space test suite, run by init in test mode with init's device-access capability
// as its start handle. Each case prints a check mark only after its checks passed; the last line
// is "tests: N passed, N failed" and the exit code is the number of failures. It covers the system
// calls, bad pointers and arguments, and programs that crash, checking that this process and the
// kernel survive and that memory comes back. Started with argument 1 it is instead the driver
// process of the device access test.

import UserSystemCall

struct Suite {
    var passed = 0
    var failed = 0
    /// `System.outOfMemoryResults` at the last check that passed: a failed case that follows
    /// refusals of memory (its own, or those that broke the cases since) says so. Under fault
    /// injection such failures are expected; any other is a real one.
    var outOfMemorySeen: UInt64 = 0

    /// `since`: for a check over several cases (a leak check of a whole group), the
    /// `System.outOfMemoryResults` at the group's start: its failure then says whether memory
    /// was refused anywhere in the group, whose cases may have ended part-way for it (and this
    /// process's heap or stack grown meanwhile).
    mutating func check(_ condition: Bool, _ description: FormattedText, since mark: UInt64? = nil) {
        var line = TextLine()
        let refusals = System.outOfMemoryResults - min(outOfMemorySeen, mark ?? outOfMemorySeen)
        if condition { outOfMemorySeen = System.outOfMemoryResults }
        line.write(condition ? "tests: \u{2713} " : "tests: \u{2717} FAILED: ")
        if !condition && refusals > 0 {
            line.write("(out of memory \u{00d7}")
            line.writeDecimal(refusals)
            line.write(") ")
        }
        description.line.forEachByte { line.write(byte: $0) }
        System.print(FormattedText(line: line))
        if condition { passed += 1 } else { failed += 1 }
    }
}

/// Runs `name` with `argument` to its end.
func run(_ name: StaticString, _ argument: UInt64 = 0) -> (reason: ExitReason, code: UInt64)? {
    guard let child = try? System.spawn(name, argument: argument) else { return nil }
    return try? System.wait(child)
}

func raw(_ number: UInt64, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0) -> (status: UInt64, value0: UInt64) {
    let result = user_system_call(number, a0, a1, a2, 0, 0, 0)
    // Memory pressure all the same, for the checks' count (`Suite.check`).
    if result.status == KernelError.outOfMemory.rawValue { System.outOfMemoryResults &+= 1 }
    return (result.status, result.value0)
}

@main
struct Tests {
    static func main() {
        if System.startArgument == 1 { System.exit(driveInterrupt()) }
        // The suite's own heap, mapped now: under fault injection the kernel refuses requests at
        // random, and the suite must outlive the refusals its cases meet. (Asked again while refused.)
        for _ in 0..<100 where (try? UserHeap.reserve(pages: 64)) == nil {}
        // And the ramdisk `System.spawn` loads from, so that it is not counted as a case's leak.
        for _ in 0..<100 where !System.prepareSpawn() {}
        var suite = Suite()
        let error = { (code: KernelError) in code.rawValue }

        // Identity and time.
        let me = System.processID
        suite.check(me.value > 1 && System.parentID.value == 1 && System.threadID > 0,
                    "process \(me.value), parent \(System.parentID.value) (init), thread \(System.threadID)")
        let first = System.clock
        System.yield()
        let second = System.clock
        suite.check(first.frequency > 0 && second.ticks >= first.ticks, "clock is monotonic at \(first.frequency) Hz; yield returns")
        let before = System.clock
        System.sleep(nanoseconds: 30_000_000)
        let slept = System.clock.milliseconds(since: before)
        suite.check(slept >= 30 && slept < 1000, "sleep of 30 ms took \(slept) ms")

        // Bad input gets an error, never a crash.
        suite.check(raw(999).status == error(.unknownSystemCall), "system call 999 is unknown")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0, 16).status == error(.badAddress),
                    "write from address 0 is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0xFFFF_0000_4020_0000, 16).status == error(.badAddress),
                    "write from kernel memory is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0x7000_0000_0000, 16).status == error(.badAddress),
                    "write from unmapped user memory is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0x40_0000, UInt64.max).status == error(.badAddress),
                    "write with a length that wraps the address space is a bad address")
        // A text whose second piece of 256 bytes lies on an unmapped page: the first goes out
        // (one line of the log) and is counted; only a write of which nothing goes out fails.
        var partialWritten: UInt64 = 0
        if let page = try? System.map(bytes: 4096, access: [.write]) {
            let start = page + 4096 - 300
            let line: StaticString = "tests: a debug write that faults after its first 256 bytes writes those "
            for index in 0..<256 { start.storeBytes(of: index < line.utf8CodeUnitCount ? line.utf8Start[index] : 0x20, toByteOffset: index, as: UInt8.self) }
            start.storeBytes(of: 0x0A, toByteOffset: 255, as: UInt8.self)
            let result = raw(SystemCallNumber.debugWrite.rawValue, UInt64(UInt(bitPattern: start)), 600)
            partialWritten = result.status == systemCallSuccess ? result.value0 : 0
            try? System.unmap(page, bytes: 4096)
        }
        suite.check(partialWritten == 256, "a write that faults part-way reports the \(partialWritten) bytes that went out before the fault")
        suite.check(raw(8, 0x40_0000, 5).status == error(.unknownSystemCall),
                    "system call 8 (spawn by name, retired: programs load in user space) is unknown")
        let missing = catching { () throws(KernelError) in _ = try System.spawn("no-such-program") }
        suite.check(missing == .notFound, "spawn of a program the ramdisk lacks is not found")
        suite.check(raw(SystemCallNumber.wait.rawValue, 1).status == error(.notFound) && raw(SystemCallNumber.kill.rawValue, 1).status == error(.notFound),
                    "wait for and kill of a process that is not a child are refused")

        // Memory: map, use, unmap; refusals for bad requests.
        let footprintBefore = KernelFootprint.steady()
        var mapped = false
        if let block = try? System.map(bytes: 64 * 1024, access: .write) {
            let words = block.bindMemory(to: UInt64.self, capacity: 8192)
            for index in 0..<8192 { words[index] = UInt64(index) &* 2654435761 }
            var intact = true
            for index in 0..<8192 where words[index] != UInt64(index) &* 2654435761 { intact = false }
            let inUse = System.processes.mappedBytes
            mapped = intact && (try? System.unmap(block, bytes: 64 * 1024)) != nil
                && System.processes.mappedBytes == inUse - 64 * 1024
                && raw(SystemCallNumber.unmap.rawValue, UInt64(UInt(bitPattern: block)), 64 * 1024).status == error(.invalidArgument)
        }
        suite.check(mapped && KernelFootprint.settled(toward: footprintBefore).frames == footprintBefore.frames,
                    "map 64 KiB, fill, verify, unmap; frames returned")
        suite.check(raw(SystemCallNumber.map.rawValue, 4096, 3).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 0, 1).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 1 << 40, 1).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 4096, 8).status == error(.invalidArgument),
                    "map refuses writable+executable, zero, 1 TiB and unknown access bits")

        // The heap over `map`: a growing Swift array and many blocks.
        var values: [UInt64] = []
        for index in 0..<5000 { values.append(UInt64(index) * 3) }
        var total: UInt64 = 0
        for value in values { total += value }
        values = []
        suite.check(total == 37_492_500, "Swift array of 5000 elements on the user heap (sum \(total))")

        // Programs that end: normally, by fault, by kill; memory comes back each time.
        let exited = run("crasher", 0)
        suite.check(exited?.reason == .exited && exited?.code == 42, "child exits with code 42 and wait reports it")
        let faults: [(UInt64, StaticString, UInt64)] = [
            (1, "null pointer read", 0x24), (2, "kernel memory read", 0x24), (3, "write to its own text", 0x24),
            (4, "illegal instruction", 0x00), (5, "stack overflow", 0x24), (6, "fault with 1 MiB mapped", 0x24),
            (18, "a write to the timer of the kernel's tick, which EL0 may not reach", 0x18),
            (19, "the breakpoint of the kernel's self-test, skipped only at EL1", 0x3C),
        ]
        for (kind, name, expectedClass) in faults {
            let beforeCrash = KernelFootprint.steady()
            let status = run("crasher", kind)
            let exceptionClass = (status?.code ?? 0xFFFF_FFFF) >> 26 & 0x3F
            suite.check(status?.reason == .faulted && exceptionClass == expectedClass
                        && KernelFootprint.settled(toward: beforeCrash).frames == beforeCrash.frames,
                        "crasher killed for \(name) (ESR class \(hex: exceptionClass, digits: 2)); all its frames returned")
        }
        let beforeKill = KernelFootprint.steady()
        var killed = false
        if let spinner = try? System.spawn("spinner") {
            System.sleep(nanoseconds: 20_000_000) // it runs: preemption gives this process the CPU back
            killed = (try? System.kill(spinner)) != nil && (try? System.wait(spinner))?.reason == .killed
        }
        suite.check(killed && KernelFootprint.settled(toward: beforeKill).frames == beforeKill.frames,
                    "a spinning child is preempted, killed and collected; frames returned")

        // FP/SIMD state survives switches between processes using it at the same time.
        let checkers = [try? System.spawn("fpcheck"), try? System.spawn("fpcheck"), try? System.spawn("fpcheck")]
        var fpOK = true
        for checker in checkers {
            guard let checker, let status = try? System.wait(checker), status.reason == .exited, status.code == 0 else {
                fpOK = false
                continue
            }
        }
        suite.check(fpOK, "3 processes keep their FP registers across yields and preemption")
        suite.check(System.processes.live >= 2, "process table: \(System.processes.live) live (init and tests)")

        // Kernel objects are freed however a process ends: exit, fault, killed while blocked in a
        // system call, killed while running. (Two warm-up rounds first, so slabs exist.)
        var blocks: [UInt64] = []
        for _ in 0..<3 {
            blocks.append(KernelHoldings.steady.heapBlocks)
            _ = run("crasher", 0)
            _ = run("crasher", 1)
            if let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
               let echo = try? System.spawn("echo", handle: serverSide) {
                System.sleep(nanoseconds: 5_000_000) // it is now blocked in receive
                try? System.kill(echo)
                _ = try? System.wait(echo)
                try? IPC.close(port)
            }
            if let spinning = try? System.spawn("spinner") {
                System.sleep(nanoseconds: 5_000_000)
                try? System.kill(spinning)
                _ = try? System.wait(spinning)
            }
        }
        blocks.append(KernelHoldings.steady.heapBlocks)
        suite.check(blocks[1] == blocks[2] && blocks[2] == blocks[3],
                    "kernel objects freed after exit, fault, kill while blocked in receive and kill while running (heap blocks \(blocks[1]), \(blocks[2]), \(blocks[3]))")

        testThreads(&suite)
        testIPC(&suite)
        testRegisterMessages(&suite)
        onOneCPU { testSliceAcrossIPC(&suite) }
        testMemoryCopies(&suite)
        testOnDemandMemory(&suite)
        testNameService(&suite)
        onOneCPU { testDirectDelivery(&suite) }
        onOneCPU { testServerPortClosedWhileWaiting(&suite) }
        testNotificationClosedUnderWaiter(&suite)
        onOneCPU { testDisplacedNotificationWaiter(&suite) }
        onOneCPU { testKilledWaiters(&suite) }
        testDeviceAccess(&suite)
        testInterruptPreemption(&suite)
        testKernelLog(&suite)
        testProcessManager(&suite)
        testReliability(&suite)
        testProcessBuilding(&suite)
        testMemoryManager(&suite)
        testManyMemoryClients(&suite)
        testSharedRegions(&suite)
        testHeapGrowthWithoutItsManager(&suite)
        testMultiprocessor(&suite)
        testThreadPriority(&suite)

        System.print("tests: \(suite.passed) passed, \(suite.failed) failed")
        System.exit(UInt64(suite.failed))
    }
}

/// IPC: ports, rights, messages, handle transfer, calls, notifications, and every error.
func testIPC(_ suite: inout Suite) {
    let framesBefore = System.memory.freeFrames
    guard let port = try? IPC.createPort() else {
        suite.check(false, "port created")
        return
    }

    // Asynchronous messages within one process: FIFO order, payloads intact, then empty.
    var sent = true
    for index in 0..<3 {
        var message = IPCMessage(label: UInt64(100 + index))
        message.fill(count: 10 * index) { UInt8(truncatingIfNeeded: $0 &+ index) }
        sent = sent && (try? IPC.send(port, &message)) != nil
    }
    var inOrder = sent
    for index in 0..<3 {
        var message = IPCMessage()
        inOrder = inOrder && (try? IPC.receive(port, into: &message, timeout: 0)) != nil && message.label == UInt64(100 + index)
            && message.length == 10 * index && (0..<message.length).allSatisfy { message[byte: $0] == UInt8(truncatingIfNeeded: $0 &+ index) }
            && message.sender == System.processID
    }
    var empty = IPCMessage()
    let noWait = catching { () throws(KernelError) in try IPC.receive(port, into: &empty, timeout: 0) }
    let clockBefore = System.clock
    let waited = catching { () throws(KernelError) in try IPC.receive(port, into: &empty, timeout: 15_000_000) }
    let waitedMilliseconds = System.clock.milliseconds(since: clockBefore)
    suite.check(inOrder && noWait == .wouldBlock && waited == .timedOut && waitedMilliseconds >= 15,
                "3 messages sent and received in order with sender id; empty port: would block, then timed out after \(waitedMilliseconds) ms")

    // A flooding sender gets queueFull, and nothing queued is lost.
    var queued = 0
    var flood = IPCMessage(label: 7)
    while (try? IPC.send(port, &flood)) != nil { queued += 1 }
    let full = catching { () throws(KernelError) in try IPC.send(port, &flood) }
    var drained = 0
    while (try? IPC.receive(port, into: &empty, timeout: 0)) != nil { drained += 1 }
    suite.check(queued == 16 && full == .queueFull && drained == 16, "queue holds \(queued) messages, then queue full; all \(drained) received")

    // A message its receiver cannot take (the buffer is not mapped) stays first in the queue.
    var first = IPCMessage(label: 61)
    var second = IPCMessage(label: 62)
    let bothSent = (try? IPC.send(port, &first)) != nil && (try? IPC.send(port, &second)) != nil
    let unmappedBuffer = raw(SystemCallNumber.receive.rawValue, port.value, 0x7000_0000_0000, 0).status
    var takenFirst = IPCMessage()
    var takenSecond = IPCMessage()
    let orderKept = (try? IPC.receive(port, into: &takenFirst, timeout: 0)) != nil && takenFirst.label == 61
        && (try? IPC.receive(port, into: &takenSecond, timeout: 0)) != nil && takenSecond.label == 62
    suite.check(bothSent && unmappedBuffer == KernelError.badAddress.rawValue && orderKept,
                "a message whose receiver's buffer is unmapped stays first: bad address, then received in order")

    // Bad messages and handles.
    var oversized = IPCMessage()
    oversized.setRawLength(300)
    let tooLong = catching { () throws(KernelError) in try IPC.send(port, &oversized) }
    let badPointer = UInt64(raw(SystemCallNumber.send.rawValue, port.value, 0x10).status)
    let misaligned = UInt64(raw(SystemCallNumber.send.rawValue, port.value, 0x40_0004).status)
    let bogus = catching { () throws(KernelError) in try IPC.send(Handle(0x1234_0005), &flood) }
    suite.check(tooLong == .invalidArgument && badPointer == KernelError.badAddress.rawValue
                && misaligned == KernelError.badAddress.rawValue && bogus == .invalidHandle,
                "oversized message invalid, bad and misaligned message pointers bad address, made-up handle invalid")

    // Rights: duplicates can only narrow, and are enforced.
    let sendOnly = try? IPC.duplicate(port, rights: [.send])
    let widen = sendOnly.flatMap { handle in catching { () throws(KernelError) in _ = try IPC.duplicate(handle, rights: [.send, .receive]) } }
    let receiveWithSendOnly = sendOnly.flatMap { handle in catching { () throws(KernelError) in try IPC.receive(handle, into: &empty, timeout: 0) } }
    let widening = catching { () throws(KernelError) in _ = try IPC.duplicate(port, rights: Rights(rawValue: 1 << 40)) }
    suite.check(sendOnly != nil && widen == .accessDenied && receiveWithSendOnly == .accessDenied && widening == .invalidArgument,
                "a send-only duplicate cannot receive or be widened; unknown rights refused")

    // Handles move with messages: gone from the sender, usable by the receiver.
    var transferOK = false
    if let notification = try? IPC.createNotification() {
        var carrier = IPCMessage(label: 9)
        carrier.attach(notification)
        let moved = (try? IPC.send(port, &carrier)) != nil
        let staleAfterMove = catching { () throws(KernelError) in try IPC.signal(notification, bits: 1) }
        var received = IPCMessage()
        if moved, staleAfterMove == .invalidHandle, (try? IPC.receive(port, into: &received, timeout: 0)) != nil,
           received.handleCount == 1 {
            let handle = received.handle(0)
            transferOK = (try? IPC.signal(handle, bits: 0b101)) != nil && (try? IPC.wait(handle, timeout: 0)) == 0b101
                && catching({ () throws(KernelError) in _ = try IPC.wait(handle, timeout: 0) }) == .wouldBlock
            try? IPC.close(handle)
        }
    }
    var notHeld = IPCMessage()
    notHeld.setRawHandle(0, 0x7_0000_0003)
    notHeld.handleCount = 1
    let transferUnheld = catching { () throws(KernelError) in try IPC.send(port, &notHeld) }
    var withoutRight = IPCMessage()
    if let sendOnly { withoutRight.attach(sendOnly) }
    let transferWithoutRight = catching { () throws(KernelError) in try IPC.send(port, &withoutRight) }
    suite.check(transferOK && transferUnheld == .invalidHandle && transferWithoutRight == .accessDenied,
                "a notification handle moves with a message and works for the receiver; unheld or non-transferable handles refused")

    // Calls to a server in another process: replies, trusted sender id, payload sizes.
    var callsOK = false
    if let server = try? IPC.duplicate(port, rights: [.receive, .transfer]), let echo = try? System.spawn("echo", handle: server) {
        var who = IPCMessage(label: 2)
        let asked = (try? IPC.call(port, &who)) != nil
        var senderSeen: UInt64 = 0
        for index in 0..<8 { senderSeen |= UInt64(who[byte: index]) << (8 * UInt64(index)) }
        callsOK = asked && who.label == 3 && senderSeen == System.processID.value
        for size in [0, 64, 256] {
            var request = IPCMessage(label: 10)
            request.fill(count: size) { UInt8(truncatingIfNeeded: $0 * 7 + size) }
            callsOK = callsOK && (try? IPC.call(port, &request)) != nil && request.label == 11 && request.length == size
                && (0..<size).allSatisfy { request[byte: $0] == UInt8(truncatingIfNeeded: $0 * 7 + size) }
        }
        // Plain sends carrying handles: the server closes them too, or its table (64) would fill
        // and its next receive fail. Three sends of four handles, then a call behind them, six
        // times: 72 handles in all.
        for _ in 0..<6 where callsOK {
            for _ in 0..<3 where callsOK {
                var carrying = IPCMessage(label: 30)
                for _ in 0..<4 { if let bell = try? IPC.createNotification() { carrying.attach(bell) } }
                callsOK = carrying.handleCount == 4 && (try? IPC.send(port, &carrying)) != nil
                // Not sent, they are still this process's.
                if !callsOK { carrying.closeHandles() }
            }
            var behind = IPCMessage(label: 10)
            callsOK = callsOK && (try? IPC.call(port, &behind)) != nil && behind.label == 11
        }
        callsOK = stopEcho(echo, on: port) && callsOK
    }
    suite.check(callsOK, "calls to an echo server: replies with 0, 64 and 256-byte payloads, the kernel-reported sender id, and 72 handles sent to it without a call closed there")

    // A server that dies mid-call: the caller gets an error, not a hang.
    var deadServer = false
    if let second = try? IPC.createPort(), let clientSide = try? IPC.duplicate(second, rights: [.send]),
       let dying = try? System.spawn("echo", argument: 1, handle: second) {
        // The only receive right moved to the server with `second`.
        var request = IPCMessage(label: 5)
        let result = catching { () throws(KernelError) in try IPC.call(clientSide, &request) }
        let status = try? System.wait(dying)
        // The receive right died with the server: sending again finds no receiver.
        let afterDeath = catching { () throws(KernelError) in try IPC.send(clientSide, &request) }
        deadServer = result == .peerClosed && status?.code == 3 && afterDeath == .peerClosed
        try? IPC.close(clientSide)
    }
    suite.check(deadServer, "a server dies holding a call: the caller gets peer closed; later sends too")

    // Shared memory: one object mapped twice here and once in the echo server, rights enforced.
    var sharedOK = false
    if let memory = try? IPC.createMemory(bytes: 8192), let writable = try? IPC.map(memory, writable: true),
       let readOnly = try? IPC.map(memory, writable: false),
       let mapOnly = try? IPC.duplicate(memory, rights: [.map, .transfer, .duplicate]) {
        let words = writable.assumingMemoryBound(to: UInt64.self)
        var expected: UInt64 = 0
        for index in 0..<512 { words[index] = UInt64(index) &* 0x9E37_79B9; expected &+= words[index] }
        let aliased = readOnly.load(fromByteOffset: 8 * 300, as: UInt64.self) == 300 &* 0x9E37_79B9
        let writeDenied = catching { () throws(KernelError) in _ = try IPC.map(mapOnly, writable: true) }
        let tooBig = catching { () throws(KernelError) in _ = try IPC.createMemory(bytes: 2 << 20) }
        let empty = catching { () throws(KernelError) in _ = try IPC.createMemory(bytes: 0) }
        var serverSum: UInt64 = 0
        if let server = try? IPC.duplicate(port, rights: [.receive, .transfer]), let echo = try? System.spawn("echo", handle: server) {
            var hand = IPCMessage(label: 20)
            hand.attach(mapOnly)
            _ = try? IPC.call(port, &hand)
            var ask = IPCMessage(label: 21)
            ask.fill(count: 8) { UInt8(truncatingIfNeeded: 4096 >> (8 * $0)) }
            if (try? IPC.call(port, &ask)) != nil {
                for index in 0..<8 { serverSum |= UInt64(ask[byte: index]) << (8 * UInt64(index)) }
            }
            _ = stopEcho(echo, on: port)
        }
        sharedOK = aliased && writeDenied == .accessDenied && tooBig == .invalidArgument && empty == .invalidArgument
            && serverSum == expected
            && (try? System.unmap(writable, bytes: 8192)) != nil && (try? System.unmap(readOnly, bytes: 8192)) != nil
        try? IPC.close(memory)
    }
    suite.check(sharedOK, "a memory object maps twice here and read-only in another process (which sums 4 KiB correctly); write needs the right")

    try? IPC.close(port)
    if let sendOnly { try? IPC.close(sendOnly) }

    // Waiting on several objects at once.
    var waitAnyOK = false
    if let inbox = try? IPC.createPort(), let bell = try? IPC.createNotification(),
       let bellForChild = try? IPC.duplicate(bell, rights: [.signal, .transfer]) {
        let idle = catching { () throws(KernelError) in _ = try IPC.waitAny([inbox, bell], timeout: 0) }
        let start = System.clock
        let late = catching { () throws(KernelError) in _ = try IPC.waitAny([inbox, bell], timeout: 10_000_000) }
        let lateMilliseconds = System.clock.milliseconds(since: start)
        // Another process rings the bell after 20 ms while this one waits for ever on both.
        let ringer = try? System.spawn("echo", argument: 2, handle: bellForChild)
        // (Without the ringer, nothing would ever ring: then only a look.)
        let rung = try? IPC.waitAny([inbox, bell], timeout: ringer == nil ? 0 : .max)
        let bits = try? IPC.wait(bell, timeout: 0)
        var note = IPCMessage(label: 1)
        _ = try? IPC.send(inbox, &note)
        let mail = try? IPC.waitAny([bell, inbox], timeout: 0)
        let tooMany = catching { () throws(KernelError) in _ = try IPC.waitAny(Array(repeating: inbox, count: 9), timeout: 0) }
        waitAnyOK = idle == .wouldBlock && late == .timedOut && lateMilliseconds >= 10 && rung == 1 && bits == 2 && mail == 1
            && tooMany == .invalidArgument && ringer != nil && (try? System.wait(ringer!))?.code == 0
        try? IPC.close(inbox)
        try? IPC.close(bell)
    }
    suite.check(waitAnyOK, "waitAny on a port and a notification: would block, times out, wakes when another process signals, sees mail")

    // Stress: 3 servers and 6 clients in separate processes, 900 calls and a flood. Afterwards every
    // kernel object is gone (heap blocks back to where they were) and every frame is accounted
    // for: free, or held by the kernel heap's slab cache.
    let stressBefore = KernelHoldings.steady
    let processesBefore = System.processes.live
    let stressStatus = run("ipcstress")
    let stressAfter = KernelHoldings.settled(toNoMoreThan: stressBefore)
    suite.check(stressStatus?.reason == .exited && stressStatus?.code == 0 && stressAfter.heapBlocks == stressBefore.heapBlocks
                && stressAfter.framesAvailable == stressBefore.framesAvailable
                && System.processes.live == processesBefore,
                "IPC stress (3 servers, 6 clients, 900 calls, floods) without error (exit code \(stressStatus?.code ?? 999), live processes \(processesBefore) before, \(System.processes.live) after); kernel heap blocks \(stressBefore.heapBlocks) before, \(stressAfter.heapBlocks) after; free frames \(stressBefore.freeFrames) + heap pages \(stressBefore.heapPages) before, \(stressAfter.freeFrames) + \(stressAfter.heapPages) after")

    // Filling the handle table is an error; closing everything gives all memory back. Two equal
    // rounds: the first also warms the kernel heap's slabs, so the second must end exactly where
    // it began.
    var rounds: [(created: Int, overflow: KernelError?, closedTwice: KernelError?, before: KernelFootprint, after: KernelFootprint)] = []
    for _ in 0..<2 {
        let before = KernelFootprint.steady()
        var created: [Handle] = []
        while let handle = try? IPC.createPort() { created.append(handle) }
        let overflow = catching { () throws(KernelError) in _ = try IPC.createNotification() }
        for handle in created { try? IPC.close(handle) }
        let closedTwice = catching { () throws(KernelError) in try IPC.close(created[0]) }
        rounds.append((created.count, overflow, closedTwice, before, KernelFootprint.settled(toward: before)))
    }
    suite.check(rounds[1].overflow == .handleTableFull && rounds[1].created > 50 && rounds[1].closedTwice == .invalidHandle
                && rounds[1].after == rounds[1].before,
                "handle table full after \(rounds[1].created) ports; closing twice is invalid; objects \(rounds[1].before.objects) before, \(rounds[1].after.objects) after; free frames and kernel heap pages \(rounds[1].before.frames) before, \(rounds[1].after.frames) after")
    // Fewer by at most the heap's warm slabs. More is no leak: with several CPUs, an idle one may
    // release a thread that ended in an earlier test (its kernel stack) only now.
    let framesAfter = System.memory.freeFrames
    suite.check(framesAfter + 64 > framesBefore,
                "IPC objects freed: \(framesBefore) frames free before the IPC tests, \(framesAfter) after (kernel heap keeps warm slabs)")

    // The port census (`portStatistics`): a port counts alive while anything names it, and closed
    // from its receive handle's close until its last send right goes. Closed, it frees its queue
    // and buffers and keeps only the object's part of its charge for the send rights left.
    let census = System.ports
    let chargedBefore = System.memoryAccount.used
    var steps: [(alive: UInt64, closed: UInt64, charged: UInt64)] = []
    var sendAfterClose: KernelError?
    if let port = try? IPC.createPort(), let sender = try? IPC.duplicate(port, rights: [.send]) {
        steps.append((System.ports.alive, System.ports.closed, System.memoryAccount.used))
        try? IPC.close(port)
        steps.append((System.ports.alive, System.ports.closed, System.memoryAccount.used))
        var message = IPCMessage(label: 1)
        sendAfterClose = catching { () throws(KernelError) in try IPC.send(sender, &message) }
        try? IPC.close(sender)
        steps.append((System.ports.alive, System.ports.closed, System.memoryAccount.used))
    }
    let expected: [(alive: UInt64, closed: UInt64)] = [(census.alive + 1, census.closed), (census.alive + 1, census.closed + 1),
                                                       (census.alive, census.closed)]
    let openCharge = (steps.first?.charged ?? 0) &- chargedBefore
    let closedCharge = steps.count > 1 ? steps[1].charged &- chargedBefore : 0
    suite.check(steps.count == 3 && zip(steps, expected).allSatisfy { $0.alive == $1.alive && $0.closed == $1.closed }
                && sendAfterClose == .peerClosed && openCharge > 0 && openCharge < 1 << 20 && closedCharge > 0
                && closedCharge <= openCharge / 8 && steps[2].charged == chargedBefore,
                "portStatistics: a new port counts alive (\(census.alive) -> \(steps.first?.alive ?? 0)); its receive handle closed, it counts closed (\(census.closed) -> \(steps.count > 1 ? steps[1].closed : 0)), its charge falls from \(openCharge) to \(closedCharge) bytes and a send gets peer closed; its last send right closed, it is gone and so is its charge (\(steps.count > 2 ? steps[2].charged &- chargedBefore : 1) left)")
}


/// Per-worker results, written by the worker threads through the pointer they are given.
struct WorkerSlot {
    var done: UInt64
    var sum: Double
    var thread: UInt64
}

/// Threads: several in one address space, each with its own registers and FP state.
func testThreads(_ suite: inout Suite) {
    guard let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "memory for worker results")
        return
    }
    // Bad thread starts are refused, never a kernel fault: a stack below 16 bytes (whose 16-byte
    // frame would wrap), a misaligned stack, an entry outside user space.
    let threadCreate = SystemCallNumber.threadCreate.rawValue
    let badStarts = [raw(threadCreate, 0x40_0001, 0), raw(threadCreate, 0x40_0001, 8),
                     raw(threadCreate, 0x40_0000, 0x7000_0000_0008), raw(threadCreate, 0xFFFF_0000_0000_0000, 0x7000_0000_0000)]
    suite.check(badStarts.allSatisfy { $0.status == KernelError.invalidArgument.rawValue },
                "threadCreate with stack 0, stack 8, a misaligned stack or a kernel entry: invalid argument")
    let slots = block.bindMemory(to: WorkerSlot.self, capacity: 4)
    var ids: [UInt64] = []
    for index in 0..<4 {
        slots[index] = WorkerSlot(done: 0, sum: 0, thread: 0)
        let id = try? System.createThread(argument: UInt64(UInt(bitPattern: slots + index))) { argument in
            let slot = UnsafeMutablePointer<WorkerSlot>(bitPattern: UInt(argument))!
            var sum = 0.0
            for step in 1...20_000 {
                sum += 1.0 / Double(step)
                if step % 5000 == 0 { System.yield() }
            }
            slot.pointee.sum = sum
            slot.pointee.thread = System.threadID
            slot.pointee.done = 1
        }
        if let id { ids.append(id) }
    }
    let start = System.clock
    while (0..<4).contains(where: { slots[$0].done == 0 }) && System.clock.milliseconds(since: start) < 5000 {
        System.yield()
    }
    var expected = 0.0
    for step in 1...20_000 { expected += 1.0 / Double(step) }
    let distinct = Set(ids).count == 4 && !ids.contains(System.threadID)
    let results = (0..<4).allSatisfy { slots[$0].done == 1 && slots[$0].sum == expected && ids.contains(slots[$0].thread) }
    suite.check(distinct && results && ids.count == 4,
                "4 threads in this process each computed the same FP sum, with their own thread ids (\(ids.first ?? 0) to \(ids.last ?? 0))")
    try? System.unmap(block, bytes: 4096)

    let status = run("crasher", 7)
    suite.check(status?.reason == .exited && status?.code == 7,
                "a process whose main thread exits while another thread spins ends with code 7")
}

/// A message for a receiver that is already waiting goes straight into its buffer; if that buffer
/// is not mapped, its receive fails and the message stays queued. `replyReceive` answers a call and
/// receives in one system call; with a bad port it does neither.
func testDirectDelivery(_ suite: inout Suite) {
    guard let port = try? IPC.createPort(), let callPort = try? IPC.createPort(),
          let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "ports and memory for the direct delivery test")
        return
    }
    let shared = block.bindMemory(to: UInt64.self, capacity: 8)
    for index in 0..<8 { shared[index] = 0 }
    shared[0] = port.value
    shared[1] = callPort.value
    let worker = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        // Waits with a buffer in user space that is not mapped.
        shared[2] = raw(SystemCallNumber.receive.rawValue, shared[0], 0x7000_0000_0000, UInt64.max).status
        var message = IPCMessage()
        shared[3] = (try? IPC.receive(Handle(shared[0]), into: &message, timeout: 1_000_000_000)) != nil ? message.label : 0
        if let reply = message.replyHandle {
            message.label += 1
            _ = try? IPC.reply(reply, &message)
        }
        var request = IPCMessage(label: 50)
        shared[4] = (try? IPC.call(Handle(shared[1]), &request)) != nil ? request.label : 0
        shared[5] = 1
    }
    guard worker != nil else {
        // Without the worker the call below would wait for ever: nobody would answer it.
        suite.check(false, "a worker thread for the direct delivery test")
        try? IPC.close(port)
        try? IPC.close(callPort)
        return
    }
    for _ in 0..<3 { System.yield() } // the worker runs and waits in receive
    // The call finds the worker waiting but cannot write into its buffer: the worker's receive
    // fails, the call waits in the queue until the worker receives it properly and answers.
    var note = IPCMessage(label: 77)
    let sent = (try? IPC.call(port, &note)) != nil && note.label == 78
    var incoming = IPCMessage()
    let received = (try? IPC.receive(callPort, into: &incoming, timeout: 1_000_000_000)) != nil && incoming.label == 50
    var badPort: KernelError?
    var answered = false
    if let reply = incoming.replyHandle {
        badPort = catching { () throws(KernelError) in try IPC.replyAndReceive(reply, Handle(0xDEAD), &incoming) }
        incoming.label = 51
        answered = (try? IPC.reply(reply, &incoming)) != nil
    }
    let start = System.clock
    while shared[5] == 0 && System.clock.milliseconds(since: start) < 1000 { System.yield() }
    let idle = catching { () throws(KernelError) in try IPC.replyAndReceive(nil, port, &incoming, timeout: 0) }
    suite.check(worker != nil && sent && shared[2] == KernelError.badAddress.rawValue && shared[3] == 77 && received
                && badPort == .invalidHandle && answered && shared[4] == 51 && idle == .wouldBlock,
                "a call to a receiver waiting with an unmapped buffer: its receive fails, the call stays queued and is answered; replyReceive with a bad port answers nothing")
    try? IPC.close(port)
    try? IPC.close(callPort)
}

/// A thread killed while it waits is woken to unwind, and runs only later: until then it must not
/// take what arrives for the waiters that stay. A signal to a notification it waited on leaves
/// the bits there; a message queued on a port it waited on wakes the next waiter.
func testKilledWaiters(_ suite: inout Suite) {
    var bitsKept = false
    if let bell = try? IPC.createNotification(), let copy = try? IPC.duplicate(bell, rights: [.wait, .transfer]) {
        if let child = try? System.spawn("crasher", argument: 14, handle: copy) {
            System.sleep(nanoseconds: 20_000_000) // it waits on the notification, in its frame
            let killed = (try? System.kill(child)) != nil
            try? IPC.signal(bell, bits: 0b101)
            let bits = try? IPC.wait(bell, timeout: 0)
            let status = try? System.wait(child)
            bitsKept = killed && bits == 0b101 && status?.reason == .killed
        } else {
            try? IPC.close(copy)
        }
        try? IPC.close(bell)
    }
    suite.check(bitsKept, "a signal to a notification whose waiter was killed (woken, not yet gone) leaves the bits for the next wait")

    // The same, when the signal is the waiter's own process's end and the notification ends with
    // it: the child's copy goes as it is killed, and the end's binding is the last reference. The
    // killed thread, which does not count what it waited on, must not touch it when it unwinds.
    let objectsBefore = KernelFootprint.steadyObjects
    var endedUntouched = false
    for _ in 0..<3 {
        guard let bell = try? IPC.createNotification(), let copy = try? IPC.duplicate(bell, rights: [.wait, .transfer]) else { break }
        guard let child = try? System.spawn("crasher", argument: 14, handle: copy) else {
            try? IPC.close(copy)
            try? IPC.close(bell)
            break
        }
        let bound = (try? ProcessHandles.notify(bell, bits: 1, whenEnds: child.process)) != nil
        try? IPC.close(bell)
        System.sleep(nanoseconds: 20_000_000) // it waits on the notification, in its frame
        let killed = (try? System.kill(child)) != nil
        // Notifications made before it unwinds take the freed one's memory; their bits must be
        // theirs still once it is gone.
        let fillers = (0..<4).compactMap { _ in try? IPC.createNotification() }
        for filler in fillers { try? IPC.signal(filler, bits: 0b110) }
        let status = try? System.wait(child)
        var intact = true
        for filler in fillers {
            intact = intact && (try? IPC.wait(filler, timeout: 0)) == 0b110
            try? IPC.close(filler)
        }
        endedUntouched = bound && killed && status?.reason == .killed && fillers.count == 4 && intact
        guard endedUntouched else { break }
    }
    endedUntouched = endedUntouched && KernelFootprint.objectsSettled(toward: objectsBefore) == objectsBefore
    suite.check(endedUntouched, "a thread killed waiting on a notification that its process's end signals and ends leaves it alone as it unwinds; objects made after it are intact")

    var nextWoken = false
    if let port = try? IPC.createPort(), let copy = try? IPC.duplicate(port, rights: [.receive, .transfer]),
       let block = try? System.map(bytes: 4096, access: .write) {
        let shared = block.bindMemory(to: UInt64.self, capacity: 4)
        (shared[0], shared[1], shared[2]) = (port.value, 0, 0)
        if let child = try? System.spawn("crasher", argument: 14, handle: copy) {
            System.sleep(nanoseconds: 20_000_000) // it waits in receive, first on the port's list
            // A thread of this process waits on the same port in waitAny, behind it.
            let waiter = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
                let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
                let outcome = catching { () throws(KernelError) in _ = try IPC.waitAny([Handle(shared[0])], timeout: 2_000_000_000) }
                shared[1] = outcome == nil ? 1 : 2
            }
            System.sleep(nanoseconds: 20_000_000)
            let killed = (try? System.kill(child)) != nil
            var message = IPCMessage(label: 5)
            let sent = (try? IPC.send(port, &message)) != nil
            let start = System.clock
            while waiter != nil && shared[1] == 0 && System.clock.milliseconds(since: start) < 3000 { System.sleep(nanoseconds: 1_000_000) }
            let woken = shared[1] == 1 && System.clock.milliseconds(since: start) < 1000
            var taken = IPCMessage()
            let queued = (try? IPC.receive(port, into: &taken, timeout: 0)) != nil && taken.label == 5
            let status = try? System.wait(child)
            nextWoken = waiter != nil && killed && sent && woken && queued && status?.reason == .killed
        } else {
            try? IPC.close(copy)
        }
        try? System.unmap(block, bytes: 4096)
        try? IPC.close(port)
    }
    suite.check(nextWoken, "a message queued on a port whose first waiter was killed (woken, not yet gone) wakes the waiter behind it")

    // A thread killed below the default level, on a CPU kept busy at that level, still unwinds
    // and is gone: it runs at the default level from its kill. (Kept below the default level, it
    // would wait for ever; the 2 s leave room for a host that seldom runs this CPU.)
    var unwound = false
    if let bell = try? IPC.createNotification(), let copy = try? IPC.duplicate(bell, rights: [.wait, .transfer]) {
        if let child = try? System.spawn("crasher", argument: 14 | 1 << 8, handle: copy) {
            System.sleep(nanoseconds: 20_000_000) // kept to CPU 0 at level 0, it waits
            if let spinner = try? System.spawn("spinner", argument: 1) {
                let killed = (try? System.kill(child)) != nil
                let start = System.clock
                var gone = false
                while !gone && System.clock.milliseconds(since: start) < 2000 {
                    System.yield()
                    // Its threads, not `wait`: a wait on a killed process blocks until they are gone.
                    gone = (try? ProcessHandles.info(child.process))?.threads == 0
                }
                try? System.kill(spinner)
                _ = try? System.wait(spinner)
                unwound = killed && gone
            }
            // Killed here too when the spinner could not start: it waits for ever otherwise.
            try? System.kill(child)
            _ = try? System.wait(child)
        } else {
            try? IPC.close(copy)
        }
        try? IPC.close(bell)
    }
    suite.check(unwound, "a thread killed while waiting at the lowest level, its CPU busy at the default level, still unwinds and is gone within 2 s")
}

/// A server thread that answered on the fast path and waits there again (`replyReceive`) wakes
/// with `peerClosed` when another thread closes the port's last receive handle.
func testServerPortClosedWhileWaiting(_ suite: inout Suite) {
    guard let port = try? IPC.createPort(), let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "port and memory for the closed-port test")
        return
    }
    let shared = block.bindMemory(to: UInt64.self, capacity: 4)
    shared[0] = port.value
    shared[1] = 0
    shared[2] = 0
    let server = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        var message = IPCMessage()
        guard (try? IPC.receive(Handle(shared[0]), into: &message)) != nil, let reply = message.replyHandle else {
            shared[2] = 1
            return
        }
        message.label += 1
        // Answers, then waits on the port until it is closed under it.
        let status = catching { () throws(KernelError) in try IPC.replyAndReceive(reply, Handle(shared[0]), &message) }
        shared[1] = status?.rawValue ?? 0
        shared[2] = 1
    }
    guard server != nil else {
        suite.check(false, "a server thread for the closed-port test")
        try? IPC.close(port)
        return
    }
    for _ in 0..<3 { System.yield() } // the server runs and waits in receive
    var request = IPCMessage(label: 60)
    let answered = (try? IPC.call(port, &request)) != nil && request.label == 61
    let closed = (try? IPC.close(port)) != nil
    let start = System.clock
    while shared[2] == 0 && System.clock.milliseconds(since: start) < 1000 { System.yield() }
    suite.check(server != nil && answered && closed && shared[2] == 1 && shared[1] == KernelError.peerClosed.rawValue,
                "a server waiting in replyReceive after a fast-path answer wakes with peer closed when its port is closed")
}

/// A thread waiting for ever on a notification holds no count on it (it waits in its frame). So
/// when another thread closes the notification's only handle, nothing can signal it again, and
/// the wait ends with `peerClosed`; and a waiter a signal has woken, whose handle is closed before
/// it runs, still returns its bits, which the signal handed it. A timed wait and `waitAny` do
/// keep the notification while they wait; they end too when the last handle that could wait
/// there is closed: the timed wait with `peerClosed`, `waitAny` with the notification ready, as
/// a closed port is. Nothing is left behind.
func testNotificationClosedUnderWaiter(_ suite: inout Suite) {
    guard let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "memory for the closed-notification test")
        return
    }
    let shared = block.bindMemory(to: UInt64.self, capacity: 6)
    let waiterBody: System.ThreadBody = { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        var bits: UInt64 = 0
        shared[4] = 1
        let status = catching { () throws(KernelError) in
            switch shared[5] {
            case 2: bits = try IPC.wait(Handle(shared[0]), timeout: 10_000_000_000)
            case 3:
                // waitAny's index, marked apart from any bits.
                var handles = InlineArray<1, UInt64>(repeating: shared[0])
                let result = try withUnsafeMutablePointer(to: &handles) { words throws(KernelError) in
                    try System.invoke(SystemCall.WaitAny(handles: UserAddress(words), count: 1, timeout: .max))
                }
                bits = 0x100 | result.index
            default: bits = try IPC.wait(Handle(shared[0]), timeout: .max)
            }
        }
        shared[1] = status?.rawValue ?? 0
        shared[2] = bits
        shared[3] = 1
    }
    // Round 0 closes the handle under the waiting thread; round 1 signals first, then closes it;
    // rounds 2 and 3 close it under a timed wait and under `waitAny`.
    var outcomes: [(status: UInt64, bits: UInt64, done: Bool)] = []
    let before = KernelFootprint.steady()
    for round in 0..<4 {
        guard let bell = try? IPC.createNotification() else { break }
        shared[0] = bell.value
        shared[1] = .max
        shared[2] = 0
        shared[3] = 0
        shared[4] = 0
        shared[5] = UInt64(round)
        guard (try? System.createThread(stackBytes: 16 * 1024, argument: UInt64(UInt(bitPattern: shared)), waiterBody)) != nil else {
            try? IPC.close(bell)
            break
        }
        // Started (its CPU may be one the host seldom runs), then a moment to begin its wait.
        let started = System.clock
        while shared[4] == 0 && System.clock.milliseconds(since: started) < 1000 { System.yield() }
        System.sleep(nanoseconds: 2_000_000) // it is waiting now
        if round == 1 { try? IPC.signal(bell, bits: 0x5A) }
        try? IPC.close(bell)
        let start = System.clock
        while shared[3] == 0 && System.clock.milliseconds(since: start) < 1000 { System.yield() }
        outcomes.append((shared[1], shared[2], shared[3] == 1))
    }
    // The waiter threads have ended; their stacks stay with this process.
    let after = KernelFootprint.settled(toward: KernelFootprint(frames: before.frames, objects: before.objects))
    let closed = outcomes.count == 4 && outcomes[0].done && outcomes[0].status == KernelError.peerClosed.rawValue
    let handed = outcomes.count == 4 && outcomes[1].done && outcomes[1].status == 0 && outcomes[1].bits == 0x5A
    let timedClosed = outcomes.count == 4 && outcomes[2].done && outcomes[2].status == KernelError.peerClosed.rawValue
    let anyReady = outcomes.count == 4 && outcomes[3].done && outcomes[3].status == 0 && outcomes[3].bits == 0x100
    suite.check(closed && after.objects == before.objects,
                "a thread waiting for ever on a notification whose only handle another thread closes wakes with peer closed; kernel objects \(before.objects) -> \(after.objects)")
    suite.check(handed, "a waiter woken by a signal gets its bits though the notification's handle is closed before it runs")
    suite.check(timedClosed && anyReady,
                "a timed wait and waitAny on a notification whose only handle another thread closes end at once: peer closed, and the notification ready")
    try? System.unmap(block, bytes: 4096)
}

/// A thread woken without bits in a timed wait finds that another thread took the bits and began
/// waiting on the notification itself: it leaves the notification to that thread (`accessDenied`)
/// rather than take the waiter's place, which would leave the other waiting unknown to it (a wait
/// for ever in its frame counts on being the waiter). The other gets the next signal's bits. Both
/// threads on CPU 0, where the order is the scheduler's: the signal readies the timed waiter, this
/// thread takes the bits and waits again before it runs. (With this thread on another CPU, a host
/// running many virtual CPUs on one core could hold it between its two waits, and the other
/// would begin its wait first.) The waiter runs at the background level, below this thread: a
/// tick that ends this thread's slice between its signal and its wait then cannot let the waiter
/// in first (a slice is spent across waits, so this thread may start the window with one tick of
/// it left).
func testDisplacedNotificationWaiter(_ suite: inout Suite) {
    guard let bell = try? IPC.createNotification(), let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "a notification and memory for the displaced-waiter test")
        return
    }
    let previous = (try? System.setAffinity(1))?.previous
    defer { if let previous { _ = try? System.setAffinity(previous) } }
    let shared = block.bindMemory(to: UInt64.self, capacity: 4)
    shared[0] = bell.value
    shared[1] = .max
    shared[2] = 0
    shared[3] = 0
    let body: System.ThreadBody = { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        _ = try? System.setAffinity(1)
        shared[3] = 1
        // From here it runs only while the main thread is blocked.
        _ = try? System.setPriority(0)
        let status = catching { () throws(KernelError) in _ = try IPC.wait(Handle(shared[0]), timeout: 2_000_000_000) }
        shared[1] = status?.rawValue ?? 0
        // The main thread waits on the bell now: this wakes it.
        try? IPC.signal(Handle(shared[0]), bits: 0x40)
        shared[2] = 1
    }
    let started = (try? System.createThread(stackBytes: 16 * 1024, argument: UInt64(UInt(bitPattern: shared)), body)) != nil
    let announced = System.clock
    while started && shared[3] == 0 && System.clock.milliseconds(since: announced) < 1000 { System.yield() }
    System.sleep(nanoseconds: 2_000_000) // it waits, with a timeout
    try? IPC.signal(bell, bits: 1)
    let first = try? IPC.wait(bell, timeout: .max) // there: taken at once
    let second = try? IPC.wait(bell, timeout: 2_000_000_000)
    let start = System.clock
    // Sleeping, not yielding: the waiter, below this thread, runs only while it is blocked.
    while shared[2] == 0 && System.clock.milliseconds(since: start) < 1000 { System.sleep(nanoseconds: 1_000_000) }
    suite.check(started && first == 1 && second == 0x40 && shared[1] == KernelError.accessDenied.rawValue,
                "a timed waiter woken after another thread took the bits and began waiting leaves it the notification (access denied) and its next signal's bits reach it")
    try? IPC.close(bell)
    try? System.unmap(block, bytes: 4096)
}

/// The console UART's transmit interrupt, to make the UART's line fire at will: the PL011 raises it
/// once output has left the transmit FIFO and keeps it raised until it is cleared (Arm DDI 0183),
/// and the console is written all the time, so unmasking it in UARTIMSC raises the line.
struct UARTTransmitInterrupt {
    static let maskRegister: UInt64 = 0x038
    static let transmit: UInt32 = 1 << 5
    let base: UInt64

    init(registers: UnsafeMutableRawPointer) { base = UInt64(UInt(bitPattern: registers)) }

    func raise() { user_write32(base + Self.maskRegister, user_read32(base + Self.maskRegister) | Self.transmit) }
    func lower() { user_write32(base + Self.maskRegister, user_read32(base + Self.maskRegister) & ~Self.transmit) }
}

/// What the handler thread of `testInterruptPreemptsForHandler` shares with the test.
enum PreemptingHandler {
    nonisolated(unsafe) static var bell = Handle(0)
    nonisolated(unsafe) static var woken = 0
    nonisolated(unsafe) static var ended = false
    static let stopBit: UInt64 = 1 << 1
}

/// Waits on the bell; counts each interrupt signal until told to stop.
let preemptingHandlerBody: System.ThreadBody = { _ in
    while true {
        let bits = (try? IPC.wait(PreemptingHandler.bell, timeout: .max)) ?? PreemptingHandler.stopBit
        if bits & 1 != 0 { PreemptingHandler.woken += 1 }
        if bits & PreemptingHandler.stopBit != 0 {
            PreemptingHandler.ended = true
            System.exitThread()
        }
    }
}

/// A device interrupt for a handler thread above the running thread's priority preempts it: on
/// one CPU the handler has run (and counted it) after a short spin that makes no system call, so
/// the kernel switched to it on the way out of the interrupt, not at a later tick or yield. With
/// more CPUs it may run on another, so there it only has to run soon. The console UART's
/// transmit interrupt, as in `testDeviceAccess`; the handler's stack is mapped here, so that it
/// can be given back once the thread has ended, and nothing is left behind.
func testInterruptPreemption(_ suite: inout Suite) {
    let before = KernelFootprint.steady()
    let stackBytes: UInt64 = 16 * 1024
    guard let access = System.startHandle, let uart = try? System.openDevice(0, through: access),
          let registers = try? IPC.map(uart.registers, writable: true), let bell = try? IPC.createNotification(),
          (try? System.bindInterrupt(uart.interrupt, to: bell)) != nil,
          let stack = try? System.map(bytes: stackBytes, access: .write),
          let (level, _) = try? System.setPriority(nil) else {
        suite.check(false, "the console UART, a notification bound to its interrupt and a handler stack for the preemption test")
        return
    }
    let transmit = UARTTransmitInterrupt(registers: registers)
    PreemptingHandler.bell = bell
    PreemptingHandler.woken = 0
    PreemptingHandler.ended = false
    let started = (try? createThread(onStack: stack, bytes: stackBytes, preemptingHandlerBody)) != nil
    // The handler reaches its wait; then this thread runs below it.
    System.sleep(nanoseconds: 2_000_000)
    let lowered = started && (try? System.setPriority(0)) != nil
    transmit.raise()
    var spin: UInt64 = 0
    for step in 0..<2000 { spin = spin &* 31 &+ UInt64(step) }
    let wokenAtOnce = PreemptingHandler.woken
    var waits = 0
    while started && PreemptingHandler.woken == 0 && waits < 500 {
        System.sleep(nanoseconds: 1_000_000)
        waits += 1
    }
    let woken = PreemptingHandler.woken
    transmit.lower()
    let acknowledged = (try? System.acknowledgeInterrupt(uart.interrupt)) != nil
    _ = try? System.setPriority(level)
    try? IPC.signal(bell, bits: PreemptingHandler.stopBit)
    for _ in 0..<500 where started && !PreemptingHandler.ended { System.sleep(nanoseconds: 1_000_000) }
    // Ended: its stack can go.
    if PreemptingHandler.ended { try? System.unmap(stack, bytes: stackBytes) }
    try? IPC.close(uart.interrupt)
    try? IPC.close(bell)
    try? System.unmap(registers, bytes: 4096)
    try? IPC.close(uart.registers)
    let oneCPU = System.onlineCPUs == 1
    // The handler's kernel stack comes back when its CPU next switches: settled, not read once.
    let after = KernelFootprint.settled(toward: before)
    suite.check(lowered && woken == 1 && (!oneCPU || wokenAtOnce == 1) && acknowledged && PreemptingHandler.ended
                    && spin != 1 && after == before,
                "an interrupt for a handler thread above the running one: the handler runs \(oneCPU ? "before a 2000-step spin of the interrupted thread is over" : "soon"), once, and ends; frames \(before.frames) -> \(after.frames), objects \(before.objects) -> \(after.objects)")
}

/// Device access by capability. Without the device-access capability nothing opens, and without an
/// interrupt handle nothing binds; through the capability init passed, the console UART opens, its
/// interrupt signals once, stays masked until acknowledged, and is unbound when the last handle to
/// the bound line goes, here or with a driver process that ends. Nothing is left behind.
func testDeviceAccess(_ suite: inout Suite) {
    let holdingsBefore = KernelHoldings.steady
    guard let access = System.startHandle, let port = try? IPC.createPort(), let bell = try? IPC.createNotification(),
          let withoutOpen = try? IPC.duplicate(access, rights: [.duplicate, .transfer]),
          let waitOnly = try? IPC.duplicate(bell, rights: [.wait]) else {
        suite.check(false, "started with a device-access capability; port and notifications for the device tests")
        return
    }
    let forged = Handle(0x1234_0005)

    // Without the capability: a forged handle, a port in its place, a copy without the open right.
    let openForged = catching { () throws(KernelError) in _ = try System.openDevice(0, through: forged) }
    let openPort = catching { () throws(KernelError) in _ = try System.openDevice(0, through: port) }
    let openWithoutRight = catching { () throws(KernelError) in _ = try System.openDevice(0, through: withoutOpen) }
    let openMissing = catching { () throws(KernelError) in _ = try System.openDevice(1000, through: access) }
    suite.check(openForged == .invalidHandle && openPort == .invalidHandle && openWithoutRight == .accessDenied
                && openMissing == .notFound,
                "deviceOpen needs the device-access capability: forged handle and port invalid, a copy without the open right denied; no device 1000")

    // What the capability names: the UART first, then the virtio-mmio transports, each once.
    let uartInfo = try? System.deviceInfo(0, through: access)
    var transports = 0
    var transportsInOrder = true
    var previous: UInt64 = 0
    var index: UInt64 = 1
    while let info = try? System.deviceInfo(index, through: access) {
        transportsInOrder = transportsInOrder && info.kind == .virtioMMIO && info.registerAddress > previous
        previous = info.registerAddress
        transports += 1
        index += 1
    }
    let infoForged = catching { () throws(KernelError) in _ = try System.deviceInfo(0, through: forged) }
    let infoWithoutRight = catching { () throws(KernelError) in _ = try System.deviceInfo(0, through: withoutOpen) }
    let infoMissing = catching { () throws(KernelError) in _ = try System.deviceInfo(index, through: access) }
    suite.check(uartInfo?.kind == .uart && uartInfo?.registerAddress == 0x900_0000 && transports == 32 && transportsInOrder
                && infoForged == .invalidHandle && infoWithoutRight == .accessDenied && infoMissing == .notFound,
                "deviceInfo: device 0 is the PL011 at 0x9000000, then \(transports) virtio-mmio transports in address order; forged handle invalid, no open right denied, device \(index) not found")

    // Memory for a device: contiguous, mapped, charged and given back; only through the capability.
    let dmaFramesBefore = KernelHoldings.steady.freeFrames
    let dma = try? System.createDMA(3 * 4096 + 1, forDevice: 1, through: access)
    var dmaMapped = false
    if let dma, let mapped = try? IPC.mapWithSize(dma.memory, writable: true) {
        let words = mapped.address.assumingMemoryBound(to: UInt64.self)
        var zeroed = true
        for word in 0..<(mapped.bytes / 8) where words[word] != 0 { zeroed = false }
        for word in 0..<(mapped.bytes / 8) { words[word] = UInt64(word) &* 0x9E37_79B9 }
        var kept = true
        for word in 0..<(mapped.bytes / 8) where words[word] != UInt64(word) &* 0x9E37_79B9 { kept = false }
        dmaMapped = mapped.bytes == 4 * 4096 && zeroed && kept
        try? System.unmap(mapped.address, bytes: UInt64(mapped.bytes))
    }
    let dmaFramesHeld = System.memory.freeFrames
    if let dma { try? IPC.close(dma.memory) }
    let dmaFramesAfter = System.memory.freeFrames
    let dmaWithoutRight = catching { () throws(KernelError) in _ = try System.createDMA(4096, forDevice: 1, through: withoutOpen) }
    let dmaForged = catching { () throws(KernelError) in _ = try System.createDMA(4096, forDevice: 1, through: forged) }
    let dmaEmpty = catching { () throws(KernelError) in _ = try System.createDMA(0, forDevice: 1, through: access) }
    let dmaHuge = catching { () throws(KernelError) in _ = try System.createDMA(2 << 20, forDevice: 1, through: access) }
    let dmaMissing = catching { () throws(KernelError) in _ = try System.createDMA(4096, forDevice: 1000, through: access) }
    suite.check(dmaMapped && (dma?.deviceAddress ?? 1) % 4096 == 0 && dmaFramesBefore &- dmaFramesHeld >= 4 && dmaFramesBefore &- dmaFramesHeld < 1 << 32
                && dmaFramesAfter + 64 > dmaFramesBefore && dmaWithoutRight == .accessDenied && dmaForged == .invalidHandle
                && dmaEmpty == .invalidArgument && dmaHuge == .invalidArgument && dmaMissing == .notFound,
                "dmaCreate: 4 zeroed pages at device address \(dma?.deviceAddress ?? 0), mapped (the mapping says its size) and written; freed on close (free frames \(dmaFramesBefore), \(dmaFramesHeld) held, \(dmaFramesAfter) after); without the open right denied, forged invalid, 0 bytes and 2 MiB invalid, device 1000 not found")

    // Without an interrupt handle: nothing else binds or acknowledges in its place.
    let bindForged = catching { () throws(KernelError) in _ = try System.bindInterrupt(forged, to: bell) }
    let bindPort = catching { () throws(KernelError) in _ = try System.bindInterrupt(port, to: bell) }
    let bindAccess = catching { () throws(KernelError) in _ = try System.bindInterrupt(access, to: bell) }
    let acknowledgeForged = catching { () throws(KernelError) in try System.acknowledgeInterrupt(forged) }
    let acknowledgeNotification = catching { () throws(KernelError) in try System.acknowledgeInterrupt(bell) }
    suite.check(bindForged == .invalidHandle && bindPort == .invalidHandle && bindAccess == .invalidHandle
                && acknowledgeForged == .invalidHandle && acknowledgeNotification == .invalidHandle,
                "interruptBind and interruptAcknowledge need an interrupt handle: forged, port, device-access and notification handles invalid")

    // Through the capability: the UART's registers and interrupt, delivered one signal at a time.
    guard let uart = try? System.openDevice(0, through: access), let registers = try? IPC.map(uart.registers, writable: true),
          let other = try? System.openDevice(0, through: access) else {
        suite.check(false, "the console UART opens through the capability init passed, and its registers map")
        return
    }
    let transmit = UARTTransmitInterrupt(registers: registers)
    let identifier = try? System.bindInterrupt(uart.interrupt, to: bell)
    let quiet = catching { () throws(KernelError) in _ = try IPC.wait(bell, timeout: 0) }
    transmit.raise()
    let first = try? IPC.wait(bell, timeout: 1_000_000_000)
    System.sleep(nanoseconds: 2_000_000)
    let masked = catching { () throws(KernelError) in _ = try IPC.wait(bell, timeout: 0) }
    let acknowledged = (try? System.acknowledgeInterrupt(uart.interrupt)) != nil
    let second = try? IPC.wait(bell, timeout: 1_000_000_000)
    transmit.lower()
    let acknowledgedLowered = (try? System.acknowledgeInterrupt(uart.interrupt)) != nil
    suite.check(identifier != nil && quiet == .wouldBlock && first == 1 && masked == .wouldBlock && acknowledged
                && second == 1 && acknowledgedLowered,
                "the console UART opens through the capability init passed; its interrupt \(identifier ?? 0) signals once when raised, stays masked until acknowledged, then signals again")

    // Rights and exclusive binding.
    let withoutBind = try? IPC.duplicate(uart.interrupt, rights: [.transfer])
    let bindWithoutRight = withoutBind.flatMap { handle in
        catching { () throws(KernelError) in _ = try System.bindInterrupt(handle, to: bell) }
    }
    let acknowledgeWithoutRight = withoutBind.flatMap { handle in
        catching { () throws(KernelError) in try System.acknowledgeInterrupt(handle) }
    }
    let bindToWaitOnly = catching { () throws(KernelError) in _ = try System.bindInterrupt(other.interrupt, to: waitOnly) }
    let bindBusy = catching { () throws(KernelError) in _ = try System.bindInterrupt(other.interrupt, to: bell) }
    let acknowledgeUnbound = catching { () throws(KernelError) in try System.acknowledgeInterrupt(other.interrupt) }
    if let withoutBind { try? IPC.close(withoutBind) }
    let stillBound = (try? System.acknowledgeInterrupt(uart.interrupt)) != nil
    suite.check(bindWithoutRight == .accessDenied && acknowledgeWithoutRight == .accessDenied
                && bindToWaitOnly == .accessDenied && bindBusy == .accessDenied && acknowledgeUnbound == .notFound && stillBound,
                "without the bind right an interrupt handle neither binds nor acknowledges, nor binds to a notification without signal; a second open of the line cannot bind or acknowledge it while bound; closing a copy keeps the binding")

    // Closing the last handle to the bound line unbinds it: raised, it signals no one.
    try? IPC.close(uart.interrupt)
    transmit.raise()
    System.sleep(nanoseconds: 2_000_000)
    let silent = catching { () throws(KernelError) in _ = try IPC.wait(bell, timeout: 0) }
    transmit.lower()
    let rebound = try? System.bindInterrupt(other.interrupt, to: bell)
    try? IPC.close(other.interrupt)
    try? IPC.close(other.registers)
    suite.check(silent == .wouldBlock && rebound != nil && rebound == identifier,
                "closing the last handle to the bound interrupt unbinds it: raised, it signals no one, and another handle binds it")

    // A driver process holding only a narrower interrupt handle; the line is raised before it
    // starts, so it fires as soon as the driver binds it.
    var driverStatus: (reason: ExitReason, code: UInt64)?
    var reboundAfterDriver = false
    var signalledHere: UInt64?
    if let third = try? System.openDevice(0, through: access),
       let narrow = try? IPC.duplicate(third.interrupt, rights: [.bind, .transfer]) {
        try? IPC.close(third.interrupt)
        try? IPC.close(third.registers)
        transmit.raise()
        if let driver = try? System.spawn("tests", argument: 1, handle: narrow) { driverStatus = try? System.wait(driver) }
        // Still raised: a binding left behind by the driver would make this one busy.
        if let fourth = try? System.openDevice(0, through: access) {
            reboundAfterDriver = (try? System.bindInterrupt(fourth.interrupt, to: bell)) != nil
            signalledHere = try? IPC.wait(bell, timeout: 1_000_000_000)
            try? IPC.close(fourth.interrupt)
            try? IPC.close(fourth.registers)
        }
        transmit.lower()
    }
    suite.check(driverStatus?.reason == .exited && driverStatus?.code == 0 && reboundAfterDriver && signalledHere == 1,
                "a driver process given only a bind+transfer interrupt handle opens nothing, binds it, is signalled, acknowledges, is signalled again; when it ends its binding goes and the line binds and signals here")

    try? System.unmap(registers, bytes: 4096)
    try? IPC.close(uart.registers)
    try? IPC.close(bell)
    try? IPC.close(waitOnly)
    try? IPC.close(withoutOpen)
    try? IPC.close(port)
    let holdingsAfter = KernelHoldings.settled(toNoMoreThan: holdingsBefore)
    suite.check(holdingsAfter.heapBlocks == holdingsBefore.heapBlocks && holdingsAfter.framesAvailable == holdingsBefore.framesAvailable,
                "device access leaves nothing behind: kernel heap blocks \(holdingsBefore.heapBlocks) before, \(holdingsAfter.heapBlocks) after (objects \(holdingsBefore.objects), \(holdingsAfter.objects)); free frames \(holdingsBefore.freeFrames) + heap pages \(holdingsBefore.heapPages) before, \(holdingsAfter.freeFrames) + \(holdingsAfter.heapPages) after")
}

/// The driver process of the device access test, started with an interrupt handle that has only
/// the bind and transfer rights, and nothing else: it can neither open devices nor copy the handle,
/// binds the interrupt to a notification of its own, expects the line (raised by the test) to
/// signal it, and to signal again once acknowledged. It ends holding the binding, for the kernel
/// to remove. Exit code 0 when all went so, else the step that failed.
func driveInterrupt() -> UInt64 {
    guard let interrupt = System.startHandle, let bell = try? IPC.createNotification() else { return 1 }
    let openThroughInterrupt = catching { () throws(KernelError) in _ = try System.openDevice(0, through: interrupt) }
    let openThroughBell = catching { () throws(KernelError) in _ = try System.openDevice(0, through: bell) }
    let copy = catching { () throws(KernelError) in _ = try IPC.duplicate(interrupt, rights: [.bind]) }
    guard openThroughInterrupt == .invalidHandle, openThroughBell == .invalidHandle, copy == .accessDenied else { return 2 }
    guard (try? System.bindInterrupt(interrupt, to: bell)) != nil else { return 3 }
    guard (try? IPC.wait(bell, timeout: 1_000_000_000)) == 1 else { return 4 }
    guard (try? System.acknowledgeInterrupt(interrupt)) != nil else { return 5 }
    guard (try? IPC.wait(bell, timeout: 1_000_000_000)) == 1 else { return 6 }
    return 0
}

/// Ends a test's echo server on `port` (label 0), or kills it if the request could not be made,
/// and collects it: whether it ended on request. An echo left running would take the next
/// test's requests on the same port (under fault injection, a failed check skips its requests).
func stopEcho(_ echo: ChildProcess, on port: Handle) -> Bool {
    var stop = IPCMessage(label: 0)
    let asked = (try? IPC.call(port, &stop)) != nil
    if !asked { try? System.kill(echo) }
    return (try? System.wait(echo))?.code == 0 && asked
}

/// Starts `body(0)` on a new thread whose stack is the `bytes` at `stack`, mapped by the caller,
/// which can then give it back once the thread has ended (`System.createThread` keeps its own).
@discardableResult
func createThread(onStack stack: UnsafeMutableRawPointer, bytes: UInt64, _ body: System.ThreadBody) throws(KernelError) -> UInt64 {
    try System.invoke(SystemCall.ThreadCreate(
        entry: UserAddress(user_thread_start_address()), stackTop: UserAddress(stack).advanced(by: bytes),
        argument0: 0, argument1: UInt64(UInt(bitPattern: unsafeBitCast(body, to: UnsafeRawPointer.self))))).thread
}
