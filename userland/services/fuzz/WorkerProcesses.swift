// A worker's threads and child processes, its raw calls, and the episodes that recreate
// situations the kernel once got wrong (each can be left out with a flag, FuzzOptions).

import FuzzRegisters
import UserSystemCall

extension Worker {
    // MARK: Threads

    mutating func threadAction() {
        if random.oneIn(3) {
            hostileThread()
            return
        }
        guard let slot = ThreadSlots.freeSlot() else { return }
        let stackBytes = ThreadSlots.stackBytes
        let mapped = caller.make(SystemCallNumber.map.rawValue, stackBytes, 1, expect: .successUnlessShort)
        guard mapped.succeeded else { return }
        ThreadSlots.begin(slot, stack: mapped.value1, seed: random.next(), calls: random.between(1, 40))
        let body = unsafeBitCast(fuzzThreadBody as @convention(c) (UInt64) -> Void, to: UInt64.self)
        let created = caller.make(SystemCallNumber.threadCreate.rawValue, user_thread_start_address(),
                                  mapped.value1 + stackBytes, UInt64(slot), body, expect: .successUnlessShort)
        if created.succeeded {
            if created.value1 == mainThread || created.value1 == 0 {
                Report.violation("threadCreate returned thread id \(created.value1)")
            }
        } else {
            ThreadSlots.abandon(slot)
            _ = caller.make(SystemCallNumber.unmap.rawValue, mapped.value1, stackBytes, expect: .success)
        }
    }

    /// Entries and stacks the kernel must refuse: outside user space, misaligned, too low, and
    /// stacks whose last 16 bytes are not mapped writable (unmapped, read-only). (An aligned
    /// entry in user space that is not code is accepted, and the thread faults, ending this
    /// worker: that is not asked for.)
    mutating func hostileThread() {
        var entry = user_thread_start_address()
        var stack = messageArea + Self.messageAreaBytes
        if random.oneIn(2) {
            let entries: InlineArray<7, UInt64> = [0, UserSpace.end, UserSpace.end - 2, 0xFFFF_0000_4020_0000, UInt64.max - 3,
                                                   entry + 2, entry + 1]
            entry = entries[random.below(7)]
        } else {
            let stacks: InlineArray<9, UInt64> = [0, 8, 16, stack + 8, UserSpace.end + 16, 0xFFFF_0000_4020_0000,
                                                  stack + pageSize, readOnlyMessage + pageSize, UserSpace.start + 16]
            stack = stacks[random.below(9)]
        }
        _ = caller.make(SystemCallNumber.threadCreate.rawValue, entry, stack, random.next(), 0, expect: .failure)
    }

    /// Lets other threads run for a millisecond or so: a sleep, or a yield if the kernel has no
    /// deadline to spare.
    mutating func pause() {
        if !caller.make(SystemCallNumber.sleep.rawValue, 1_000_000, expect: .successUnlessShort).succeeded {
            _ = caller.make(SystemCallNumber.yield.rawValue, expect: .success)
        }
    }

    /// Something for the extra threads to wake to: bits on their notification or a message on
    /// their port (which may be full: they take messages only now and then).
    mutating func pokeThreads() {
        if random.oneIn(2) {
            _ = caller.make(SystemCallNumber.notificationSignal.rawValue, ThreadSlots.bell, random.next() | 1, expect: .success)
            return
        }
        let buffer = UnsafeMutablePointer<UInt64>(bitPattern: UInt(messageArea + 6 * 512))!
        for word in 0..<IPCMessageLayout.headerWords { buffer[word] = 0 }
        buffer[0] = ThreadSlots.pokeLabel
        let outcome = caller.make(SystemCallNumber.send.rawValue, ThreadSlots.port, messageArea + 6 * 512)
        if !outcome.succeeded && outcome.status != KernelError.queueFull.rawValue {
            Report.violation("a send to the threads' port failed with \(outcome.status)")
        }
    }

    /// Unmaps the stacks of threads that have finished (all of them, waiting, if `waiting`).
    mutating func reapThreads(waiting: Bool) {
        for slot in 0..<ThreadSlots.count where ThreadSlots.stacks[slot] != 0 {
            while waiting && ThreadSlots.done[slot] == 0 { pause() }
            guard ThreadSlots.done[slot] != 0 else { continue }
            _ = caller.make(SystemCallNumber.unmap.rawValue, ThreadSlots.stacks[slot], ThreadSlots.stackBytes, expect: .success)
            model.unmappedAddress = ThreadSlots.stacks[slot]
            ThreadSlots.finish(slot)
        }
    }

