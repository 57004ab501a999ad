// restarts: the services' test, run by init (through the process manager) once the manifest's
// services are up, and the `make soak` campaign. It shows the services running (the process
// manager's list), then kills the memory manager, the name service and the echo service in turn
// while using each: after every kill the old port answers `peerClosed` (never a hang), the name
// is looked up again, its generation has grown, and the new instance does the work. At the end
// the kernel holds what it held before the first kill. Start argument: the number of kills (0:
// 100), rounded up to whole cycles of the three. Last lines: "soak: N restarts, N recovered, leaked frames N, leaked objects N" and
// "restarts: N passed, N failed"; the exit code is the number of failures.

/// The three services this test kills, and how it uses each.
enum Target: Int {
    case memoryManager = 0
    case names = 1
    case echo = 2

    var name: StaticString {
        switch self {
        case .memoryManager: return "memory-manager"
        case .names: return "names"
        case .echo: return "echo"
        }
    }
}

@main
struct Restarts {
    static func main() {
        // Whole cycles of the three kills, so that each service has ended as often as the others.
        // A client that has not needed memory since the memory manager's last restart still
        // holds a send right to the port of an instance that has ended: a closed port, which
        // lives until the client next reaches for the manager. Whether a client (the shell, the
        // console, the disk driver, the process manager) has done so depends on timing, so the
        // comparison counts closed ports apart and bounds them: at most one per process alive.
        let requested = System.startArgument == 0 ? 100 : Int(System.startArgument)
        let rounds = (requested + 2) / 3 * 3
        var checks = TestChecks("restarts")
        guard let manager = SystemServices.processManager, ProgramStart.handle(.ownProcess) != nil else {
            System.panic("restarts: started without the process manager or its own process handle")
        }

        // The services run: the process manager's list, as `ps` shows it.
        var running = 0
        var entries = InlineArray<4, ProcessEntry>(repeating: ProcessEntry())
        var first = 0
        while let listed = try? manager.list(from: first, into: &entries), listed.count > 0 {
            for index in 0..<listed.count {
                let entry = entries[index]
                var line = TextLine()
                line.write("restarts: ps: ")
                line.writeDecimal(entry.id)
                line.write(" ")
                for byte in 0..<entry.nameLength { line.write(byte: entry.name[byte]) }
                line.write(entry.isService ? " service " : " program ")
                line.write(entry.state == .running ? "running" : "not running")
                System.print(FormattedText(line: line))
                if entry.isService && entry.state == .running { running += 1 }
            }
            first += listed.count
            if first >= listed.total { break }
        }
        checks.check(running >= 3, "the process manager lists \(running) services running")

        var generations = InlineArray<3, UInt64>(repeating: 0)
        var ports = InlineArray<3, Handle>(repeating: .none)
        var allFound = true
        for index in 0..<3 {
            let target = Target(rawValue: index)!
            guard let found = find(target, newerThan: 0) else {
                allFound = false
                continue
            }
            ports[index] = found.port
            generations[index] = found.generation
            allFound = allFound && use(target, found.port)
        }
        checks.check(allFound, "memory-manager, names and echo are found by name and answer")
        guard allFound else {
            // Without all three there is nothing to kill and bring back.
            checks.finish()
        }
        let hostile = callsAnyoneMayMake(ports[Target.echo.rawValue])
        checks.check(hostile.sum && hostile.wrapped && hostile.handlesClosed && hostile.stillServing,
                     "the echo service outlives what any caller may send: label 0 ends nothing, the largest label wraps (\(hostile.wrapped)), a sum asked past its object stops at the object (\(hostile.sum)), handles sent are closed (\(hostile.handlesClosed)), and it answers after (\(hostile.stillServing))")

        // Two kills of each first, so that what the kernel holds afterwards is the steady state
        // (the first restarts warm the services' heaps and the process manager's tables).
        var recovered = 0
        for round in 0..<6 { if restart(Target(rawValue: round % 3)!, manager, &ports, &generations) { recovered += 1 } }
        let before = KernelFootprint.steady(closedPortsApart: true)
        var kills = 0
        for round in 0..<rounds {
            kills += 1
            guard restart(Target(rawValue: round % 3)!, manager, &ports, &generations) else {
                // The campaign's premise is gone (under injected faults the process manager may
                // give up on a service): the rounds left could only wait for it, each in vain.
                System.print("restarts: stopped after round \(round + 1) of \(rounds)")
                break
            }
            recovered += 1
        }
        // Every service back and answering, then what the kernel holds.
        var back = true
        for index in 0..<3 { back = back && use(Target(rawValue: index)!, ports[index]) }
        let after = KernelFootprint.settled(toward: before, closedPortsApart: true)
        let leakedFrames = after.frames < before.frames ? before.frames - after.frames : 0
        let leakedObjects = after.objectsInUse > before.objectsInUse ? after.objectsInUse - before.objectsInUse : 0
        let processes = System.processes.live
        System.print("soak: \(kills + 6) restarts, \(recovered) recovered, leaked frames \(leakedFrames), leaked objects \(leakedObjects)")
        checks.check(back && recovered == kills + 6,
                     "\(kills + 6) kills of a service in use: each time the old port answered peer closed, the name came back with a new generation and the new instance did the work")
        checks.check(leakedFrames == 0 && leakedObjects == 0 && after.closedPorts <= processes,
                     "nothing leaked across the restarts (frames \(before.frames) → \(after.frames), objects \(before.objects) → \(after.objects), of them closed ports still named \(before.closedPorts) → \(after.closedPorts), at most one per process: \(processes))")
        for index in 0..<3 where ports[index] != .none { try? IPC.close(ports[index]) }
        checks.finish()
    }

