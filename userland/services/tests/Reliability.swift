// Reliability: what a hostile or careless program can do to the kernel, and what it gets back.
// Memory exhausted machine-wide or within a limit is `outOfMemory` for the caller with nothing
// changed; ports that hold each other's handles are freed once their receivers close; a call to
// a server with no room for it fails instead of waiting; `unmap` and `threadCreate` keep to
// their contracts. Every case ends by checking that the kernel holds what it held before.

import UserSystemCall

/// What the kernel holds: compared before and after a case to find leaks.
struct KernelHoldings: Equatable {
    var objects: UInt64
    var chargedBytes: UInt64
    var freeFrames: UInt64
    var heapBlocks: UInt64
    /// The pages the kernel heap keeps: a case may leave it one warm slab page more (which
    /// page runs it needs depends on what ran before), and that is no leak.
    var heapPages: UInt64 = 0
    /// What this process's own account holds (pages, tables, objects): not compared, but a
    /// failed check shows it, to tell a leak from this process's own heap growing meanwhile.
    var ownBytes: UInt64 = 0

    /// Whether the kernel holds nothing more than `earlier` did: under fault injection, what an
    /// earlier failed case left behind may be freed meanwhile, which is no leak of the case's.
    func holdsNoMoreThan(_ earlier: KernelHoldings) -> Bool {
        objects <= earlier.objects && chargedBytes <= earlier.chargedBytes
            && freeFrames + heapPages >= earlier.freeFrames + earlier.heapPages && heapBlocks <= earlier.heapBlocks
    }

    /// The same holdings, counting the pages the kernel heap keeps as free: it gives an empty
    /// slab page back (or takes a warm one) when a block of an earlier case is freed meanwhile,
    /// on another CPU, which moves a frame between the two counts and leaks nothing.
    static func == (left: KernelHoldings, right: KernelHoldings) -> Bool {
        left.objects == right.objects && left.chargedBytes == right.chargedBytes
            && left.freeFrames + left.heapPages == right.freeFrames + right.heapPages && left.heapBlocks == right.heapBlocks
    }

    /// Prints every count next to `earlier`'s, for a failed check: which of them moved.
    func printChange(from earlier: KernelHoldings, in label: StaticString) {
        System.print("tests: \(label): objects \(earlier.objects) → \(objects), charged \(earlier.chargedBytes) → \(chargedBytes) bytes, this process \(earlier.ownBytes) → \(ownBytes) bytes")
        System.print("tests: \(label): free frames \(earlier.freeFrames) → \(freeFrames), heap pages \(earlier.heapPages) → \(heapPages), heap blocks \(earlier.heapBlocks) → \(heapBlocks)")
    }

    /// Free frames plus the kernel heap's pages (see `==`).
    var framesAvailable: UInt64 { freeFrames + heapPages }

    /// The holdings once nothing is being given back any more: threads that ended on another
    /// CPU are released by that CPU at its next switch, so for a moment after a test's processes
    /// have ended, their frames and objects may still be on the way back. The most frequent of
    /// nine readings 10 ms apart (the latest of them on a tie): two equal readings close together
    /// can both fall before a CPU the host seldom runs gives back what it holds.
    static var steady: KernelHoldings { MachineReading.steady(latestOnTie: true, same: ==) { now } }

    /// The holdings once they hold no more than `earlier`, or after about half a second: what a
    /// test's check reads after its processes ended (see `steady`).
    static func settled(toNoMoreThan earlier: KernelHoldings) -> KernelHoldings {
        MachineReading.settled(looks: 251, interval: 2_000_000, until: { $0.holdsNoMoreThan(earlier) }) { now }
    }

    static var now: KernelHoldings {
        let objects = System.kernelObjects
        let heap = System.kernelHeap
        return KernelHoldings(objects: objects.objects, chargedBytes: objects.chargedBytes,
                              freeFrames: System.memory.freeFrames, heapBlocks: heap.blocks, heapPages: heap.pages,
                              ownBytes: System.memoryAccount.used)
    }
}