    // MARK: Children

    /// Victims spawned until the kernel refuses one (its process table, address-space ids or
    /// memory run out, or 300 are enough), then all killed and waited for. They wait without a
    /// deadline: a flood of deadlines is another class.
    mutating func processFlood() {
        var pids = InlineArray<300, UInt64>(repeating: 0)
        var count = 0
        let argument = FuzzOptions(role: .child, flags: [], calls: Child.victim, seed: Child.waitForEver).argument
        while count < 300 {
            let outcome = spawn("fuzz", argument: argument, handle: 0, expect: .successUnlessShort)
            guard outcome.succeeded else { break }
            pids[count] = outcome.value1
            count += 1
        }
        processes += UInt64(count)
        for index in 0..<count { _ = caller.make(SystemCallNumber.kill.rawValue, pids[index], expect: .success) }
        for index in 0..<count {
            let outcome = caller.make(SystemCallNumber.wait.rawValue, pids[index], expect: .success)
            if outcome.succeeded && outcome.value2 != ExitReason.killed.rawValue
                && !(outcome.value2 == ExitReason.exited.rawValue
                     && (outcome.value1 == 0 || outcome.value1 == System.outOfMemoryExitCode)) {
                Report.violation("flooding victim \(pids[index]) ended with reason \(outcome.value2), code \(hex: outcome.value1)")
            }
        }
    }

    mutating func childAction() {
        if random.oneIn(150) && !options.flags.contains(.noProcessFlood) {
            processFlood()
        } else if model.childCount > 0 && random.oneIn(2) {
            endChild(at: random.below(model.childCount))
        } else if random.oneIn(4) || model.childCount == Model.childCapacity {
            hostileProcessCall()
        } else {
            spawnChild()
        }
    }

    mutating func spawnChild() {
        // The model keeps Model.childCapacity children (the exhaustion episode calls in here
        // whatever the count).
        guard model.childCount < Model.childCapacity else { return }
        let roll = random.below(20)
        if roll < 4 {
            startServer()
            return
        }
        var kind = ChildKind.hello
        var argument: UInt64 = random.next()
        if roll < 7 {
            let code = random.below(UInt64(8))
            kind = .crasher(code)
            argument = code
        } else if roll < 13 {
            kind = .victim
            argument = FuzzOptions(role: .child, flags: [], calls: Child.victim, seed: random.below(UInt64(7))).argument
        }
        // Now and then the child takes a handle with it (never a receive right: its port would
        // close when the child ends, at a moment the model cannot know).
        var moved: Int?
        if random.oneIn(3), let index = pickHandle(nil, rights: .transfer, service: nil),
           !(model.objects[model.handles[index].object].kind == .port && model.handles[index].rights.contains(.receive)) {
            moved = index
        }
        let value = moved.map { model.handles[$0].value } ?? 0
        // Some children run within a limit of their own, ample for what they do.
        let limit: UInt64 = random.oneIn(4) ? random.between(4 << 20, 16 << 20) : 0
        let outcome: Outcome
        switch kind {
        case .hello: outcome = spawn("hello", argument: argument, handle: value, memoryLimit: limit, expect: .successUnlessShort)
        case .crasher: outcome = spawn("crasher", argument: argument, handle: value, memoryLimit: limit, expect: .successUnlessShort)
        default: outcome = spawn("fuzz", argument: argument, handle: value, memoryLimit: limit, expect: .successUnlessShort)
        }
        guard outcome.succeeded else {
            if value != 0 { checkStillHeld(value, outcome) }
            return
        }
        processes += 1
        var child = ChildRecord(pid: outcome.value1, kind: kind)
        if let moved {
            let handle = model.takeHandle(at: moved)
            child.held[0] = Int16(handle.object)
            child.heldCount = 1
        }
        model.addChild(child)
    }

