// The memory manager (userland/services/memory-manager), started here on a port of the suite's
// own: memory it hands out is charged to the process whose handle comes with the request, within
// that process's limit; statistics name each client; bad requests get errors and their handles
// are closed; and when it is killed, memory it gave stays mapped and intact, calls to the dead
// instance get peer closed, a new instance serves at once, and nothing leaks.

import UserSystemCall

/// A memory manager started on a fresh port: the send right to it, and its process.
func startMemoryManager() -> (port: Handle, process: ChildProcess)? {
    guard let port = try? IPC.createPort() else { return nil }
    guard let send = try? IPC.duplicate(port, rights: [.send, .duplicate, .transfer]) else {
        try? IPC.close(port)
        return nil
    }
    guard let process = try? System.spawn("memory-manager", handle: port) else {
        try? IPC.close(port)
        try? IPC.close(send)
        return nil
    }
    return (send, process)
}

func testMemoryManager(_ suite: inout Suite) {
    let error = { (code: KernelError) in code.rawValue }
    let before = KernelHoldings.steady
    guard let first = startMemoryManager() else {
        suite.check(false, "the memory manager starts")
        return
    }
    let manager = MemoryManager(first.port)
    var served = false
    var statisticsRight = false
    var intactAfterCrash = false
    var crashDetail = (intact: false, deadAnswer: UInt64(0), newInstance: false)
    // The region checked after the kill is asked for first: a refusal then counts against that
    // check too, whatever passes between.
    var regionMark: UInt64?
    var refusals = false
    var firstWrongRefusal: (Int, UInt64)?
    // A port or a duplicate refused for memory makes a refusal case fail; the checks before it,
    // made after those calls, must not take the refusal off its count.
    var refusalsMark: UInt64?
    if let client = try? ProcessHandles.create("mm-client", memoryLimit: 256 * 1024).handle {
        let startUsed = (try? System.invoke(SystemCall.MemoryAccount(process: client)))?.used ?? 0
        var region: UnsafeMutableRawPointer?
        regionMark = System.outOfMemoryResults
        if let payer = try? IPC.duplicate(client, rights: [.account, .wait, .transfer]),
           let object = try? manager.allocate(bytes: 64 * 1024, account: payer) {
            region = try? IPC.map(object, writable: true)
            try? IPC.close(object)
        }
        let used = (try? System.invoke(SystemCall.MemoryAccount(process: client)))?.used ?? 0
        var overLimit = false
        if let payer = try? IPC.duplicate(client, rights: [.account, .wait, .transfer]) {
            do throws(KernelError) {
                _ = try manager.allocate(bytes: 512 * 1024, account: payer)
            } catch {
                overLimit = error == .outOfMemory
            }
        }
        let usedAfterRefusal = (try? System.invoke(SystemCall.MemoryAccount(process: client)))?.used ?? 0
        if let region {
            for index in 0..<(64 * 1024 / 8) { region.storeBytes(of: UInt64(index) &* 0x9E37_79B9, toByteOffset: index * 8, as: UInt64.self) }
        }
        served = region != nil && used >= startUsed + 64 * 1024 && overLimit && usedAfterRefusal == used

        var entries = InlineArray<6, MemoryClientEntry>(repeating: MemoryClientEntry())
        if let listed = try? manager.statistics(from: 0, into: &entries), listed.count >= 1 {
            var found = false
            for index in 0..<listed.count where entries[index].grants == 1 {
                found = entries[index].grantedBytes == 64 * 1024 && entries[index].accountLimit == 256 * 1024
                    && entries[index].accountUsed == used
            }
            statisticsRight = found
        }

        // Hostile requests: each an error, every handle that came with it closed.
        refusalsMark = System.outOfMemoryResults
        let objectsBefore = KernelFootprint.steadyObjects
        func status(_ label: UInt64, length: Int = 8, word: UInt64 = 4096, attach: Handle? = nil) -> UInt64 {
            var message = IPCMessage(label: label)
            message.length = length
            message.setWord(atByte: 0, word)
            if let attach { message.attach(attach) }
            guard (try? IPC.call(first.port, &message)) != nil else { return 0xDEAD }
            return message.label
        }
        let port = try? IPC.createPort()
        let portSend = port.flatMap { try? IPC.duplicate($0, rights: [.send, .transfer]) }
        let bell = try? IPC.createNotification()
        let answers = [
            (status(99), error(.invalidArgument)),
            (status(1), error(.invalidArgument)),                                                // no handle to pay
            (status(1, word: 0, attach: try? IPC.duplicate(client, rights: [.account, .transfer])), error(.invalidArgument)),
            (status(1, word: 2 << 20, attach: try? IPC.duplicate(client, rights: [.account, .transfer])), error(.invalidArgument)),
            (status(1, attach: portSend), error(.accessDenied)),                                  // not a process
            (status(1, attach: try? IPC.duplicate(client, rights: [.wait, .transfer])), error(.accessDenied)),
            (status(3, length: 0, attach: bell.flatMap { try? IPC.duplicate($0, rights: [.signal, .transfer]) }), error(.accessDenied)),
            (status(2, length: 3), error(.invalidArgument)),
        ]
        for handle in [port, bell] { if let handle { try? IPC.close(handle) } }
        firstWrongRefusal = answers.firstIndex { $0.0 != $0.1 }.map { ($0, answers[$0].0) }
        refusals = firstWrongRefusal == nil && KernelFootprint.objectsSettled(toward: objectsBefore) == objectsBefore
        // Checked now, so that a refusal of memory in the cases below is counted against them.
        checkServing(&suite, served, statisticsRight, refusals, firstWrongRefusal, since: refusalsMark)

        // Kill it: the memory it gave stays, intact; the dead instance answers peer closed; a new
        // one serves at once.
        try? System.kill(first.process)
        _ = try? System.wait(first.process)
        var intact = region != nil
        if let region {
            for index in 0..<(64 * 1024 / 8) where region.load(fromByteOffset: index * 8, as: UInt64.self) != UInt64(index) &* 0x9E37_79B9 {
                intact = false
            }
        }
        var deadAnswer = KernelError?.none
        if let payer = try? IPC.duplicate(client, rights: [.account, .wait, .transfer]) {
            do throws(KernelError) {
                _ = try manager.allocate(bytes: 4096, account: payer)
            } catch {
                deadAnswer = error
            }
        }
        var newInstance = false
        if let second = startMemoryManager() {
            if let payer = try? IPC.duplicate(client, rights: [.account, .wait, .transfer]),
               let object = try? MemoryManager(second.port).allocate(bytes: 4096, account: payer) {
                newInstance = ((try? System.invoke(SystemCall.MemoryAccount(process: client)))?.used ?? 0) >= used + 4096
                try? IPC.close(object)
            }
            try? System.kill(second.process)
            _ = try? System.wait(second.process)
            try? IPC.close(second.port)
        }
        intactAfterCrash = intact && deadAnswer == .peerClosed && newInstance
        crashDetail = (intact, deadAnswer?.rawValue ?? 0, newInstance)
        if let region { try? System.unmap(region, bytes: 64 * 1024) }
        try? IPC.close(client)
    } else {
        checkServing(&suite, served, statisticsRight, refusals, firstWrongRefusal, since: refusalsMark)
        try? System.kill(first.process)
        _ = try? System.wait(first.process)
    }
    try? IPC.close(first.port)
    suite.check(intactAfterCrash, "killed, the memory manager leaves given memory mapped and intact (\(crashDetail.intact)); its dead port answers peer closed (\(crashDetail.deadAnswer)); a new instance serves at once (\(crashDetail.newInstance))",
                since: regionMark)
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(after.holdsNoMoreThan(before),
                "the memory manager leaves nothing behind (objects \(before.objects) → \(after.objects), free frames \(before.freeFrames) → \(after.freeFrames))")
}