/// Free frames plus the pages the kernel heap keeps: whether a process gave back all its memory,
/// without counting the heap's warm slabs (whose number depends on what ran before) against it.
func framesAvailable() -> UInt64 { System.memory.freeFrames + System.kernelHeap.pages }

func testReliability(_ suite: inout Suite) {
    testPortCycles(&suite)
    onOneCPU { testCallToFullServer(&suite) }
    testMappingContracts(&suite)
    testLargeUnmap(&suite)
    testLongCallsServeInterrupts(&suite)
    testMemoryLimits(&suite)
    onOneCPU { testMemoryExhaustion(&suite) }
}

/// A receive right never travels in a message, so no port can keep itself alive: a port whose
/// queue holds its own send handle, or two ports holding each other's, are freed when their
/// receive handles close, also when a process leaves one behind.
func testPortCycles(_ suite: inout Suite) {
    // Warm up the slabs these objects use, so that the figures compare like with like.
    if let port = try? IPC.createPort() { try? IPC.close(port) }
    let before = KernelHoldings.steady
    var selfCycle = false
    var receiveRefused: KernelError?
    if let port = try? IPC.createPort(), let sender = try? IPC.duplicate(port, rights: [.send, .transfer]) {
        var carrier = IPCMessage(label: 1)
        carrier.attach(port)
        receiveRefused = catching { () throws(KernelError) in try IPC.send(port, &carrier) }
        var own = IPCMessage(label: 2)
        own.attach(sender)
        selfCycle = (try? IPC.send(port, &own)) != nil
        try? IPC.close(port)
    }
    var mutualCycle = false
    if let first = try? IPC.createPort(), let second = try? IPC.createPort(),
       let toFirst = try? IPC.duplicate(first, rights: [.send, .transfer]),
       let toSecond = try? IPC.duplicate(second, rights: [.send, .transfer]) {
        var a = IPCMessage(label: 3)
        a.attach(toSecond)
        var b = IPCMessage(label: 4)
        b.attach(toFirst)
        mutualCycle = (try? IPC.send(first, &a)) != nil && (try? IPC.send(second, &b)) != nil
        try? IPC.close(first)
        try? IPC.close(second)
    }
    let child = run("crasher", 9)
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(receiveRefused == .accessDenied && selfCycle && mutualCycle && child?.code == 9 && after == before,
                "receive handles stay out of messages; ports queuing their own or each other's send handles, or left so by a child, are freed (objects \(before.objects) → \(after.objects), heap blocks \(before.heapBlocks) → \(after.heapBlocks), frames \(before.framesAvailable) → \(after.framesAvailable))")
}

/// The server's handle table is full, so it cannot take a call (whose reply capability needs a
/// slot): the call fails with handleTableFull instead of waiting for ever, whether the server
/// was already waiting or receives later, and the server's receive says why.
func testCallToFullServer(_ suite: inout Suite) {
    guard let port = try? IPC.createPort(), let block = try? System.map(bytes: 4096, access: .write) else {
        suite.check(false, "port and memory for the full-table case")
        return
    }
    let shared = block.bindMemory(to: UInt64.self, capacity: 8)
    // [0] the port, [1] 1 once the call returned, [2] its status.
    shared[0] = port.value
    var fillers: [Handle] = []
    while let filler = try? IPC.duplicate(port, rights: [.send]) { fillers.append(filler) }
    // Nobody receives yet: the call waits in the queue, and this thread's receive then has no room.
    let caller = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        var request = IPCMessage(label: 77)
        let status = catching { () throws(KernelError) in try IPC.call(Handle(shared[0]), &request) }
        shared[2] = status?.rawValue ?? 0
        shared[1] = 1
    }
    for _ in 0..<3 { System.yield() }
    var incoming = IPCMessage()
    let serverError = catching { () throws(KernelError) in try IPC.receive(port, into: &incoming, timeout: 0) }
    let start = System.clock
    while shared[1] == 0 && System.clock.milliseconds(since: start) < 1000 { System.yield() }
    let queuedCall = caller != nil && serverError == .handleTableFull && shared[1] == 1
        && shared[2] == KernelError.handleTableFull.rawValue
    for filler in fillers { try? IPC.close(filler) }
    let slots = fillers.count
    fillers.removeAll(keepingCapacity: true)

    // Now the server waits first, and the table fills while it waits: the call finds it waiting
    // and cannot hand it the message. [3] 1 once the receive returned, [4] its status.
    shared[3] = 0
    let server = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
        let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
        var incoming = IPCMessage()
        let status = catching { () throws(KernelError) in try IPC.receive(Handle(shared[0]), into: &incoming, timeout: 2_000_000_000) }
        shared[4] = status?.rawValue ?? 0
        shared[3] = 1
    }
    for _ in 0..<3 { System.yield() }
    while let filler = try? IPC.duplicate(port, rights: [.send]) { fillers.append(filler) }
    var request = IPCMessage(label: 78)
    let callError = server == nil ? nil : catching { () throws(KernelError) in try IPC.call(port, &request) }
    for filler in fillers { try? IPC.close(filler) }
    let waited = System.clock
    while shared[3] == 0 && System.clock.milliseconds(since: waited) < 3000 { System.yield() }
    let waitingServer = callError == .handleTableFull && shared[3] == 1 && shared[4] == KernelError.handleTableFull.rawValue
    try? IPC.close(port)
    try? System.unmap(block, bytes: 4096)
    suite.check(queuedCall && waitingServer && slots > 0,
                "a call to a server whose handle table is full (\(slots) handles added) fails with handle table full, queued or handed to the waiting server, whose receive says the same")
}