    /// What any caller of the echo service may send it: it ends on no request and closes the
    /// handles it is sent (the tests' own instances end on label 0), its label arithmetic wraps,
    /// and a sum is bounded by the object it mapped. Each result is whether that held.
    static func callsAnyoneMayMake(_ port: Handle) -> (sum: Bool, wrapped: Bool, handlesClosed: Bool, stillServing: Bool) {
        var stop = IPCMessage(label: 0)
        let stopAnswered = (try? IPC.call(port, &stop)) != nil && stop.label == 1
        var largest = IPCMessage(label: UInt64.max)
        let wrapped = (try? IPC.call(port, &largest)) != nil && largest.label == 0
        // A notification whose only other handle goes to the service: once that is closed, it
        // ends with ours. The count is the whole machine's, and other programs hold objects for
        // moments (on several CPUs, at the same time as this): the steady reading before, and
        // the count once back to it after (or after a second of looking).
        let objects = KernelFootprint.steadyObjects
        var handlesClosed = false
        if let notification = try? IPC.createNotification(), let copy = try? IPC.duplicate(notification, rights: [.signal, .transfer]) {
            var carrying = IPCMessage(label: 30)
            carrying.attach(copy)
            handlesClosed = (try? IPC.call(port, &carrying)) != nil && carrying.label == 31
            try? IPC.close(notification)
            handlesClosed = handlesClosed && KernelFootprint.objectsSettled(toward: objects) == objects
        }
        // A 4 KiB object mapped by the service, then a sum of far more than it holds.
        var sum = false
        if let memory = try? IPC.createMemory(bytes: 4096), let words = try? IPC.map(memory, writable: true),
           let readOnly = try? IPC.duplicate(memory, rights: [.map, .transfer]) {
            var expected: UInt64 = 0
            for index in 0..<512 {
                words.storeBytes(of: UInt64(index) &* 977, toByteOffset: index * 8, as: UInt64.self)
                expected &+= UInt64(index) &* 977
            }
            var hand = IPCMessage(label: 20)
            hand.attach(readOnly)
            var ask = IPCMessage(label: 21)
            ask.fill(count: 8) { _ in 0xFF }
            if (try? IPC.call(port, &hand)) != nil, (try? IPC.call(port, &ask)) != nil {
                sum = ask.word(atByte: 0) == expected
            }
            try? System.unmap(words, bytes: 4096)
            try? IPC.close(memory)
        }
        return (sum, wrapped, handlesClosed, stopAnswered && use(.echo, port))
    }

