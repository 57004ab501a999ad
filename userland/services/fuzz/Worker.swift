// A worker: `calls` system calls chosen from its seed, against the objects it creates along the
// way (ports, notifications, memory objects, mappings, threads, child processes). Most calls are
// typed: a model-chosen mix of real objects and hostile values (Hostile.swift), with the model
// saying whether the call must succeed or must fail. The rest are raw: random numbers, known or
// not, with random registers. A few episodes recreate situations the kernel once got wrong, each
// of which the flags can leave out. The exit code is the number of violations.

struct Worker {
    /// Writable pages for message buffers and arrays of handles; the page after them is never
    /// mapped (`map` leaves a gap after every mapping), so buffers near the end straddle into it.
    static let messageAreaBytes: UInt64 = 4 * pageSize
    /// A port queues this many messages before `queueFull` (kernel/core/MessagePort.swift).
    static let queueCapacity = 16
    /// How long a wait that must time out may take at most (and at least a tick).
    static let shortTimeout: UInt64 = 2_000_000

    let options: FuzzOptions
    var random: Random
    var caller: Caller
    let model = Model()
    let pid: UInt64
    let parent: UInt64
    let mainThread: UInt64
    let messageArea: UInt64
    /// A message (label `readOnlyLabel`, 16 payload bytes, no handles) seen through a read-only
    /// mapping of a memory object that is also mapped writable at `readOnlyBacking`.
    let readOnlyMessage: UInt64
    let readOnlyBacking: UInt64
    static let readOnlyLabel: UInt64 = 0x0F0F_0000_0000_0001
    /// A label bit that asks a server (thread or child) to close the reply handle unanswered.
    static let dropLabel: UInt64 = 1 << 62
    /// Where programs are linked (docs/SYSCALLS.md): the first page of text.
    static let textStart: UInt64 = 0x40_0000
    /// The port the server thread answers on (every right; outside the model).
    let serverPort: UInt64
    var nextLabel: UInt64
    var processes: UInt64 = 1
    var lastTicks: UInt64 = 0
    let frequency: UInt64
    /// Call counts at which the episodes happen (0: never).
    var exhaustionAt: UInt64 = 0
    var fullServerAt: UInt64 = 0
    var floodAt: UInt64 = 0

    /// The exit code of a worker that could not set itself up: memory was out (another
    /// worker's exhaustion episode, say), so the driver runs it again later.
    static let setUpFailed: UInt64 = 1 << 16

    static func run(_ options: FuzzOptions) -> UInt64 {
        guard var worker = Worker(options) else {
            System.print("fuzz: worker with seed \(options.seed) could not set itself up")
            return setUpFailed
        }
        worker.fuzz()
        worker.finish()
        return Report.violations
    }

