// Threads on every CPU: a thread goes where its affinity says and each CPU counts what it ran;
// bad affinity and statistics requests are refused; and many threads doing kernel work on all
// CPUs at once (smpstress) get every answer right and leave nothing behind. With one CPU the
// same cases run on it alone.

import UserSystemCall

func testMultiprocessor(_ suite: inout Suite) {
    guard let (original, online) = try? System.setAffinity(0) else {
        suite.check(false, "threadAffinity reads the calling thread's mask")
        return
    }
    let cpus = (0..<64).filter { online & (1 << UInt64($0)) != 0 }

    // Pinned to each CPU in turn, this thread's system calls are counted there.
    var countedThere = true
    for cpu in cpus {
        guard (try? System.setAffinity(1 << UInt64(cpu))) != nil, let before = try? System.cpuStatistics(cpu) else {
            countedThere = false
            continue
        }
        for _ in 0..<500 { _ = System.threadID }
        guard let after = try? System.cpuStatistics(cpu), after.systemCalls &- before.systemCalls >= 500 else {
            countedThere = false
            continue
        }
    }
    let restored = (try? System.setAffinity(original))?.previous == 1 << UInt64(cpus.last ?? 0)
    suite.check(countedThere && restored && original == UInt64.max && cpus.first == 0,
                "pinned to each of the \(cpus.count) CPUs in turn (threadAffinity), this thread's 500 system calls are counted on that CPU (cpuStatistics)")
    // Each CPU has counted its own ticks, switches and interrupts by now. (Whether it found time
    // to idle depends on what ran there; the kill across CPUs below checks idle ticks.)
    let figures = cpus.map { (try? System.cpuStatistics($0)) ?? CPUStatistics() }
    let counted = figures.allSatisfy { $0.ticks > 0 && $0.idleTicks <= $0.ticks && $0.switches > 0 && $0.interrupts > 0 }
    if !counted {
        for (cpu, figure) in zip(cpus, figures) {
            System.print("tests: CPU \(cpu): \(figure.ticks) ticks, \(figure.idleTicks) idle, \(figure.switches) switches, \(figure.interrupts) interrupts")
        }
    }
    suite.check(counted, "each of the \(cpus.count) CPUs counts its own ticks, idle ticks (no more than its ticks), switches and interrupts")

    // Calls from CPU 0 to a server pinned to CPU 1 are served there: the IPC fast path, which
    // hands this CPU straight to the thread it wakes, passes over a thread pinned elsewhere (and
    // the answer comes back to CPU 0, where this thread is pinned).
    if online & 0b11 == 0b11 {
        suite.check(pinnedServerStaysPinned(),
                    "200 calls from CPU 0 to an echo server pinned to CPU 1: each answered, the server's 200 receives counted on CPU 1, this thread's calls on CPU 0; each call woke idle CPU 1 with a reschedule interrupt")
        // A page one CPU unmaps faults at once for a thread of the same process on another.
        var unmappedAcross: (reason: ExitReason, code: UInt64)?
        if let child = try? System.spawn("smpstress", argument: 1) { unmappedAcross = try? System.wait(child) }
        let syndrome = unmappedAcross?.code ?? 0
        suite.check(unmappedAcross?.reason == .faulted && syndrome >> 26 == 0x24 && syndrome & 0x3F == 0x07,
                    "a page unmapped on CPU 0 while a thread of the same process reads it on CPU 1: the reader faults (translation fault, level 3), its process is ended")
        suite.check(killedAcrossCPUs(online & ~1),
                    "a process spinning on CPUs 1 to \(cpus.count - 1) at once, a thread kept to each, is killed from CPU 0: wait says killed, each of those CPUs goes idle again, nothing left behind")
    }

    let noCPU = catching { () throws(KernelError) in _ = try System.setAffinity(~online) }
    let absent = catching { () throws(KernelError) in _ = try System.cpuStatistics(63) }
    let unknownThread = catching { () throws(KernelError) in _ = try System.setAffinity(1, thread: UInt64.max - 1) }
    var word: UInt64 = 0
    let short = withUnsafeMutablePointer(to: &word) { pointer in
        raw(SystemCallNumber.cpuStatistics.rawValue, 0, UInt64(UInt(bitPattern: pointer)), 8).status
    }
    let kernelBuffer = raw(SystemCallNumber.cpuStatistics.rawValue, 0, 0xFFFF_0000_4000_0000, 64).status
    suite.check(noCPU == .invalidArgument && absent == .notFound && unknownThread == .notFound
                && short == KernelError.invalidArgument.rawValue && kernelBuffer == KernelError.badAddress.rawValue,
                "affinity naming no running CPU: invalid argument; statistics of CPU 63 or thread \(UInt64.max - 1): not found; an 8-byte or kernel buffer: refused")

    // Many threads doing IPC and memory work on every CPU while children are spawned and killed.
    // The workers are made on this CPU: with more than one, the others take them (steal). Whether
    // another CPU is idle at that moment is up to the host, which may not run a CPU's thread for a
    // while: so a run in which none was is repeated, up to three runs, before the check says no
    // CPU took a thread. Both arrays are made before the first reading: a heap page this process
    // took in between would count against the kernel.
    let callsBefore = cpus.map { (try? System.cpuStatistics($0))?.systemCalls ?? 0 }
    var callsAfter = [UInt64](repeating: 0, count: cpus.count)
    let stealsBefore = cpus.reduce(0) { $0 + ((try? System.cpuStatistics($1))?.steals ?? 0) }
    let before = KernelHoldings.steady
    var status = run("smpstress")
    var stealsAfter = cpus.reduce(0) { $0 + ((try? System.cpuStatistics($1))?.steals ?? 0) }
    var runs = 1
    while cpus.count > 1 && stealsAfter == stealsBefore && runs < 3 && status?.reason == .exited && status?.code == 0 {
        status = run("smpstress")
        stealsAfter = cpus.reduce(0) { $0 + ((try? System.cpuStatistics($1))?.steals ?? 0) }
        runs += 1
    }
    for (index, cpu) in cpus.enumerated() { callsAfter[index] = (try? System.cpuStatistics(cpu))?.systemCalls ?? 0 }
    let after = KernelHoldings.settled(toNoMoreThan: before)
    let everyCPUWorked = zip(callsBefore, callsAfter).allSatisfy { $1 > $0 }
        && (cpus.count == 1 || stealsAfter > stealsBefore)
    if !after.holdsNoMoreThan(before) { after.printChange(from: before, in: "smpstress") }
    for (cpu, (callsBefore, callsAfter)) in zip(cpus, zip(callsBefore, callsAfter)) where callsAfter <= callsBefore {
        System.print("tests: smpstress: CPU \(cpu) took no system calls (\(callsBefore) before and after)")
    }
    if cpus.count > 1 && stealsAfter == stealsBefore { System.print("tests: smpstress: no CPU took a thread from another") }
    suite.check(status?.reason == .exited && status?.code == 0 && everyCPUWorked && after.holdsNoMoreThan(before),
                "smpstress on \(cpus.count) CPUs: calls answered and counted, memory intact, children killed running; each CPU made system calls, idle ones took threads; nothing left behind (objects \(before.objects) → \(after.objects), free frames \(before.freeFrames) → \(after.freeFrames))")
    if runs > 1 { System.print("tests: smpstress ran \(runs) times before another CPU took a thread") }
}