/// `unmap` takes exactly what `map` or `memoryMap` returned, never the program's own segments or
/// stack; `threadCreate` wants an aligned entry and a stack mapped writable.
func testMappingContracts(_ suite: inout Suite) {
    let unmap = SystemCallNumber.unmap.rawValue
    let stackBase = UserSpace.stackTop - UserSpace.stackSize
    let programStack = raw(unmap, stackBase, UserSpace.stackSize).status
    let programText = raw(unmap, 0x40_0000, 4096).status
    var partial: UInt64 = 0
    var whole: UInt64 = 1
    var twice: UInt64 = 0
    if let block = try? System.map(bytes: 8192, access: .write) {
        let address = UInt64(UInt(bitPattern: block))
        partial = raw(unmap, address, 4096).status
        whole = raw(unmap, address, 8192).status
        twice = raw(unmap, address, 8192).status
    }
    let invalid = KernelError.invalidArgument.rawValue
    suite.check(programStack == invalid && programText == invalid && partial == invalid && whole == 0 && twice == invalid,
                "unmap refuses the program's stack and text, part of a mapping and a mapping already gone; takes a whole one")

    let threadCreate = SystemCallNumber.threadCreate.rawValue
    var starts: [UInt64] = []
    if let stack = try? System.map(bytes: 16384, access: .write), let readOnly = try? System.map(bytes: 4096, access: []) {
        let top = UInt64(UInt(bitPattern: stack)) + 16384
        starts.append(raw(threadCreate, 0x40_0002, top).status)                            // misaligned entry
        starts.append(raw(threadCreate, 0x40_0000, 0x7000_0000_0000).status)               // unmapped stack
        starts.append(raw(threadCreate, 0x40_0000, UInt64(UInt(bitPattern: readOnly)) + 4096).status) // read-only stack
        starts.append(raw(threadCreate, 0x40_0000, 0x40_1000).status)                      // stack in the program text
        try? System.unmap(stack, bytes: 16384)
        try? System.unmap(readOnly, bytes: 4096)
    }
    suite.check(starts.count == 4 && starts.allSatisfy { $0 == invalid },
                "threadCreate refuses a misaligned entry and a stack that is unmapped, read-only or in the program text")
}