    init?(_ options: FuzzOptions) {
        self.options = options
        Report.seed = options.seed
        Report.tracing = options.flags.contains(.trace)
        random = Random(seed: options.seed)
        caller = Caller(words: Caller.allocateRecords(1), seed: derivedSeed(options.seed, 1), tag: "main", publishes: true)
        let identity = System.processID
        pid = identity.value
        parent = System.parentID.value
        mainThread = System.threadID
        frequency = System.clock.frequency
        nextLabel = (options.seed & 0xFFFF) << 40 | 1
        if let page = System.startHandle, let status = try? IPC.map(page, writable: true) {
            Report.statusPage = status.assumingMemoryBound(to: UInt64.self)
            model.reserve(page.value)
        }
        // What the loader that started this worker put in its start block stays outside the
        // model; the ramdisk `spawn` loads from is mapped now, before the model knows any mapping.
        if let ramdisk = ProgramStart.handle(.ramdisk) { model.reserve(ramdisk.value) }
        if let own = ProgramStart.handle(.ownProcess) { model.reserve(own.value) }
        // The loader keeps a handle of its own to the ramdisk: outside the model too, so it is
        // made now, and a worker that cannot make it does not start.
        guard System.prepareSpawn() else { return nil }
        if let loaderCopy = System.spawnHandle { model.reserve(loaderCopy.value) }
        guard let area = try? System.map(bytes: Self.messageAreaBytes, access: .write),
              let backing = try? IPC.createMemory(bytes: pageSize),
              let writable = try? IPC.map(backing, writable: true),
              let readable = try? IPC.map(backing, writable: false),
              let port = try? IPC.createPort() else { return nil }
        messageArea = UInt64(UInt(bitPattern: area))
        readOnlyBacking = UInt64(UInt(bitPattern: writable))
        readOnlyMessage = UInt64(UInt(bitPattern: readable))
        serverPort = port.value
        model.reserve(backing.value)
        model.reserve(port.value)
        let words = writable.assumingMemoryBound(to: UInt64.self)
        words[0] = Self.readOnlyLabel
        words[1] = 16
        guard let threadBell = try? IPC.createNotification(), let threadPort = try? IPC.createPort() else { return nil }
        model.reserve(threadBell.value)
        model.reserve(threadPort.value)
        ThreadSlots.prepare(stale: model.stale, pid: pid, mainThread: mainThread, bell: threadBell.value,
                            port: threadPort.value)
        Flood.prepare()
        guard ServerThread.start(port: port.value, seed: derivedSeed(options.seed, 2)) else { return nil }
        let calls = options.calls
        // Once each, late, because they can end the campaign early: memory exhaustion has
        // panicked the kernel, and a call to a full server or a wait among too many deadlines has
        // never returned.
        if !options.flags.contains(.noExhaustion) && calls >= 1000 { exhaustionAt = calls * 3 / 4 + random.below(calls / 10) }
        if !options.flags.contains(.noFullServer) && calls >= 1000 { fullServerAt = calls * 9 / 10 + random.below(calls / 20) }
        if !options.flags.contains(.noDeadlineFlood) && calls >= 1000 { floodAt = calls * 11 / 20 + random.below(calls / 10) }
    }

    mutating func fuzz() {
        let target = UInt64(options.calls)
        while totalCalls < target {
            step()
            reapThreads(waiting: false)
            if exhaustionAt > 0 && totalCalls >= exhaustionAt {
                exhaustionAt = 0
                exhaustionEpisode()
            }
            if fullServerAt > 0 && totalCalls >= fullServerAt {
                fullServerAt = 0
                fullServerEpisode()
            }
            if floodAt > 0 && totalCalls >= floodAt {
                floodAt = 0
                deadlineFlood()
            }
            publish()
        }
    }

    /// Calls made so far by every thread of this worker.
    var totalCalls: UInt64 { UInt64(caller.count) + ThreadSlots.finishedCalls + ServerThread.calls }

    func publish() {
        guard let page = Report.statusPage else { return }
        page[Driver.StatusWord.calls.rawValue] = totalCalls
        page[Driver.StatusWord.processes.rawValue] = processes
    }

    /// Ends the campaign cleanly: children reaped, threads finished, everything closed and
    /// unmapped, each step checked like any other call.
    mutating func finish() {
        while model.childCount > 0 { endChild(at: 0) }
        reapThreads(waiting: true)
        while model.mappingCount > 0 {
            let mapping = model.mappings[0]
            _ = caller.make(SystemCallNumber.unmap.rawValue, mapping.address, mapping.bytes, expect: .success)
            model.removeMapping(at: 0)
        }
        while model.handleCount > 0 {
            let value = model.handles[0].value
            _ = caller.make(SystemCallNumber.handleClose.rawValue, value, expect: .success)
            model.closeHandle(at: 0)
        }
        publish()
    }

    /// One action, chosen by weight.
    mutating func step() {
        let roll = random.below(1000)
        switch roll {
        case 0..<60: createObject()
        case 60..<110: closeHandle()
        case 110..<160: duplicateHandle()
        case 160..<280: sendMessage(call: false)
        case 280..<370: receiveMessage()
        case 370..<430: sendMessage(call: true)
        case 430..<480: signalNotification()
        case 480..<530: waitNotification()
        case 530..<570: waitAny()
        case 570..<610: mapMemory()
        case 610..<650: unmapMemory()
        case 650..<675: memoryObject()
        case 675..<690: memoryCopy()
        case 690..<710: checkMappings()
        case 710..<735: threadAction()
        case 735..<760: childAction()
        case 760..<810: information()
        case 810..<900: rawCall()
        case 900..<920: debugWrite()
        case 920..<945: hostileReply()
        case 945..<960: deviceCalls()
        case 960..<970: sleepOrYield()
        case 970..<975: pokeThreads()
        case 975..<990: if !options.flags.contains(.noCycles) { cycleEpisode() } else { information() }
        default: if !options.flags.contains(.noStrayUnmap) && random.oneIn(3) { probeEpisode() } else { information() }
        }
    }