/// Runs `body` with this thread, and the threads it creates, on CPU 0 alone: for cases whose
/// order rests on "the other thread runs when this one yields", which holds on one CPU only.
func onOneCPU(_ body: () -> Void) {
    let previous = (try? System.setAffinity(1))?.previous
    body()
    if let previous { _ = try? System.setAffinity(previous) }
}

/// Calls from this thread, pinned to CPU 0, to echo pinned to CPU 1 (its start argument 3): each
/// answered, each of the server's `replyReceive` calls made on CPU 1.
func pinnedServerStaysPinned() -> Bool {
    guard let previous = (try? System.setAffinity(1))?.previous else { return false }
    defer { _ = try? System.setAffinity(previous) }
    guard let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
          let server = try? System.spawn("echo", argument: 3, handle: serverSide) else { return false }
    defer { try? IPC.close(port) }
    var message = IPCMessage(label: 10)
    // The first call waits until the server has moved and is receiving.
    guard (try? IPC.call(port, &message)) != nil, message.label == 11 else { return false }
    let rounds: UInt64 = 200
    guard let serverBefore = try? System.cpuStatistics(1), let clientBefore = try? System.cpuStatistics(0) else { return false }
    var answered: UInt64 = 0
    for _ in 0..<rounds {
        message.label = 10
        message.length = 0
        if (try? IPC.call(port, &message)) != nil && message.label == 11 { answered += 1 }
    }
    guard let serverAfter = try? System.cpuStatistics(1), let clientAfter = try? System.cpuStatistics(0) else { return false }
    var stop = IPCMessage(label: 0)
    _ = try? IPC.call(port, &stop)
    let ended = (try? System.wait(server))?.code == 0
    // The server blocks in its receive after each answer, so CPU 1 runs its idle thread (waits in
    // WFI) until the next call: the call wakes it with a reschedule interrupt.
    let woken = serverAfter.reschedulesReceived &- serverBefore.reschedulesReceived >= rounds
        && clientAfter.reschedulesSent &- clientBefore.reschedulesSent >= rounds
    return answered == rounds && ended && woken && serverAfter.systemCalls &- serverBefore.systemCalls >= rounds
        && clientAfter.systemCalls &- clientBefore.systemCalls >= rounds
}