/// `unmap` of a large region between two small ones: the region's pages are gone (the kernel
/// refuses them as buffers), its neighbours keep theirs, and every frame and table comes back.
/// The kernel visits only the tables that exist and invalidates the ASID once per batch of pages,
/// not once per page, so it is quick; the time is reported, not judged.
func testLargeUnmap(_ suite: inout Suite) {
    if let warm = try? System.map(bytes: 4096, access: .write) { try? System.unmap(warm, bytes: 4096) }
    let before = KernelHoldings.steady
    let bytes: UInt64 = 16 << 20
    let debugWrite = SystemCallNumber.debugWrite.rawValue
    var neighboursKept = false
    var pagesGone = false
    var returned = false
    var microseconds: UInt64 = 0
    if let low = try? System.map(bytes: 4096, access: .write),
       let large = try? System.map(bytes: bytes, access: .write),
       let high = try? System.map(bytes: 4096, access: .write) {
        let largeAddress = UInt64(UInt(bitPattern: large))
        low.storeBytes(of: 0x10, as: UInt64.self)
        high.storeBytes(of: 0x20, as: UInt64.self)
        var page: UInt64 = 0
        while page < bytes {
            (large + Int(page)).storeBytes(of: page, as: UInt64.self)
            page += 4096
        }
        let start = System.clock
        let unmapped = (try? System.unmap(large, bytes: bytes)) != nil
        microseconds = System.clock.microseconds(since: start)
        pagesGone = unmapped && raw(debugWrite, largeAddress, 8).status == KernelError.badAddress.rawValue
            && raw(debugWrite, largeAddress + bytes / 2, 8).status == KernelError.badAddress.rawValue
            && raw(debugWrite, largeAddress + bytes - 8, 8).status == KernelError.badAddress.rawValue
        neighboursKept = low.load(as: UInt64.self) == 0x10 && high.load(as: UInt64.self) == 0x20
        try? System.unmap(low, bytes: 4096)
        try? System.unmap(high, bytes: 4096)
        returned = KernelHoldings.settled(toNoMoreThan: before) == before
    }
    suite.check(pagesGone && neighboursKept && returned,
                "unmap of 16 MiB between two pages: its pages gone, the neighbours intact, every frame back (\(microseconds) µs)")
}

/// A long system call serves the interrupts that come meanwhile: while `map` zeroes 256 MiB, each
/// of this CPU's timer ticks is taken as an interrupt of its own, rather than all of them
/// counted late in one when the call ends (the kernel takes pending interrupts every 256 pages).
/// A tick taken late counts every period that passed, and a host that does not run this CPU for a
/// while makes several periods one interrupt: so at least a quarter of the ticks, not each.
func testLongCallsServeInterrupts(_ suite: inout Suite) {
    var outcome: (ticks: UInt64, interrupts: UInt64, mebibytes: UInt64)?
    onOneCPU {
        var bytes: UInt64 = 256 << 20
        while bytes >= 16 << 20 && outcome == nil {
            guard let before = try? System.cpuStatistics(0) else { return }
            if let block = try? System.map(bytes: bytes, access: .write) {
                let after = (try? System.cpuStatistics(0)) ?? before
                try? System.unmap(block, bytes: bytes)
                outcome = (after.ticks &- before.ticks, after.interrupts &- before.interrupts, bytes >> 20)
            }
            bytes /= 2
        }
    }
    guard let outcome else {
        suite.check(false, "a map of 16 to 256 MiB, to time a long system call")
        return
    }
    suite.check(outcome.ticks >= 3 && outcome.interrupts >= 3 && outcome.interrupts * 4 >= outcome.ticks,
                "a \(outcome.mebibytes) MiB map (each page zeroed) lasted \(outcome.ticks) ticks; this CPU took \(outcome.interrupts) interrupts meanwhile, not one when it ended")
}

/// A limit given at spawn caps what the kernel holds for the child: too small a limit refuses the
/// spawn, and a child under a limit gets outOfMemory when it reaches it; either way everything
/// comes back.
func testMemoryLimits(_ suite: inout Suite) {
    _ = run("crasher", 0) // warm-up
    let before = KernelHoldings.steady
    let own = System.memoryAccount
    let tooSmall = catching { () throws(KernelError) in _ = try System.spawn("hello", memoryLimit: 32 * 1024) }
    var mapped: UInt64 = 0
    if let child = try? System.spawn("crasher", argument: 8, memoryLimit: 1 << 20),
       let status = try? System.wait(child), status.reason == .exited {
        mapped = status.code
    }
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(own.used > 0 && own.limit == UInt64.max && tooSmall == .outOfMemory && mapped > 0 && mapped < 1024
                && after == before,
                "memory limits: 32 KiB refuses spawn; under 1 MiB a child mapped \(mapped) KiB, then out of memory; all returned (charged \(before.chargedBytes) → \(after.chargedBytes) bytes, this process \(own.used))")
}