    // MARK: Picking

    /// A live handle (index in the model) of `kind` that holds `rights`, if there is one.
    mutating func pickHandle(_ kind: ObjectKind?, rights: Rights = [], service: Service? = .worker) -> Int? {
        guard model.handleCount > 0 else { return nil }
        let start = random.below(model.handleCount)
        for offset in 0..<model.handleCount {
            let index = (start + offset) % model.handleCount
            let handle = model.handles[index]
            let object = model.objects[handle.object]
            if let kind, object.kind != kind { continue }
            if let service, object.kind == .port, object.service != service { continue }
            if handle.rights.isSuperset(of: rights) { return index }
        }
        return nil
    }

    /// Where a call expects a message, and what is there.
    enum Buffer: Equatable {
        /// In the message area: writable, 8-byte aligned.
        case valid(UInt64)
        /// The message area, off by 1-7 bytes.
        case unaligned(UInt64)
        case invalid(UInt64)
        /// `readable` bytes before the unmapped page after the message area.
        case straddling(UInt64, readable: UInt64)
        /// The read-only view of the prepared message.
        case readOnly
        /// This program's text: readable, not writable, contents unknown to the model.
        case text

        var address: UInt64 {
            switch self {
            case .valid(let address), .unaligned(let address), .invalid(let address): return address
            case .straddling(let address, _): return address
            case .readOnly, .text: return 0
            }
        }
    }

    mutating func pickBuffer(hostile: Bool) -> Buffer {
        let slot = messageArea + UInt64(random.below(8)) * 512
        guard hostile else { return .valid(slot) }
        switch random.below(6) {
        case 0: return .unaligned(slot + random.between(1, 7))
        case 1: return .invalid(invalidAddress())
        case 2:
            let choices: InlineArray<7, UInt64> = [8, 64, 72, 80, 136, 200, 320]
            let readable = choices[random.below(7)]
            return .straddling(messageArea + Self.messageAreaBytes - readable, readable: readable)
        case 3: return .readOnly
        case 4: return .text
        default: return .valid(slot)
        }
    }

    func address(of buffer: Buffer) -> UInt64 {
        switch buffer {
        case .readOnly: return readOnlyMessage
        case .text: return Self.textStart
        default: return buffer.address
        }
    }

    mutating func newLabel() -> UInt64 {
        nextLabel += 1
        return nextLabel
    }