    /// Kills `target` through the process manager while holding its port, then checks the old
    /// port answers `peerClosed` and that the name leads to a new instance that works.
    static func restart(_ target: Target, _ manager: ProcessManager, _ ports: inout InlineArray<3, Handle>,
                        _ generations: inout InlineArray<3, UInt64>) -> Bool {
        let index = target.rawValue
        let name = target.name
        guard (try? manager.crashService(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))) != nil else {
            return false
        }
        // The old instance is gone: its port says so, whatever the request.
        let oldAnswer = answer(target, ports[index])
        guard oldAnswer == .peerClosed else {
            System.print("restarts: the old \(name) answered \(oldAnswer.map { $0.summary } ?? "success")")
            return false
        }
        guard let found = find(target, newerThan: generations[index]) else {
            System.print("restarts: \(name) did not come back")
            return false
        }
        try? IPC.close(ports[index])
        ports[index] = found.port
        generations[index] = found.generation
        return use(target, found.port)
    }

    /// The new instance of `target`: through the name service, the registration newer than
    /// `generation` (until the process manager has registered it, a lookup may still answer the
    /// old one, or say it is restarting); the name service itself, which registers no one but the
    /// others, through the process manager.
    static func find(_ target: Target, newerThan generation: UInt64) -> (port: Handle, generation: UInt64)? {
        for attempt in 0..<40 {
            if target == .names {
                if let endpoint = try? SystemServices.processManager?.serviceEndpoint(
                    UnsafeRawBufferPointer(start: target.name.utf8Start, count: target.name.utf8CodeUnitCount)) {
                    return (endpoint.port, endpoint.id)
                }
            } else if let found = try? SystemServices.lookup(target.name, attempts: 2) {
                if found.generation > generation { return found }
                try? IPC.close(found.port)
            }
            System.sleep(nanoseconds: 1_000_000 << UInt64(min(attempt, 6)))
        }
        return nil
    }

    /// Whether the service at `port` does its work.
    static func use(_ target: Target, _ port: Handle) -> Bool { answer(target, port) == nil }

    /// The error a piece of work on `port` met, or nil.
    static func answer(_ target: Target, _ port: Handle) -> KernelError? {
        do throws(KernelError) {
            switch target {
            case .memoryManager:
                guard let own = ProgramStart.handle(.ownProcess) else { return .invalidHandle }
                let payer = try IPC.duplicate(own, rights: [.account, .wait, .transfer])
                let object = try MemoryManager(port).allocate(bytes: 16 * 1024, account: payer)
                defer { try? IPC.close(object) }
                let block = try IPC.map(object, writable: true)
                for word in 0..<2048 { block.storeBytes(of: UInt64(word) &* 31, toByteOffset: word * 8, as: UInt64.self) }
                var intact = true
                for word in 0..<2048 where block.load(fromByteOffset: word * 8, as: UInt64.self) != UInt64(word) &* 31 { intact = false }
                try System.unmap(block, bytes: 16 * 1024)
                return intact ? nil : .invalidArgument
            case .names:
                let found = try Names(port).lookup("echo")
                try? IPC.close(found.port)
                return nil
            case .echo:
                var message = IPCMessage(label: 10)
                message.fill(count: 32) { UInt8(truncatingIfNeeded: $0 &* 7) }
                try IPC.call(port, &message)
                var same = message.label == 11 && message.length == 32
                for index in 0..<32 where message[byte: index] != UInt8(truncatingIfNeeded: index &* 7) { same = false }
                return same ? nil : .invalidArgument
            }
        } catch {
            return error
        }
    }
}