/// Memory exhausted machine-wide: `map` stops short of the kernel's reserve, and every call that
/// would need kernel memory then fails with outOfMemory, changing nothing; once the memory is
/// given back the same calls succeed and every frame and object is accounted for.
func testMemoryExhaustion(_ suite: inout Suite) {
    let before = KernelHoldings.steady
    // A stack for the threadCreate attempt, mapped while memory is still there.
    let spareStack = try? System.map(bytes: 16384, access: .write)
    var blocks: [(UnsafeMutableRawPointer, UInt64)] = []
    blocks.reserveCapacity(40)
    var size: UInt64 = 1 << 30
    while size >= 4096 {
        if let block = try? System.map(bytes: size, access: .write) {
            blocks.append((block, size))
        } else {
            size /= 2
        }
    }
    // `map` refuses a page whose frame is there when the translation table it needs too is not:
    // a frame above the reserve may be left. Notifications take it (each needs room for one heap
    // page, and the last one needs the page itself), until they are refused too.
    var fillers = InlineArray<64, Handle>(repeating: .none)
    var fillerCount = 0
    while fillerCount < 64, let filler = try? IPC.createNotification() {
        fillers[fillerCount] = filler
        fillerCount += 1
    }
    let exhausted = KernelHoldings.now
    let mapRefused = catching { () throws(KernelError) in _ = try System.map(bytes: 4096, access: .write) }
    let portRefused = catching { () throws(KernelError) in _ = try IPC.createPort() }
    let notificationRefused = catching { () throws(KernelError) in _ = try IPC.createNotification() }
    let memoryRefused = catching { () throws(KernelError) in _ = try IPC.createMemory(bytes: 1 << 20) }
    let spawnRefused = catching { () throws(KernelError) in _ = try System.spawn("hello") }
    let threadRefused = catching { () throws(KernelError) in
        guard let spareStack else { throw .outOfMemory }
        try createThread(onStack: spareStack, bytes: 16384) { _ in }
    }
    let unchanged = KernelHoldings.now == exhausted
    for index in 0..<fillerCount { try? IPC.close(fillers[index]) }
    var mappedKiB: UInt64 = 0
    for (block, bytes) in blocks {
        mappedKiB += bytes / 1024
        try? System.unmap(block, bytes: bytes)
    }
    // (Should the thread have started after all, it has ended by now.)
    for _ in 0..<3 { System.yield() }
    if let spareStack { try? System.unmap(spareStack, bytes: 16384) }
    var recovered = false
    if let port = try? IPC.createPort() {
        recovered = true
        try? IPC.close(port)
    }
    let after = KernelHoldings.settled(toNoMoreThan: before)
    let refusals = [mapRefused, portRefused, notificationRefused, memoryRefused, spawnRefused, threadRefused]
    let refused = refusals.filter { $0 == .outOfMemory }.count
    let passed = refused == refusals.count && unchanged && recovered && after == before
    if !passed {
        let codes = refusals.map { $0?.rawValue ?? 0 }
        System.print("tests: memory exhaustion: \(refused) of 6 refused with out of memory (map, port, notification, memory, spawn, thread: \(codes[0]) \(codes[1]) \(codes[2]) \(codes[3]) \(codes[4]) \(codes[5]))")
        System.print("tests: memory exhaustion: unchanged while out \(unchanged ? 1 : 0), port after \(recovered ? 1 : 0), \(fillerCount) notifications took the last frames")
        after.printChange(from: before, in: "memory exhaustion")
    }
    suite.check(passed,
                "memory exhausted (\(mappedKiB) KiB mapped, \(exhausted.freeFrames) frames left): 6 kinds of call get out of memory, change nothing; all back (frames free \(before.freeFrames) → \(after.freeFrames))")
}