    /// A payload byte of the message with `seed`.
    static func payloadByte(_ seed: UInt64, _ index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: seed >> UInt64(index % 7 * 8) &+ UInt64(index) &* 31)
    }

    static func roundedLength(_ length: UInt64) -> UInt64 { (length + 7) & ~7 }

    // MARK: Simple calls

    mutating func information() {
        switch random.below(10) {
        case 0: _ = caller.make(SystemCallNumber.null.rawValue, expect: .success)
        case 1:
            let outcome = caller.make(SystemCallNumber.clock.rawValue, expect: .success)
            if outcome.succeeded && (outcome.value1 < lastTicks || outcome.value2 != frequency) {
                Report.violation("clock went from \(lastTicks) to \(outcome.value1) ticks at \(outcome.value2) Hz (\(frequency) Hz at start)")
            }
            lastTicks = outcome.value1
        case 2: _ = caller.make(SystemCallNumber.yield.rawValue, expect: .success)
        case 3:
            let outcome = caller.make(SystemCallNumber.processID.rawValue, expect: .success)
            if outcome.succeeded && (outcome.value1 != pid || outcome.value2 != parent) {
                Report.violation("processID says \(outcome.value1) child of \(outcome.value2), not \(pid) child of \(parent)")
            }
        case 4:
            let outcome = caller.make(SystemCallNumber.threadID.rawValue, expect: .success)
            if outcome.succeeded && outcome.value1 != mainThread {
                Report.violation("threadID says \(outcome.value1) on the main thread \(mainThread)")
            }
        case 5:
            let outcome = caller.make(SystemCallNumber.memoryStatistics.rawValue, expect: .success)
            if outcome.succeeded && outcome.value1 > outcome.value2 {
                Report.violation("memoryStatistics: \(outcome.value1) frames free of \(outcome.value2)")
            }
        case 6:
            let outcome = caller.make(SystemCallNumber.processStatistics.rawValue, expect: .success)
            var modelled: UInt64 = 0
            for index in 0..<model.mappingCount {
                modelled += alignUp(model.mappings[index].bytes, to: pageSize) ?? 0
            }
            if outcome.succeeded && (outcome.value2 < modelled || outcome.value1 < 2) {
                Report.violation("processStatistics: \(outcome.value1) processes, \(outcome.value2) bytes mapped, at least \(modelled) expected")
            }
        case 7:
            let outcome = caller.make(SystemCallNumber.memoryAccount.rawValue, expect: .success)
            // This worker runs without a limit of its own, and holds at least its own pages.
            if outcome.succeeded && (outcome.value2 != UInt64.max || outcome.value1 == 0) {
                Report.violation("memoryAccount: \(outcome.value1) bytes used, limit \(hex: outcome.value2)")
            }
        case 8:
            let outcome = caller.make(SystemCallNumber.kernelObjects.rawValue, expect: .success)
            if outcome.succeeded && (outcome.value1 == 0 || outcome.value2 == 0) {
                Report.violation("kernelObjects: \(outcome.value1) objects, \(outcome.value2) bytes charged")
            }
        default: _ = caller.make(SystemCallNumber.kernelStatistics.rawValue, expect: .success)
        }
    }

    mutating func sleepOrYield() {
        if random.oneIn(2) {
            _ = caller.make(SystemCallNumber.yield.rawValue, expect: .success)
        } else {
            // A sleep needs a pending deadline, and the kernel keeps a limited number of them.
            _ = caller.make(SystemCallNumber.sleep.rawValue, random.oneIn(3) ? 0 : random.below(Self.shortTimeout / 2),
                            expect: .successUnlessShort)
        }
    }

    mutating func debugWrite() {
        // Nothing reaches the console: either nothing is readable from the first byte, or the
        // length is 0. (A straddling buffer shorter than the kernel's 256-byte pieces fails
        // before its first piece is written.)
        switch random.below(4) {
        case 0:
            _ = caller.make(SystemCallNumber.debugWrite.rawValue, invalidAddress(), edgeLength(limit: 1 << 20) | 1,
                            expect: .failure)
        case 1:
            let readable = random.between(1, 200)
            _ = caller.make(SystemCallNumber.debugWrite.rawValue, messageArea + Self.messageAreaBytes - readable,
                            readable + random.between(1, 55), expect: .failure)
        case 2:
            _ = caller.make(SystemCallNumber.debugWrite.rawValue, messageArea + random.below(UInt64(4096)), 0, expect: .success)
        default:
            _ = caller.make(SystemCallNumber.debugWrite.rawValue, messageArea, (1 << 20) + random.between(1, 1 << 20),
                            expect: .failure)
        }
    }

    mutating func deviceCalls() {
        let someHandle = model.handleCount > 0 && random.oneIn(2) ? model.handles[random.below(model.handleCount)].value
                                                                    : foreignHandle()
        switch random.below(3) {
        case 0:
            // Workers hold no device-access capability: nothing opens.
            _ = caller.make(SystemCallNumber.deviceOpen.rawValue, someHandle, random.below(UInt64(4)), expect: .failure)
        case 1:
            _ = caller.make(SystemCallNumber.interruptBind.rawValue, someHandle,
                            model.handleCount > 0 ? model.handles[random.below(model.handleCount)].value : foreignHandle(),
                            expect: .failure)
        default:
            _ = caller.make(SystemCallNumber.interruptAcknowledge.rawValue, someHandle, expect: .failure)
        }
    }
}