    /// A server child on a new port: the child takes the port (every right), the worker keeps a
    /// send handle; the port closes when the child ends.
    mutating func startServer() {
        guard model.freeSlots >= 2 else { return }
        let created = caller.make(SystemCallNumber.portCreate.rawValue, expect: .successUnlessShort)
        guard created.succeeded else { return }
        adopt(created.value1, kind: .port, rights: .newPort, pages: 0)
        guard let original = model.handleIndex(created.value1) else { return }
        let port = model.handles[original].object
        let rights: Rights = [.send, .transfer, .duplicate]
        let duplicated = caller.make(SystemCallNumber.handleDuplicate.rawValue, created.value1, rights.rawValue,
                                     expect: .success)
        guard duplicated.succeeded else { return }
        model.addHandle(duplicated.value1, object: port, rights: rights, isNew: true)
        let argument = FuzzOptions(role: .child, flags: [], calls: Child.server, seed: 0).argument
        let outcome = spawn("fuzz", argument: argument, handle: created.value1, expect: .successUnlessShort)
        guard outcome.succeeded, let moved = model.handleIndex(created.value1) else {
            checkStillHeld(created.value1, outcome)
            return
        }
        processes += 1
        _ = model.takeHandle(at: moved)
        model.objects[port].service = .child
        var child = ChildRecord(pid: outcome.value1, kind: .server)
        child.port = port
        child.held[0] = Int16(port)
        child.heldCount = 1
        model.addChild(child)
    }