/// More clients than the manager keeps records for: 24 processes, alive together, each ask once
/// (crasher 17), paying themselves. Each is served all the same; the records stop at 15 (a
/// record keeps a handle to its client's process, and the records are bounded so that the
/// manager's handle table never fills); and once those processes have ended, the next new
/// client's request clears their records out.
func testManyMemoryClients(_ suite: inout Suite) {
    let before = KernelHoldings.steady
    let refusalsBefore = System.outOfMemoryResults
    guard let ramdisk = ProgramStart.handle(.ramdisk), let loader = try? ProgramLoader(ramdisk: ramdisk) else {
        suite.check(false, "the loader, for the memory manager's many clients")
        return
    }
    guard let report = try? IPC.createPort() else {
        suite.check(false, "a port, for the memory manager's many clients")
        loader.close()
        return
    }
    guard let started = startMemoryManager() else {
        suite.check(false, "the memory manager starts, for its many clients")
        try? IPC.close(report)
        loader.close()
        return
    }
    let manager = MemoryManager(started.port)
    let clients = 24
    var children: [Handle] = []
    children.reserveCapacity(clients)
    var served = 0
    var refused = 0
    for _ in 0..<clients {
        guard let reportRight = try? IPC.duplicate(report, rights: [.send, .transfer]) else { continue }
        guard let managerRight = try? IPC.duplicate(started.port, rights: [.send, .transfer]) else {
            try? IPC.close(reportRight)
            continue
        }
        guard let child = try? loader.spawn("crasher", argument: 17, startHandle: reportRight,
                                            handles: StartHandles(.memoryManager, managerRight)) else {
            // Moved only when the spawn succeeds.
            try? IPC.close(reportRight)
            try? IPC.close(managerRight)
            continue
        }
        children.append(child.process)
        // It has asked once it reports (one at a time: the port's queue is shorter than 24); it
        // stays, so that all are live clients together.
        var message = IPCMessage()
        guard (try? IPC.receive(report, into: &message, timeout: 5_000_000_000)) != nil else { break }
        if message.label == 1 { served += 1 } else { refused += 1 }
    }
    var entries = InlineArray<6, MemoryClientEntry>(repeating: MemoryClientEntry())
    let recorded = (try? manager.statistics(from: 0, into: &entries))?.clients ?? -1
    for child in children {
        try? ProcessHandles.kill(child)
        _ = try? ProcessHandles.wait(child)
        try? IPC.close(child)
    }
    // This process is a new client: its request clears the ended ones' records.
    var lateServed = false
    if let payer = try? IPC.duplicate(ProgramStart.handle(.ownProcess) ?? .none, rights: [.account, .wait, .transfer]),
       let object = try? manager.allocate(bytes: 4096, account: payer) {
        lateServed = true
        try? IPC.close(object)
    }
    let recordedAfter = (try? manager.statistics(from: 0, into: &entries))?.clients ?? -1
    try? System.kill(started.process)
    _ = try? System.wait(started.process)
    try? IPC.close(started.port)
    try? IPC.close(report)
    loader.close()
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(children.count == clients && served == clients && recorded == 15 && lateServed && recordedAfter == 1
                && after.holdsNoMoreThan(before),
                "the memory manager serves \(served) of \(clients) live clients (\(refused) refused, \(children.count) started) and keeps \(recorded) records (15 at most); once they ended, a new client's request leaves \(recordedAfter); nothing left behind",
                since: refusalsBefore)
}