/// Spinner with a thread kept to each CPU of `cpus` (not CPU 0, where this thread is pinned),
/// each seen running (its CPU's ticks found no idle time) before it is killed; then every one of
/// those CPUs is idle again and the kernel holds what it held before.
func killedAcrossCPUs(_ cpus: UInt64) -> Bool {
    guard cpus != 0, let previous = (try? System.setAffinity(1))?.previous else { return false }
    defer { _ = try? System.setAffinity(previous) }
    let indices = (0..<64).filter { cpus & (1 << UInt64($0)) != 0 }
    var before = InlineArray<64, CPUStatistics>(repeating: CPUStatistics())
    var after = before
    func read(into figures: inout InlineArray<64, CPUStatistics>) {
        for cpu in indices { figures[cpu] = (try? System.cpuStatistics(cpu)) ?? CPUStatistics() }
    }
    let holdings = KernelHoldings.steady
    guard let spinner = try? System.spawn("spinner", argument: cpus) else { return false }
    // Busy: for each CPU, two readings 20 ms apart in which it ticked and none of its ticks was
    // idle. The spinning threads never block, so a CPU seen busy stays busy; each CPU is looked
    // at on its own, since with more vCPUs than host cores one may not run in a given 20 ms.
    var seenBusy: UInt64 = 0
    for _ in 0..<100 where seenBusy != cpus {
        read(into: &before)
        System.sleep(nanoseconds: 20_000_000)
        read(into: &after)
        for cpu in indices where after[cpu].ticks > before[cpu].ticks && after[cpu].idleTicks == before[cpu].idleTicks {
            seenBusy |= 1 << UInt64(cpu)
        }
    }
    let busy = seenBusy == cpus
    let killed = (try? System.kill(spinner)) != nil && (try? System.wait(spinner))?.reason == .killed
    // Idle again: each CPU finds its idle thread running at a tick.
    var idle = false
    read(into: &before)
    for _ in 0..<50 where !idle {
        System.sleep(nanoseconds: 20_000_000)
        read(into: &after)
        idle = indices.allSatisfy { after[$0].idleTicks > before[$0].idleTicks }
    }
    let left = KernelHoldings.settled(toNoMoreThan: holdings)
    if !busy || !killed || !idle { System.print("tests: kill across CPUs: busy \(busy), killed \(killed), idle again \(idle)") }
    if !left.holdsNoMoreThan(holdings) { left.printChange(from: holdings, in: "kill across CPUs") }
    return busy && killed && idle && left.holdsNoMoreThan(holdings)
}

/// `threadPriority`: threads start at the default level, which is also the highest a thread may
/// set; below it is background. A thread woken at a level above the running one's runs at once:
/// on one CPU, a thread that lowered itself and signals a waiting thread finds that thread's work
/// done when its signal returns.
func testThreadPriority(_ suite: inout Suite) {
    guard let (level, highest) = try? System.setPriority(nil) else {
        suite.check(false, "threadPriority reads the calling thread's level")
        return
    }
    let above = catching { () throws(KernelError) in _ = try System.setPriority(highest + 1) }
    let beyond = catching { () throws(KernelError) in _ = try System.setPriority(4) }
    let unknownThread = catching { () throws(KernelError) in _ = try System.setPriority(0, thread: UInt64.max - 1) }
    var ranFirst = false
    var restored = false
    onOneCPU {
        guard let bell = try? IPC.createNotification(),
              let block = try? System.map(bytes: 4096, access: .write) else { return }
        let shared = block.bindMemory(to: UInt64.self, capacity: 2)
        shared[0] = bell.value
        shared[1] = 0
        let waiter = try? System.createThread(argument: UInt64(UInt(bitPattern: shared))) { argument in
            let shared = UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument))!
            _ = try? IPC.wait(Handle(shared[0]))
            shared[1] = 1
        }
        if waiter != nil {
            System.sleep(nanoseconds: 2_000_000) // the waiter runs and waits
            let waiting = shared[1] == 0
            let lowered = (try? System.setPriority(0))?.previous == level
            _ = try? IPC.signal(bell, bits: 1)
            ranFirst = waiting && lowered && shared[1] == 1
            restored = (try? System.setPriority(level))?.previous == 0 && (try? System.setPriority(nil))?.previous == level
            // The waiter finishes before the page goes (a second at most).
            for _ in 0..<1000 where shared[1] == 0 { System.sleep(nanoseconds: 1_000_000) }
        }
        try? IPC.close(bell)
        try? System.unmap(block, bytes: 4096)
    }
    suite.check(level == 1 && highest == 1 && above == .accessDenied && beyond == .invalidArgument && unknownThread == .notFound
                && ranFirst && restored,
                "thread priority: default 1, the highest a thread may set; above it denied, level 4 invalid, an unknown thread not found; a thread woken above the signaller's level runs before the signal returns")
}