    /// A spawn that failed must leave the handle it was to move where it was. (A duplicate
    /// with no rights finds out: it fails with invalidHandle only if the handle is gone.)
    mutating func checkStillHeld(_ value: UInt64, _ failed: Outcome) {
        guard let index = model.handleIndex(value) else { return }
        let probe = caller.make(SystemCallNumber.handleDuplicate.rawValue, value, 0)
        if probe.succeeded {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, probe.value1, expect: .success)
            model.markStale(probe.value1)
        } else if probe.status == KernelError.invalidHandle.rawValue {
            Report.violation("a spawn that failed (status \(failed.status)) took handle \(hex: value) all the same")
            model.closeHandle(at: index)
        }
    }

    /// Starts `name` with the runtime's loader (ChildProcesses.swift; the kernel has no spawn
    /// call), judged like a call: value1 is the child's id. The child's process handle is closed
    /// at once: the model knows children by id, and `wait` by id collects them. `memoryLimit`
    /// caps what the kernel may hold for the child (0: no limit of its own).
    mutating func spawn(_ name: StaticString, argument: UInt64, handle: UInt64, memoryLimit: UInt64 = 0,
                        expect: Expectation) -> Outcome {
        let outcome: Outcome
        do throws(KernelError) {
            let child = try System.spawn(name, argument: argument, handle: handle == 0 ? nil : Handle(handle),
                                         memoryLimit: memoryLimit)
            try? IPC.close(child.process)
            outcome = Outcome(status: systemCallSuccess, value1: child.id.value, value2: 0)
        } catch {
            outcome = Outcome(status: error.rawValue, value1: 0, value2: 0)
        }
        caller.judge("spawn", outcome, expect)
        return outcome
    }

    /// Ends child `index`: kills it unless it ends by itself, waits for it, and checks how it
    /// ended.
    mutating func endChild(at index: Int) {
        let child = model.children[index]
        var killed = false
        switch child.kind {
        case .victim, .server:
            if child.kind == .server && random.oneIn(2), let send = model.handle(of: child.port) {
                // Label 0 asks the server to stop; it may be gone already.
                let buffer = UnsafeMutablePointer<UInt64>(bitPattern: UInt(messageArea))!
                for word in 0..<IPCMessageLayout.headerWords { buffer[word] = 0 }
                _ = caller.make(SystemCallNumber.call.rawValue, send, messageArea, expect: .any)
            }
            _ = caller.make(SystemCallNumber.kill.rawValue, child.pid, expect: .success)
            killed = true
        case .probe:
            break
        case .hello, .crasher:
            if random.oneIn(6) {
                _ = caller.make(SystemCallNumber.kill.rawValue, child.pid, expect: .success)
                killed = true
            }
        }
        let outcome = caller.make(SystemCallNumber.wait.rawValue, child.pid, expect: .success)
        model.removeChild(at: index)
        guard outcome.succeeded else { return }
        let (code, reason) = (outcome.value1, outcome.value2)
        let exited = ExitReason.exited.rawValue
        var expected: Bool
        switch child.kind {
        case .hello: expected = reason == exited && code == 0
        case .crasher(let kind):
            switch kind {
            case 0: expected = reason == exited && code == 42
            case 7: expected = reason == exited && code == 7
            default: expected = reason == ExitReason.faulted.rawValue
            }
        case .victim, .server: expected = reason == exited && code == 0
        case .probe(let kind):
            if reason != exited || (code != 0 && code != System.outOfMemoryExitCode) {
                Report.violation("probe \(kind) (\(Child.probeName(kind))) ended with reason \(reason), code \(hex: code): the kernel unmapped a range map never returned")
                return
            }
            expected = true
        }
        // A kill may come first, or after the child ended by itself.
        if killed && reason == ExitReason.killed.rawValue && code == 0 { expected = true }
        // A child whose heap the kernel would not grow (memory out, or its own limit) ends with
        // the runtime's code for it: the kernel said no, as it may.
        if reason == exited && code == System.outOfMemoryExitCode { expected = true }
        if !expected {
            Report.violation("child \(child.pid) ended with reason \(reason), code \(hex: code), not as it should")
        }
    }

    /// Spawns and waits and kills that must fail: bad names, foreign handles, other processes.
    mutating func hostileProcessCall() {
        switch random.below(10) {
        case 0, 1, 3:
            // The retired spawn-by-name number, with a name or without: the kernel no longer
            // knows it.
            let name: StaticString = "hello"
            _ = caller.make(SystemCallNumber.retired8.rawValue, random.oneIn(2) ? invalidAddress() : UInt64(UInt(bitPattern: name.utf8Start)), 5, 0, 0,
                            expect: .error(.unknownSystemCall))
        case 2: _ = spawn("nonexistent", argument: 0, handle: 0, expect: .error(.notFound))
        case 4:
            let withoutTransfer = pickHandle(nil, service: nil).flatMap { model.handles[$0].rights.contains(.transfer) ? nil : $0 }
            let value = withoutTransfer.map { model.handles[$0].value } ?? foreignHandle()
            let outcome = spawn("hello", argument: 0, handle: value == 0 ? 1 : value, expect: .failure)
            if !outcome.succeeded { checkStillHeld(value, outcome) }
        case 5: _ = spawn("hello\0", argument: 0, handle: 0, expect: .failure)
        case 9:
            // A memory limit smaller than the program needs: refused, and nothing changes (a
            // handle it was to move stays).
            let limits: InlineArray<4, UInt64> = [1, pageSize - 1, pageSize, 32 << 10]
            let movable = pickHandle(nil, rights: .transfer, service: nil).flatMap { mayAttach($0) ? $0 : nil }
            let value = movable.map { model.handles[$0].value } ?? 0
            let outcome = spawn("hello", argument: 0, handle: value, memoryLimit: limits[random.below(4)], expect: .failure)
            if outcome.succeeded {
                processes += 1
                var child = ChildRecord(pid: outcome.value1, kind: .hello)
                if let movable {
                    child.held[0] = Int16(model.takeHandle(at: movable).object)
                    child.heldCount = 1
                }
                if model.childCount < Model.childCapacity {
                    model.addChild(child)
                } else {
                    _ = caller.make(SystemCallNumber.wait.rawValue, child.pid, expect: .success)
                    if child.heldCount > 0 { model.capabilityEnded(object: Int(child.held[0]), rights: []) }
                }
            } else if value != 0 {
                checkStillHeld(value, outcome)
            }
        case 6, 7: _ = caller.make(SystemCallNumber.wait.rawValue, foreignProcess(includingSelf: true), expect: .failure)
        default: _ = caller.make(SystemCallNumber.kill.rawValue, foreignProcess(includingSelf: false), expect: .failure)
        }
    }

    // MARK: Raw calls

    /// A random number with random registers. Numbers the kernel does not know must say so;
    /// known ones get registers that name nothing of this worker's (so the call must fail, or
    /// succeed without touching anything the model keeps), except the calls that create: their
    /// results join the model.
    mutating func rawCall() {
        var registers = InlineArray<6, UInt64>(repeating: 0)
        for index in 0..<6 {
            // Lengths like 1 << 32 are handle values too (slot 0, generation 1).
            registers[index] = rawRegister()
            if model.isLive(registers[index]) { registers[index] = 0 }
        }
        let known = UInt64(SystemCallNumber.allCases.count)
        var number = random.below(known + 3)
        if random.oneIn(3) {
            let unknown: InlineArray<6, UInt64> = [known, known + 1, 255, 1 << 32, 1 << 63, UInt64.max]
            number = random.oneIn(2) ? unknown[random.below(6)] : random.next() | 64
        }
        guard let call = SystemCallNumber(rawValue: number) else {
            _ = caller.make(number, registers[0], registers[1], registers[2], registers[3], registers[4], registers[5],
                            expect: .error(.unknownSystemCall))
            return
        }
        var expectation = Expectation.failure
        switch call {
        case .null, .clock, .yield, .processID, .threadID, .memoryStatistics, .processStatistics, .kernelStatistics,
             .kernelObjects, .ipcStatistics, .portStatistics:
            expectation = .success
        case .memoryAccount:
            // This process's own account, or another handle's (not a process: refused).
            if random.oneIn(2) { registers[0] = 0 }
            expectation = registers[0] == 0 ? .success : .failure
        case .exit, .threadExit:
            // Would end this worker: made a number nobody knows instead.
            number = 1000 + number
            expectation = .error(.unknownSystemCall)
        case .sleep:
            registers[0] %= Self.shortTimeout
            expectation = .successUnlessShort
        case .debugWrite:
            registers[0] = invalidAddress()
            if registers[1] == 0 { expectation = .any }
        case .receive, .notificationWait:
            registers[2] %= Self.shortTimeout
            registers[1] %= Self.shortTimeout
        case .waitAny:
            registers[0] = invalidAddress()
            registers[2] %= Self.shortTimeout
        case .replyReceive:
            registers[3] %= Self.shortTimeout
            if registers[0] == 0 { registers[0] = 1 }
        case .replyReceiveRegisters:
            registers[4] %= Self.shortTimeout
            if registers[0] == 0 { registers[0] = 1 }
        case .threadCreate:
            registers[0] = invalidAddress() | 1 << 63
        case .threadAffinity:
            // Reads only: a worker pinned by chance would change what the campaign does. Its own
            // thread (0) answers; another number is a thread of another process, or of this one.
            registers[1] = 0
            expectation = registers[0] == 0 ? .success : .any
        case .threadPriority:
            // Reads, or levels no thread may set: a worker lowered by chance would change what the
            // campaign does. Its own thread (0) answers; another number is a thread of another
            // process, or of this one.
            let levels: InlineArray<4, UInt64> = [UInt64.max, 2, 3, random.between(4, 1 << 20)]
            registers[1] = levels[random.below(4)]
            expectation = registers[0] == 0 ? (registers[1] == UInt64.max ? .success : .failure) : .any
        case .cpuStatistics:
            registers[1] = invalidAddress()
        case .processCreate:
            registers[0] = invalidAddress()
        case .wait:
            registers[0] = foreignProcess(includingSelf: true)
        case .kill:
            registers[0] = foreignProcess(includingSelf: false)
        case .map:
            registers[1] = random.oneIn(2) ? registers[1] : random.below(UInt64(3))
            if registers[0] >= 1 && registers[0] <= 1 << 30 && registers[1] <= 2 {
                registers[0] = registers[0] % Self.wholeCheckBytes + 1
                expectation = .successUnlessShort
            }
        case .unmap:
            if model.mappingIndex(startingAt: registers[0]) != nil { registers[0] = invalidAddress() }
        case .portCreate, .notificationCreate:
            expectation = model.freeSlots > 0 ? .successUnlessShort : .failure
        case .memoryCreate:
            // Options: none, on demand, or (half the time) whatever came, which only 0 and 1 are.
            registers[2] = random.oneIn(2) ? registers[2] : random.below(2)
            if registers[0] >= 1 && registers[0] <= 1 << 20 {
                registers[1] = 0 // paid by this process
                guard mayCreateMemoryObject() else { return }
                expectation = registers[2] > 1 ? .failure : model.freeSlots > 0 ? .successUnlessShort : .failure
            }
        default:
            break
        }
        let outcome = caller.make(number, registers[0], registers[1], registers[2], registers[3], registers[4], registers[5],
                                  expect: expectation)
        guard outcome.succeeded else { return }
        switch call {
        case .portCreate: adopt(outcome.value1, kind: .port, rights: .newPort, pages: 0)
        case .notificationCreate: adopt(outcome.value1, kind: .notification, rights: .newNotification, pages: 0)
        case .memoryCreate:
            adopt(outcome.value1, kind: .memory, rights: .newMemory, pages: Int((alignUp(registers[0], to: pageSize) ?? 0) / pageSize))
        case .map: adoptMapping(outcome.value1, bytes: registers[0], writable: registers[1] == 1, object: -1)
        default: break
        }
    }

    // MARK: Episodes

    /// A port's receive right sent into its own queue, or two ports' into each other's, every
    /// other handle then closed. The kernel must refuse: a receive right never travels in a
    /// message (`accessDenied`). A kernel that took them kept the ports for ever, their queues
    /// holding the only ways in (the driver sees their heap blocks).
    mutating func cycleEpisode() {
        guard model.freeSlots >= 4 else { return }
        let count = random.oneIn(2) ? 2 : 1
        var ports = InlineArray<2, UInt64>(repeating: 0)
        var senders = InlineArray<2, UInt64>(repeating: 0)
        var made = 0
        while made < count {
            let created = caller.make(SystemCallNumber.portCreate.rawValue, expect: .successUnlessShort)
            guard created.succeeded else { break }
            let sender = caller.make(SystemCallNumber.handleDuplicate.rawValue, created.value1, Rights.send.rawValue,
                                     expect: .success)
            guard sender.succeeded else {
                _ = caller.make(SystemCallNumber.handleClose.rawValue, created.value1, expect: .success)
                model.markStale(created.value1)
                break
            }
            (ports[made], senders[made]) = (created.value1, sender.value1)
            made += 1
        }
        let message = UnsafeMutablePointer<UInt64>(bitPattern: UInt(messageArea))!
        var taken = InlineArray<2, Bool>(repeating: false)
        for index in 0..<made where made == count {
            let target = count == 2 ? senders[1 - index] : senders[index]
            for word in 0..<IPCMessageLayout.headerWords { message[word] = 0 }
            message[0] = newLabel()
            message[2] = 1
            message[5] = ports[index]
            taken[index] = caller.make(SystemCallNumber.send.rawValue, target, messageArea, expect: .error(.accessDenied)).succeeded
        }
        // Closed only now: a port closed before the other's send would make that send fail for
        // another reason.
        for index in 0..<made where !taken[index] {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, ports[index], expect: .success)
        }
        for index in 0..<made {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, senders[index], expect: .success)
            model.markStale(ports[index])
            model.markStale(senders[index])
        }
    }

    /// Runs memory out with mappings of halving sizes until even a page fails, makes the calls
    /// that allocate in the kernel meanwhile (ports, notifications, memory objects, duplicates,
    /// messages, a process, a thread), taking again before each round whatever other processes
    /// gave back, and gives everything back.
    mutating func exhaustionEpisode() {
        // The worker's own mappings go first: the kernel's limit on regions must not end the
        // episode before memory does.
        while model.mappingCount > 0 {
            let mapping = model.mappings[0]
            _ = caller.make(SystemCallNumber.unmap.rawValue, mapping.address, mapping.bytes, expect: .success)
            model.removeMapping(at: 0)
        }
        var held = InlineArray<40, (address: UInt64, bytes: UInt64)>(repeating: (0, 0))
        var count = 0
        for round in 0..<8 {
            let free = caller.make(SystemCallNumber.memoryStatistics.rawValue, expect: .success).value1 * pageSize
            var size: UInt64 = 1 << 30
            while size > free && size > pageSize { size /= 2 }
            while size >= pageSize && count < 40 {
                let outcome = caller.make(SystemCallNumber.map.rawValue, size, 1, expect: .successUnlessShort)
                if outcome.succeeded {
                    held[count] = (outcome.value1, size)
                    count += 1
                    // Only the first page: reading all of it would take seconds.
                    checkContents(outcome.value1, pageSize, 0, "exhaustion mapping")
                } else {
                    size /= 2
                }
            }
            if round == 0 {
                let left = caller.make(SystemCallNumber.memoryStatistics.rawValue, expect: .success).value1
                System.print("fuzz: seed \(options.seed) holds \(count) mappings; \(left) frames are left")
            }
            // A port needs a page of its own for its queue's payloads.
            for _ in 0..<4 { createPortOrNotification(.portCreate, .port) }
            createPortOrNotification(.notificationCreate, .notification)
            if !options.flags.contains(.noMemoryObjectsWhenOut) {
                let object = caller.make(SystemCallNumber.memoryCreate.rawValue, pageSize,
                                         expect: model.freeSlots > 0 ? .successUnlessShort : .failure)
                if object.succeeded { adopt(object.value1, kind: .memory, rights: .newMemory, pages: 1) }
            }
            duplicateHandle()
            sendMessage(call: false)
            sendMessage(call: true)
            // Room in the table for the next round's objects.
            for _ in 0..<4 where model.handleCount > 0 {
                _ = caller.make(SystemCallNumber.handleClose.rawValue, model.handles[0].value, expect: .success)
                model.closeHandle(at: 0)
            }
        }
        spawnChild()
        threadAction()
        for index in 0..<count {
            _ = caller.make(SystemCallNumber.unmap.rawValue, held[index].address, held[index].bytes, expect: .success)
            model.unmappedAddress = held[index].address
        }
    }

    /// Fills the handle table the server thread shares, then calls it: the server cannot take
    /// the call (no slot for its reply handle), which must fail with handleTableFull. A kernel
    /// that left such a call queued left this worker waiting for ever (the driver counts a hang).
    mutating func fullServerEpisode() {
        var extra = InlineArray<64, UInt64>(repeating: 0)
        var count = 0
        var full = false
        while count < 64 {
            let outcome = caller.make(SystemCallNumber.notificationCreate.rawValue, expect: .any)
            guard outcome.succeeded else {
                full = outcome.status == KernelError.handleTableFull.rawValue
                break
            }
            extra[count] = outcome.value1
            count += 1
        }
        let message = UnsafeMutablePointer<UInt64>(bitPattern: UInt(messageArea))!
        for word in 0..<IPCMessageLayout.headerWords { message[word] = 0 }
        message[0] = newLabel()
        _ = caller.make(SystemCallNumber.call.rawValue, serverPort, messageArea, expect: full ? .error(.handleTableFull) : .any)
        for index in 0..<count {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, extra[index], expect: .success)
            model.markStale(extra[index])
        }
    }

    /// Sleeping threads here and in four children, more than the kernel has deadlines for, and
    /// meanwhile waits with timeouts here: each must time out, or fail, but return.
    mutating func deadlineFlood() {
        var children = InlineArray<4, UInt64>(repeating: 0)
        let argument = FuzzOptions(role: .child, flags: [], calls: Child.flood, seed: 300).argument
        for index in 0..<4 {
            let outcome = spawn("fuzz", argument: argument, handle: 0, expect: .successUnlessShort)
            if outcome.succeeded {
                children[index] = outcome.value1
                processes += 1
            }
        }
        // The children's threads first: they sleep long enough for this flood to join them.
        _ = caller.make(SystemCallNumber.sleep.rawValue, 20_000_000, expect: .successUnlessShort)
        let bytes = UInt64(Flood.threads + 1) * Flood.stackBytes
        let mapped = caller.make(SystemCallNumber.map.rawValue, bytes, 1, expect: .successUnlessShort)
        var started = 0
        if mapped.succeeded {
            started = Flood.start(stacks: mapped.value1, sleeping: 100_000_000) { top, index in
                caller.make(SystemCallNumber.threadCreate.rawValue, user_thread_start_address(), top, index, Flood.body,
                            expect: .successUnlessShort).succeeded
            }
        }
        // Nothing will signal this notification: each wait must end by its timeout.
        let bell = caller.make(SystemCallNumber.notificationCreate.rawValue, expect: .successUnlessShort)
        if bell.succeeded {
            for _ in 0..<4 {
                _ = caller.make(SystemCallNumber.notificationWait.rawValue, bell.value1, random.between(1, Self.shortTimeout),
                                expect: .failure)
            }
            _ = caller.make(SystemCallNumber.handleClose.rawValue, bell.value1, expect: .success)
            model.markStale(bell.value1)
        }
        for _ in 0..<4 { receiveMessage() }
        if mapped.succeeded {
            while !Flood.finished(started) { pause() }
            _ = caller.make(SystemCallNumber.unmap.rawValue, mapped.value1, bytes, expect: .success)
            model.unmappedAddress = mapped.value1
        }
        for index in 0..<4 where children[index] != 0 {
            let outcome = caller.make(SystemCallNumber.wait.rawValue, children[index], expect: .success)
            if outcome.succeeded && (outcome.value2 != ExitReason.exited.rawValue
                                     || (outcome.value1 != 0 && outcome.value1 != System.outOfMemoryExitCode)) {
                Report.violation("flood child \(children[index]) ended with reason \(outcome.value2), code \(hex: outcome.value1)")
            }
        }
    }

    /// A child that unmaps ranges of its own that `map` never returned (its initial stack, its
    /// text): the kernel must refuse, and the child exits 0; if it does not, the child faults.
    mutating func probeEpisode() {
        guard model.childCount < Model.childCapacity else { return }
        let kind = random.below(UInt64(Child.probeKinds))
        let argument = FuzzOptions(role: .child, flags: [], calls: Child.probe, seed: kind).argument
        let outcome = spawn("fuzz", argument: argument, handle: 0, expect: .successUnlessShort)
        guard outcome.succeeded else { return }
        processes += 1
        model.addChild(ChildRecord(pid: outcome.value1, kind: .probe(kind)))
        endChild(at: model.childCount - 1)
    }
}