func checkServing(_ suite: inout Suite, _ served: Bool, _ statisticsRight: Bool, _ refusals: Bool,
                  _ firstWrong: (Int, UInt64)?, since mark: UInt64?) {
    suite.check(served, "the memory manager gives memory charged to the process whose handle comes with the request; over its limit: out of memory, nothing charged")
    suite.check(statisticsRight, "the memory manager's statistics name the client: one grant of 64 KiB, its account's use and limit")
    suite.check(refusals, "the memory manager refuses bad labels, sizes, missing or wrong handles, and closes every handle it does not keep (first wrong: case \(firstWrong?.0 ?? -1), status \(hex: firstWrong?.1 ?? 0))",
                since: mark)
}

/// Named shared regions: a creator shares memory it pays for under a name, another client opens
/// it and sees the same bytes, read-only when the creator says so; bad requests are refused; the
/// name goes when its creator ends, while mappings stay valid; and nothing is left behind.
func testSharedRegions(_ suite: inout Suite) {
    let before = KernelHoldings.steady
    guard let manager = startMemoryManager() else {
        suite.check(false, "a memory manager for shared regions starts")
        return
    }
    let client = MemoryManager(manager.port)
    var shared = false
    var refused = false
    var endsWithCreator = false
    if let creator = try? ProcessHandles.create("mm-sharer", memoryLimit: 256 * 1024).handle {
        func payer() -> Handle { (try? IPC.duplicate(creator, rights: [.account, .wait, .transfer])) ?? .none }
        let used = (try? System.invoke(SystemCall.MemoryAccount(process: creator)))?.used ?? 0
        let ring = UnsafeRawBufferPointer("ring")
        if let made = try? client.share(ring, bytes: 8192, writable: true, account: payer()),
           let opened = try? client.open(ring),
           let readOnly = try? client.share(UnsafeRawBufferPointer("notes"), bytes: 4096, writable: false, account: payer()),
           let notes = try? client.open(UnsafeRawBufferPointer("notes")),
           let first = try? IPC.map(made, writable: true), let second = try? IPC.map(opened, writable: true) {
            for index in 0..<1024 { first.storeBytes(of: UInt64(index) &* 0x9E37_79B9, toByteOffset: index * 8, as: UInt64.self) }
            var same = true
            for index in 0..<1024 where second.load(fromByteOffset: index * 8, as: UInt64.self) != UInt64(index) &* 0x9E37_79B9 {
                same = false
            }
            second.storeBytes(of: 0x5EED, toByteOffset: 8000, as: UInt64.self)
            let charged = ((try? System.invoke(SystemCall.MemoryAccount(process: creator)))?.used ?? 0) >= used + 12288
            let noWrite = catching { () throws(KernelError) in _ = try IPC.map(notes, writable: true) }
            let readable = (try? IPC.map(notes, writable: false)).map { pointer in
                try? System.unmap(pointer, bytes: 4096)
                return true
            } ?? false
            shared = same && first.load(fromByteOffset: 8000, as: UInt64.self) == 0x5EED && charged
                && noWrite == .accessDenied && readable

            let again = catching { () throws(KernelError) in _ = try client.share(ring, bytes: 4096, writable: true, account: payer()) }
            let missing = catching { () throws(KernelError) in _ = try client.open(UnsafeRawBufferPointer("nothing")) }
            let tooBig = catching { () throws(KernelError) in
                _ = try client.share(UnsafeRawBufferPointer("big"), bytes: 1 << 20, writable: true, account: payer())
            }
            let noCreator = catching { () throws(KernelError) in
                var message = IPCMessage(label: MemoryManagerRequest.share.rawValue)
                message.setWord(atByte: 0, 4096)
                message.setWord(atByte: 8, 3)
                _ = message.setBytes(atByte: 24, UnsafeRawBufferPointer("odd"))
                message.length = 27
                try IPC.call(manager.port, &message)
                if let error = KernelError(status: message.label) { throw error }
            }
            // Two more names make this client's share (a quarter of the 16); a fifth is refused,
            // and its creator handle closed, not kept.
            let third = try? client.share(UnsafeRawBufferPointer("third"), bytes: 4096, writable: false, account: payer())
            let fourth = try? client.share(UnsafeRawBufferPointer("fourth"), bytes: 4096, writable: false, account: payer())
            let fifth = catching { () throws(KernelError) in
                _ = try client.share(UnsafeRawBufferPointer("fifth"), bytes: 4096, writable: false, account: payer())
            }
            for handle in [third, fourth] { if let handle { try? IPC.close(handle) } }
            refused = again == .invalidArgument && missing == .notFound && tooBig == .outOfMemory && noCreator == .invalidArgument
                && third != nil && fourth != nil && fifth == .queueFull

            // The creator ends: the names go, the memory mapped here stays.
            try? ProcessHandles.kill(creator)
            let gone = catching { () throws(KernelError) in _ = try client.open(ring) }
            endsWithCreator = gone == .notFound && second.load(fromByteOffset: 8000, as: UInt64.self) == 0x5EED
            try? System.unmap(first, bytes: 8192)
            try? System.unmap(second, bytes: 8192)
            for handle in [made, opened, readOnly, notes] { try? IPC.close(handle) }
        }
        try? IPC.close(creator)
    }
    try? System.kill(manager.process)
    _ = try? System.wait(manager.process)
    try? IPC.close(manager.port)
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(shared, "a named shared region: the opener sees the creator's bytes and the creator its writes; charged to the creator; read-only when it says so")
    suite.check(refused, "shared regions refuse a name in use, a missing name, a region over the creator's limit, a share without a creator, and a client's fifth name (queue full: a quarter of the 16 each)")
    suite.check(endsWithCreator && after.holdsNoMoreThan(before),
                "a shared region's name goes with its creator while mappings stay valid; nothing is left behind (objects \(before.objects) → \(after.objects), free frames \(before.freeFrames) → \(after.freeFrames))")
}

/// Heap growth when its memory manager is gone for good: the first growth asks `patience` times
/// (with pauses, as for a restart) before it maps directly; each growth after asks once, without
/// a pause, until an instance answers again, and then uses it. A private instance stands in for
/// the system's, and the look for a new one finds none until one is given.
func testHeapGrowthWithoutItsManager(_ suite: inout Suite) {
    guard let instance = startMemoryManager() else {
        suite.check(false, "the memory manager starts")
        return
    }
    let saved = (manager: HeapPageSource.manager, patience: HeapPageSource.patience,
                 findAgain: HeapPageSource.findAgain)
    var replacement: MemoryManager?
    HeapPageSource.manager = MemoryManager(instance.port)
    HeapPageSource.patience = 3
    HeapPageSource.findAgain = { _ in replacement }
    // Nothing between the counts below allocates: a growth of this program's own heap would ask
    // the same manager.
    let runs = HeapPageSource.managedRuns
    let served = HeapPageSource.obtain(bytes: 4096)
    let servedRuns = HeapPageSource.managedRuns &- runs
    try? System.kill(instance.process)
    _ = try? System.wait(instance.process)
    let unanswered = HeapPageSource.unansweredRequests
    let direct = HeapPageSource.directRuns
    let first = HeapPageSource.obtain(bytes: 4096)
    let firstAsked = HeapPageSource.unansweredRequests &- unanswered
    let second = HeapPageSource.obtain(bytes: 4096)
    let secondAsked = HeapPageSource.unansweredRequests &- unanswered &- firstAsked
    let directRuns = HeapPageSource.directRuns &- direct
    let wasUnreachable = HeapPageSource.unreachable
    // A new instance: found on the next growth's one look, and used from the one after.
    var third: UnsafeMutableRawPointer?
    var fourth: UnsafeMutableRawPointer?
    var backRuns: UInt64 = 0
    // Started again if a start fails: under fault injection it may be refused memory. The
    // first check below passes after all of this has run, so the second says by its own mark
    // whether memory was refused here (a growth that maps directly may be).
    let replacementMark = System.outOfMemoryResults
    var again: (port: Handle, process: ChildProcess)?
    for _ in 0..<3 where again == nil { again = startMemoryManager() }
    if let again {
        replacement = MemoryManager(again.port)
        let before = HeapPageSource.managedRuns
        third = HeapPageSource.obtain(bytes: 4096)
        fourth = HeapPageSource.obtain(bytes: 4096)
        backRuns = HeapPageSource.managedRuns &- before
    }
    let reachableAgain = !HeapPageSource.unreachable
    if let current = HeapPageSource.manager, current.port != saved.manager?.port { try? IPC.close(current.port) }
    HeapPageSource.manager = saved.manager
    HeapPageSource.patience = saved.patience
    HeapPageSource.findAgain = saved.findAgain
    HeapPageSource.unreachable = false
    for run in [served, first, second, third, fourth] {
        if let run { try? System.unmap(run, bytes: 4096) }
    }
    if let again {
        try? System.kill(again.process)
        _ = try? System.wait(again.process)
    }
    suite.check(served != nil && servedRuns == 1 && first != nil && second != nil && directRuns == 2
                    && firstAsked == 3 && secondAsked == 1 && wasUnreachable,
                "heap growth with its memory manager gone: served first (\(servedRuns)), then mapped directly (\(directRuns) of 2) after 3 unanswered requests (\(firstAsked)), then after 1 (\(secondAsked))")
    suite.check(third != nil && fourth != nil && backRuns == 1 && reachableAgain,
                "a new memory manager is found by the next growth and serves the one after (\(backRuns) of 1; growths \(third != nil), \(fourth != nil); reachable \(reachableAgain))", since: replacementMark)
}