/// The body of a worker's extra threads (ThreadSlots): a few calls of their own, under the same
/// oracles, then the end, flagged so the stack can be unmapped.
@_cdecl("fuzz_thread_body")
func fuzzThreadBody(_ slot: UInt64) {
    let index = Int(slot)
    var caller = Caller(words: ThreadSlots.records + index * Caller.recordWords, seed: ThreadSlots.seeds[index], tag: "thread")
    var random = Random(seed: ThreadSlots.seeds[index] ^ 0x7468_7265_6164)
    let buffer = ThreadSlots.buffers + index * ThreadSlots.bufferWords
    let address = UInt64(UInt(bitPattern: buffer))
    for _ in 0..<ThreadSlots.calls[index] {
        // Waits on what the main thread pokes, several threads at once; any outcome is allowed
        // (another thread may be the notification's one waiter), but each must return.
        let timeout = random.between(1, 20_000_000)
        switch random.below(14) {
        case 10:
            _ = caller.make(SystemCallNumber.notificationWait.rawValue, ThreadSlots.bell, timeout)
        case 11:
            let outcome = caller.make(SystemCallNumber.receive.rawValue, ThreadSlots.port, address, timeout)
            if outcome.succeeded && (buffer[0] != ThreadSlots.pokeLabel || buffer[3] != ThreadSlots.pid || buffer[2] != 0) {
                Report.violation("a thread received label \(hex: buffer[0]) from \(buffer[3]) with \(buffer[2]) handles")
            }
        case 12:
            buffer[48] = ThreadSlots.port
            buffer[49] = ThreadSlots.bell
            let outcome = caller.make(SystemCallNumber.waitAny.rawValue, address + 384, 2, timeout)
            if outcome.succeeded && outcome.value1 > 1 { Report.violation("waitAny on two handles chose \(outcome.value1)") }
        case 0: _ = caller.make(SystemCallNumber.null.rawValue, expect: .success)
        case 1: _ = caller.make(SystemCallNumber.yield.rawValue, expect: .success)
        case 2:
            let outcome = caller.make(SystemCallNumber.threadID.rawValue, expect: .success)
            if outcome.value1 == ThreadSlots.mainThread { Report.violation("threadID on another thread says \(outcome.value1), the main thread's") }
        case 3:
            let outcome = caller.make(SystemCallNumber.processID.rawValue, expect: .success)
            if outcome.value1 != ThreadSlots.pid { Report.violation("processID on another thread says \(outcome.value1)") }
        case 4: _ = caller.make(SystemCallNumber.sleep.rawValue, random.below(UInt64(1_000_000)), expect: .successUnlessShort)
        case 5: _ = caller.make(SystemCallNumber.handleClose.rawValue, ThreadSlots.staleHandle(random.below(32)), expect: .failure)
        case 6: _ = caller.make(SystemCallNumber.notificationWait.rawValue, ThreadSlots.staleHandle(random.below(32)),
                                random.below(UInt64(1_000_000)), expect: .failure)
        case 7: _ = caller.make(random.between(UInt64(SystemCallNumber.allCases.count), 1 << 20), random.next(), random.next(),
                                expect: .error(.unknownSystemCall))
        case 8: _ = caller.make(SystemCallNumber.debugWrite.rawValue, 0xFFFF_0000_4020_0000 + random.below(UInt64(4096)),
                                random.between(1, 100), expect: .failure)
        case 9: _ = caller.make(SystemCallNumber.memoryStatistics.rawValue, expect: .success)
        default: _ = caller.make(SystemCallNumber.memoryAccount.rawValue, expect: .success)
        }
    }
    fuzz_finish_thread(ThreadSlots.done + index, UInt64(caller.count) + 1)
}
