// process-manager: starts programs from the initial ramdisk for its clients (with the program
// loader), tells them when those end, ends them on request, lists them, and supervises services:
// programs restarted by policy, with a growing delay and a cap on how often. It serves the port
// whose receive right its start block gives under `.service` (programs, lists, service
// endpoints) and the one under `.serviceControl` (starting, stopping and crashing services: who
// holds a send right to it has that authority; nobody's process id does). The ramdisk comes under
// `.ramdisk`, and a send right for registering service names, if any, under `.registration`. The
// protocol is in userland/runtime/ProcessManagerProtocol.swift; docs/ARCHITECTURE.md, "Process
// manager", gives the policy. A client's request can be refused, never end this server.

@main
struct ProcessManagerService {
    static func main() {
        guard let port = ProgramStart.handle(.service) else { System.panic("process-manager: no service port") }
        // Its heap, mapped now: what it keeps grows little after its start, and a refusal of
        // memory later must fail a request, not end the server. (Asked again while refused.)
        for _ in 0..<100 where (try? UserHeap.reserve(pages: 48)) == nil {}
        guard let ramdisk = ProgramStart.handle(.ramdisk) else { System.panic("process-manager: no ramdisk") }
        do throws(KernelError) {
            Manager.loader = try ProgramLoader(ramdisk: ramdisk)
            Manager.bell = try IPC.createNotification()
        } catch {
            System.panic("process-manager: cannot start: \(error)")
        }
        Manager.port = port
        Manager.controlPort = ProgramStart.handle(.serviceControl) ?? .none
        Manager.registration = ProgramStart.handle(.registration)
        Manager.ownSendRight = ProgramStart.handle(.processManager)
        Manager.serve()
    }
}

/// A process this server started: for a client, or as a service's instance. The client holds
/// the process handle it was given; this server only watches for the end.
struct Slot {
    var process = Handle.none
    var id: UInt64 = 0
    /// Who asked for it (for `list`; no authority comes of it).
    var requester: UInt64 = 0
    /// The client whose share of the client slots it counts against (`Manager.share(of:)`).
    var share: UInt64 = 0
    var name = InlineArray<24, UInt8>(repeating: 0)
    var nameLength = 0
    var state = ManagedState.running
    var reason = ExitReason.exited
    var code: UInt64 = 0
    /// The service this is an instance of; `Slot.client` for a program a client asked for, and
    /// `Slot.forgotten` for the instance of a service stopped, until its end is collected.
    var service = Slot.client
    static let client = -1
    static let forgotten = -2
    var memoryLimit: UInt64 = 0
    var inUse: Bool { id != 0 }
}

/// A supervised service: what to start, how to restart it, and its current instance.
struct Service {
    /// Who started it (for `list`).
    var requester: UInt64 = 0
    var name = InlineArray<24, UInt8>(repeating: 0)
    var nameLength = 0
    var program = InlineArray<64, UInt8>(repeating: 0)
    var programLength = 0
    var text = InlineArray<192, UInt8>(repeating: 0)
    var textLength = 0
    var argument: UInt64 = 0
    var memoryLimit: UInt64 = 0
    var policy = RestartPolicy.never
    /// Handles for every instance (duplicated at each start), with the rights to duplicate them with.
    var handles = StartHandles()
    var rights = InlineArray<4, Rights>(repeating: [])
    /// A send right to the current instance's port.
    var port = Handle.none
    /// Its private port, if started with one (`ServiceOptions.privatePort`): made once, every
    /// right held here, so that it outlives its instances; each gets a receive right.
    var privatePort = Handle.none
    var slot = -1
    var lastID: UInt64 = 0
    var state = ManagedState.stopped
    var restarts = 0
    /// When the last `Supervision.maximumRestarts` restarts happened (ticks), oldest first.
    var recent = InlineArray<5, UInt64>(repeating: 0)
    var recentCount = 0
    var nextDelay = Supervision.firstDelay
    var lastDelay: UInt64 = 0
    var due: UInt64 = 0
    var startedAt: UInt64 = 0
    /// Its instance was ended on request (`crashService`): start it again at once, uncounted.
    var crashRequested = false
    /// The next restart is one `crashService` asked for (no delay), or the retry of a start
    /// refused for want of room (`tryStart`): outside the rate cap either way.
    var uncountedRestart = false
    /// Its last start was refused for want of room, and said so; the retries say nothing more.
    var startDeferred = false
    var inUse: Bool { nameLength != 0 }
}

/// The restart policy's numbers (docs/ARCHITECTURE.md, "Process manager").
enum Supervision {
    /// The first restart waits this long (ms); each further one twice as long, up to `longestDelay`.
    static let firstDelay: UInt64 = 10
    static let longestDelay: UInt64 = 1000
    /// More than `maximumRestarts` restarts within `window` ms and the service is left stopped;
    /// an instance that ran for `window` ms starts the delays afresh.
    static let maximumRestarts = 5
    static let window: UInt64 = 10_000
}

enum Manager {
    /// Every slot is a bit of `bell` (64 at most); services take one each for their instance.
    static let slotCapacity = 48
    /// At most this many slots hold processes clients asked for (until collected): each holds a
    /// handle here, and a client that could take them all would leave no room in this server's
    /// table (64 handles) for the service instances it restarts or the requests it answers.
    static let clientSlotCapacity = 24
    /// At most this many of them for one client (by the sender id the kernel reports, its
    /// programs started here counting as the client: `share(of:)`), so that one client, or its
    /// children left running after it ended, cannot take them all.
    static let slotsPerClient = clientSlotCapacity / 2
    /// Slots in use by processes clients asked for.
    nonisolated(unsafe) static var clientSlotsInUse = 0
    /// As many as a manifest may name.
    static let serviceCapacity = 32
    nonisolated(unsafe) static var loader: ProgramLoader!
    nonisolated(unsafe) static var port = Handle.none
    /// Where the requests that start, stop and crash services arrive (none: nobody may).
    nonisolated(unsafe) static var controlPort = Handle.none
    /// Every started process signals bit `slot` here when it ends.
    nonisolated(unsafe) static var bell = Handle.none
    nonisolated(unsafe) static var registration: Handle?
    /// A send right to this server's own port, whose copies every program it starts gets
    /// (`.processManager`).
    nonisolated(unsafe) static var ownSendRight: Handle?
    nonisolated(unsafe) static var slots = [Slot](repeating: Slot(), count: slotCapacity)
    nonisolated(unsafe) static var services = [Service](repeating: Service(), count: serviceCapacity)
    /// A reading of the clock from the start, for its frequency.
    nonisolated(unsafe) static var clock = ClockReading(ticks: 0, frequency: 1)

    static var now: UInt64 { System.clock.ticks }
    static func ticks(milliseconds: UInt64) -> UInt64 { clock.ticks(milliseconds: milliseconds) }

    // MARK: The loop

    /// Public requests taken in a row before the control port gets a turn.
    static let publicRequestsPerTurn = 8

    /// Answers each request with the wait for the next (the IPC fast path); when none is queued,
    /// takes one from the control port, or else collects ended processes, restarts services that
    /// are due and waits for a request, an end or the next restart. After
    /// `publicRequestsPerTurn` public requests in a row the control port is looked at first, so
    /// that a client keeping the public queue full (anyone may send there) cannot hold back
    /// init's and the shell's requests to start, stop and crash services.
    static func serve() {
        clock = System.clock
        var message = IPCMessage()
        var answer: Handle?
        var publicInARow = 0
        while true {
            if publicInARow >= publicRequestsPerTurn && controlPort != .none {
                publicInARow = 0
                if let pending = answer { try? IPC.reply(pending, &message) }
                answer = nil
                if (try? IPC.receive(controlPort, into: &message, timeout: 0)) != nil {
                    answer = handle(&message, control: true)
                    collectEnds()
                    restartDue()
                    continue
                }
            }
            do throws(KernelError) {
                try IPC.replyAndReceive(answer, port, &message, timeout: 0)
                answer = handle(&message, control: false)
                publicInARow += 1
            } catch {
                answer = nil
                publicInARow = 0
                if controlPort != .none, (try? IPC.receive(controlPort, into: &message, timeout: 0)) != nil {
                    answer = handle(&message, control: true)
                } else {
                    collectEnds()
                    restartDue()
                    waitForWork()
                    continue
                }
            }
            collectEnds()
            restartDue()
        }
    }

    static func waitForWork() {
        var timeout = UInt64.max
        let time = now
        for service in services where service.inUse && service.state == .restartPending {
            let ticks = service.due > time ? service.due - time : 0
            let nanoseconds = ClockReading.convert(ticks, frequency: clock.frequency, perSecond: 1_000_000_000)
            timeout = min(timeout, nanoseconds == .max ? .max : nanoseconds + 1)
        }
        var handles = InlineArray<3, UInt64>(repeating: 0)
        handles[0] = port.value
        handles[1] = bell.value
        handles[2] = controlPort.value
        let count: UInt64 = controlPort == .none ? 2 : 3
        _ = try? withUnsafeMutablePointer(to: &handles) { words throws(KernelError) in
            try System.invoke(SystemCall.WaitAny(handles: UserAddress(words), count: count, timeout: timeout))
        }
    }

    // MARK: Requests

    /// Handles one request in `message`, which came on the control port if `control`, and
    /// leaves the reply there; returns the reply capability to answer (nil: a plain send).
    static func handle(_ message: inout IPCMessage, control: Bool) -> Handle? {
        var attached = InlineArray<4, Handle>(repeating: .none)
        let count = min(message.handleCount, IPCMessageLayout.maximumHandles)
        for index in 0..<count { attached[index] = message.handle(index) }
        guard let reply = message.replyHandle else {
            for index in 0..<count { try? IPC.close(attached[index]) }
            return nil
        }
        var taken = false
        do throws(KernelError) {
            let request = ProcessManagerRequest(rawValue: message.label)
            if let request, request.needsControl, !control { throw .accessDenied }
            switch request {
            case .spawn: try spawn(&message, attached, count, control: control, taken: &taken)
            case .list: list(&message)
            case .startService: try startService(&message, attached, count, taken: &taken)
            case .serviceEndpoint: try serviceEndpoint(&message)
            case .stopService: try stopService(&message)
            case .crashService: try crashService(&message)
            case .endProgram: try endProgram(&message)
            case nil: throw .invalidArgument
            }
        } catch {
            clear(&message, label: error.rawValue)
        }
        if !taken { for index in 0..<count { try? IPC.close(attached[index]) } }
        return reply
    }

    static func clear(_ message: inout IPCMessage, label: UInt64) {
        message.label = label
        message.length = 0
        message.handleCount = 0
    }

    /// Splits attached handles by their tags (byte i of `tags` for handle i): the start handle
    /// (tag 0, at most one) and tagged ones (valid `StartTag`s).
    static func sortHandles(_ attached: InlineArray<4, Handle>, _ count: Int,
                            tags: UInt64) throws(KernelError) -> (start: Handle?, tagged: StartHandles) {
        var start: Handle?
        var tagged = StartHandles()
        for index in 0..<count {
            let tag = tags >> (8 * UInt64(index)) & 0xFF
            if tag == 0 {
                guard start == nil else { throw .invalidArgument }
                start = attached[index]
            } else {
                guard let known = StartTag(rawValue: tag) else { throw .invalidArgument }
                tagged.append(known, attached[index])
            }
        }
        guard tags >> (8 * UInt64(count)) == 0 else { throw .invalidArgument }
        return (start, tagged)
    }

    static func spawn(_ message: inout IPCMessage, _ attached: InlineArray<4, Handle>, _ count: Int, control: Bool,
                      taken: inout Bool) throws(KernelError) {
        let argument = message.word(atByte: 0)
        let memoryLimit = message.word(atByte: 8)
        let options = message.word(atByte: 16)
        let (start, attachedTagged) = try sortHandles(attached, count, tags: message.word(atByte: 24))
        let nameLength = message.word(atByte: 32)
        let textLength = message.word(atByte: 40)
        guard nameLength >= 1, nameLength <= 64, textLength <= 208, options == 0,
              message.length == 48 + Int(nameLength + textLength) else { throw .invalidArgument }
        // The client pays: its own process handle (tag `.ownProcess`, the account right) is
        // where the program's account hangs, so the client's limit bounds what it starts here.
        // It stays here; the program gets its own. Only on the control port may a spawn go
        // without one (init has no handle to itself): the program then runs on this server's
        // account, as services do.
        var tagged = StartHandles()
        var payer: Handle?
        for index in 0..<attachedTagged.count {
            if attachedTagged.tag(index) == StartTag.ownProcess.rawValue {
                guard payer == nil else { throw .invalidArgument }
                payer = attachedTagged.handle(index)
            } else {
                tagged.appendRaw(attachedTagged.tag(index), attachedTagged.handle(index))
            }
        }
        guard payer != nil || control else { throw .accessDenied }
        var name = InlineArray<64, UInt8>(repeating: 0)
        var text = InlineArray<208, UInt8>(repeating: 0)
        for index in 0..<Int(nameLength) { name[index] = message[byte: 48 + index] }
        for index in 0..<Int(textLength) { text[index] = message[byte: 48 + Int(nameLength) + index] }
        let share = share(of: message.sender.value)
        // Programs that ended may not be collected yet (their bell rings behind this request, and
        // a client that waited for one's end may ask at once for the next): before refusing, look.
        if !hasClientSlot(forShare: share) {
            collectEnds()
            guard hasClientSlot(forShare: share) else { throw .queueFull }
        }
        // The client's authority over the child is the handle it gets back, made first so that
        // a spawn that cannot answer with one is undone.
        let slot: Int
        do throws(KernelError) {
            slot = try withBytes(&name, Int(nameLength)) { program throws(KernelError) in
                try withBytes(&text, Int(textLength)) { arguments throws(KernelError) in
                    try launch(program, argument: argument, start: start, handles: tagged, arguments: arguments,
                               memoryLimit: memoryLimit, account: payer ?? .none, service: Slot.client, taken: &taken)
                }
            }
        } catch {
            // Not taken, it is closed with the other attached handles.
            if taken, let payer { try? IPC.close(payer) }
            throw error
        }
        if let payer { try? IPC.close(payer) }
        slots[slot].requester = message.sender.value
        slots[slot].share = share
        let handle: Handle
        do throws(KernelError) {
            handle = try IPC.duplicate(slots[slot].process, rights: [.wait, .control, .transfer])
        } catch {
            // Its end is collected like any other.
            try? ProcessHandles.kill(slots[slot].process)
            throw error
        }
        clear(&message, label: 0)
        message.setWord(atByte: 0, slots[slot].id)
        message.length = 8
        message.attach(handle)
    }

    /// The client whose share a request from `sender` counts against: the sender's own, unless it
    /// is a program started here for a client, whose share it is then (kept with its slot, so it
    /// holds after that client ends). Else each program a client started here would bring half
    /// the client slots anew, and a client's children together could take them all.
    static func share(of sender: UInt64) -> UInt64 {
        // Only as far as the last client slot in use.
        var clientSlotsLeft = clientSlotsInUse
        var index = 0
        while clientSlotsLeft > 0 && index < slots.count {
            if slots[index].service == Slot.client && slots[index].inUse {
                if slots[index].id == sender { return slots[index].share }
                clientSlotsLeft -= 1
            }
            index += 1
        }
        return sender
    }

    static func withBytes<Size: BitwiseCopyable, Value>(_ storage: inout Size, _ count: Int,
                                                        _ body: (UnsafeRawBufferPointer) throws(KernelError) -> Value)
        throws(KernelError) -> Value {
        try withUnsafeBytes(of: &storage) { bytes throws(KernelError) in
            try body(UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        }
    }

    /// Whether a client whose programs count against `share` may have one more. Counted only when
    /// the clients together hold a client's share: no one can hold it before.
    @inline(__always)
    static func hasClientSlot(forShare share: UInt64) -> Bool {
        clientSlotsInUse < clientSlotCapacity
            && (clientSlotsInUse < slotsPerClient
                || slots.count(where: { $0.inUse && $0.service == Slot.client && $0.share == share }) < slotsPerClient)
    }

    /// Starts `program` in a free slot (one whose process ended and was never waited for is
    /// reused if none is free) and asks for its end to ring `bell`. Returns the slot.
    static func launch(_ program: UnsafeRawBufferPointer, argument: UInt64, start: Handle?, handles: StartHandles,
                       arguments: UnsafeRawBufferPointer, memoryLimit: UInt64, account: Handle = .none, service: Int,
                       taken: inout Bool) throws(KernelError) -> Int {
        guard let slot = freeSlot() else { throw .queueFull }
        guard let file = loader.file(named: program) else { throw .notFound }
        // The system's own services, where the start block has room: this server, the name
        // service and the memory manager (not to the name service, nor to the memory manager
        // itself, whose own heap must not wait for it).
        var given = handles
        var added = StartHandles()
        func add(_ tag: StartTag, _ port: Handle?) {
            guard let port, given.count + 1 < ProgramStart.maximumHandles,
                  let copy = try? IPC.duplicate(port, rights: [.send, .duplicate, .transfer]) else { return }
            given.append(tag, copy)
            added.append(tag, copy)
        }
        let role = SystemRole(program: program)
        add(.processManager, ownSendRight)
        if role == .other || role == .memoryManager { add(.names, runningPort(of: .names)) }
        if role == .other { add(.memoryManager, runningPort(of: .memoryManager)) }
        // On failure the caller closes the handles: those the loader already moved are stale by then.
        let process: Handle
        let id: UInt64
        do throws(KernelError) {
            (process, id) = try ProgramLoader.spawn(file: file, name: program, argument: argument, startHandle: start,
                                                    handles: given, arguments: arguments, memoryLimit: memoryLimit,
                                                    account: account, sharing: loader.sharedSource)
        } catch {
            added.closeAll()
            throw error
        }
        taken = true
        do throws(KernelError) {
            try ProcessHandles.notify(bell, bits: 1 << UInt64(slot), whenEnds: process)
        } catch {
            ProcessHandles.discard(process)
            throw error
        }
        var entry = Slot()
        entry.process = process
        entry.id = id
        for byte in program where entry.nameLength < 24 {
            entry.name[entry.nameLength] = byte
            entry.nameLength += 1
        }
        entry.service = service
        entry.memoryLimit = memoryLimit
        slots[slot] = entry
        if service == Slot.client { clientSlotsInUse += 1 }
        return slot
    }

    static func freeSlot() -> Int? { slots.firstIndex { !$0.inUse } }

    static func list(_ message: inout IPCMessage) {
        let first = message.length == 8 ? Int(clamping: message.word(atByte: 0)) : 0
        var entries = InlineArray<4, ProcessEntry>(repeating: ProcessEntry())
        var index = 0
        var count = 0
        func add(_ entry: ProcessEntry) {
            if index >= first && count < ProcessEntry.perReply {
                entries[count] = entry
                count += 1
            }
            index += 1
        }
        for slot in slots where slot.inUse && slot.service == Slot.client {
            var entry = ProcessEntry()
            entry.id = slot.id
            entry.requester = slot.requester
            entry.memoryLimit = slot.memoryLimit
            entry.state = slot.state
            entry.name = slot.name
            entry.nameLength = slot.nameLength
            if slot.state == .running { describeRunning(slot.process, &entry) }
            add(entry)
        }
        for service in services where service.inUse {
            var entry = ProcessEntry()
            entry.id = service.lastID
            entry.requester = service.requester
            if service.state == .running && service.slot >= 0 { describeRunning(slots[service.slot].process, &entry) }
            entry.memoryLimit = service.memoryLimit
            entry.state = service.state
            entry.restarts = service.restarts
            entry.isService = true
            entry.restartDelayMilliseconds = service.lastDelay
            entry.name = service.name
            entry.nameLength = service.nameLength
            add(entry)
        }
        clear(&message, label: 0)
        message.setWord(atByte: 0, UInt64(index))
        message.setWord(atByte: 8, UInt64(count))
        for entry in 0..<count { entries[entry].write(into: &message, at: 16 + entry * ProcessEntry.size) }
        message.length = 16 + count * ProcessEntry.size
    }

    /// What the kernel says of a running process through its handle: the memory its account
    /// holds (the account right), its threads and CPU time (wait).
    static func describeRunning(_ process: Handle, _ entry: inout ProcessEntry) {
        if let account = try? System.invoke(SystemCall.MemoryAccount(process: process)) { entry.memoryInUse = account.used }
        if let info = try? ProcessHandles.info(process) {
            entry.threads = info.threads
            entry.cpuNanoseconds = info.cpuNanoseconds
        }
    }

    // MARK: Ends

    /// Collects every process whose end rang the bell, and for a service's instance applies the
    /// restart policy.
    static func collectEnds() {
        guard let bits = try? IPC.wait(bell, timeout: 0) else { return }
        for slot in 0..<slotCapacity where bits & (1 << UInt64(slot)) != 0 && slots[slot].inUse
            && slots[slot].state == .running {
            let end: (reason: ExitReason, code: UInt64)
            do throws(KernelError) {
                end = try ProcessHandles.wait(slots[slot].process, poll: true)
            } catch {
                // Ended, but its threads are still leaving the kernel: ring again and look later.
                if error == .wouldBlock {
                    try? IPC.signal(bell, bits: 1 << UInt64(slot))
                    System.yield()
                }
                continue
            }
            try? IPC.close(slots[slot].process)
            slots[slot].process = .none
            slots[slot].reason = end.reason
            slots[slot].code = end.code
            slots[slot].state = end.reason == .exited ? .exited : end.reason == .faulted ? .faulted : .killed
            let service = slots[slot].service
            slots[slot] = Slot()
            if service >= 0 {
                serviceEnded(service, end.reason, end.code)
            } else if service == Slot.client {
                clientSlotsInUse -= 1
            }
        }
    }

    // MARK: Services

    static func startService(_ message: inout IPCMessage, _ attached: InlineArray<4, Handle>, _ count: Int,
                             taken: inout Bool) throws(KernelError) {
        let (start, tagged) = try sortHandles(attached, count, tags: message.word(atByte: 24))
        let nameLength = Int(clamping: message.word(atByte: 32))
        let programLength = Int(clamping: message.word(atByte: 40))
        let textLength = Int(clamping: message.word(atByte: 48))
        let policyWord = message.word(atByte: 16)
        let options = ServiceOptions(rawValue: policyWord >> ServiceOptions.shift)
        guard let policy = RestartPolicy(rawValue: policyWord & 0xFF), ServiceOptions.known.isSuperset(of: options),
              start == nil,
              nameLength >= 1, nameLength <= 24, programLength >= 1, programLength <= 64, textLength <= 192,
              message.length == 56 + nameLength + programLength + textLength else { throw .invalidArgument }
        var service = Service()
        service.requester = message.sender.value
        service.argument = message.word(atByte: 0)
        service.memoryLimit = message.word(atByte: 8)
        service.policy = policy
        for index in 0..<nameLength { service.name[index] = message[byte: 56 + index] }
        for index in 0..<programLength { service.program[index] = message[byte: 56 + nameLength + index] }
        for index in 0..<textLength { service.text[index] = message[byte: 56 + nameLength + programLength + index] }
        (service.nameLength, service.programLength, service.textLength) = (nameLength, programLength, textLength)
        guard findService(service.name, nameLength) == nil else { throw .invalidArgument }
        guard let index = services.firstIndex(where: { !$0.inUse }) else { throw .queueFull }
        for handle in 0..<tagged.count {
            service.rights[handle] = try rights(of: tagged.handle(handle))
        }
        service.handles = tagged
        taken = true
        services[index] = service
        var privateSendRight: Handle?
        do throws(KernelError) {
            if options.contains(.privatePort) {
                services[index].privatePort = try IPC.createPort()
                privateSendRight = try IPC.duplicate(services[index].privatePort, rights: [.send, .duplicate, .transfer])
            }
            try startInstance(index)
        } catch {
            if let privateSendRight { try? IPC.close(privateSendRight) }
            forget(index)
            throw error
        }
        let publicSendRight: Handle
        do throws(KernelError) {
            publicSendRight = try IPC.duplicate(services[index].port, rights: [.send, .duplicate, .transfer])
        } catch {
            if let privateSendRight { try? IPC.close(privateSendRight) }
            throw error
        }
        clear(&message, label: 0)
        message.setWord(atByte: 0, services[index].lastID)
        message.length = 8
        message.attach(publicSendRight)
        if let privateSendRight { message.attach(privateSendRight) }
    }

    /// The rights `handle` holds, found by duplicating it with one right at a time (it needs
    /// duplicate: each instance of a service gets its own copy).
    static func rights(of handle: Handle) throws(KernelError) -> Rights {
        var held: Rights = []
        for bit in 0..<(64 - Rights.all.rawValue.leadingZeroBitCount) {
            let right = Rights(rawValue: 1 << UInt64(bit))
            if let copy = try? IPC.duplicate(handle, rights: right) {
                try? IPC.close(copy)
                held.insert(right)
            }
        }
        guard held.contains(.duplicate) else { throw .accessDenied }
        return held
    }

    static func findService(_ name: InlineArray<24, UInt8>, _ length: Int) -> Int? {
        services.firstIndex { service in
            guard service.inUse, service.nameLength == length else { return false }
            for index in 0..<length where service.name[index] != name[index] { return false }
            return true
        }
    }

    /// Starts an instance of service `index` with a fresh port: its receive right goes to the
    /// instance (`.service`), a send right stays here (and is registered, if this server can).
    static func startInstance(_ index: Int) throws(KernelError) {
        let port = try IPC.createPort()
        defer { try? IPC.close(port) }
        let serverSide = try IPC.duplicate(port, rights: [.receive, .transfer])
        var handles = StartHandles()
        handles.append(.service, serverSide)
        // The name service also gets a fresh registrar port, whose send right this server keeps.
        var registrar: Handle?
        defer { if let registrar { try? IPC.close(registrar) } }
        var newRegistration: Handle?
        var adopted = false
        // Closed unless the start succeeds and it replaces `registration`.
        defer { if !adopted, let newRegistration { try? IPC.close(newRegistration) } }
        if SystemRole(program: services[index].program, services[index].programLength) == .names {
            let made = try IPC.createPort()
            registrar = made
            newRegistration = try IPC.duplicate(made, rights: [.send, .duplicate, .transfer])
            handles.append(.registrar, try IPC.duplicate(made, rights: [.receive, .transfer]))
        }
        defer {
            // Whatever did not reach the instance.
            if handles.count > 0 && services[index].slot < 0 {
                handles.closeAll()
            }
        }
        if services[index].privatePort != .none {
            handles.append(.privateService, try IPC.duplicate(services[index].privatePort, rights: [.receive, .transfer]))
        }
        let kept = services[index].handles
        for handle in 0..<kept.count {
            let copy = try IPC.duplicate(kept.handle(handle), rights: services[index].rights[handle])
            handles.appendRaw(kept.tag(handle), copy)
        }
        let clientSide = try IPC.duplicate(port, rights: [.send, .duplicate, .transfer])
        var service = services[index]
        var taken = false
        let slot: Int
        do throws(KernelError) {
            slot = try withBytes(&service.program, service.programLength) { program throws(KernelError) in
                try withBytes(&service.text, service.textLength) { text throws(KernelError) in
                    try launch(program, argument: service.argument, start: nil, handles: handles, arguments: text,
                               memoryLimit: service.memoryLimit, service: index, taken: &taken)
                }
            }
        } catch {
            try? IPC.close(clientSide)
            throw error
        }
        if let made = newRegistration {
            if let registration { try? IPC.close(registration) }
            registration = made
            adopted = true
        }
        if services[index].port != .none { try? IPC.close(services[index].port) }
        services[index].port = clientSide
        services[index].slot = slot
        services[index].lastID = slots[slot].id
        services[index].state = .running
        services[index].startedAt = now
        log(index, "started", id: slots[slot].id)
        if newRegistration != nil {
            // A new name service knows nothing yet: every running service is registered again.
            for other in 0..<serviceCapacity where other != index && services[other].inUse
                && services[other].state == .running {
                register(service: other, port: services[other].port)
            }
        } else {
            register(service: index, port: clientSide)
        }
    }

    /// Registers service `index`'s new port (a copy of the send right moves there) with the
    /// name service, if this server was given its registrar port. True if the name service took it.
    @discardableResult
    static func register(service index: Int, port: Handle) -> Bool {
        guard let registration, let copy = try? IPC.duplicate(port, rights: NamesProtocol.portRights) else { return false }
        return (try? withBytes(&services[index].name, services[index].nameLength) { name throws(KernelError) in
            // The instance's number, which this server keeps: it grows across restarts of the name
            // service too.
            try NameRegistrar(registration).register(name, port: copy, generation: UInt64(services[index].restarts + 1))
        }) != nil
    }

    /// Tells the name service that service `index` is down: restarting (`restarting`: lookups
    /// wait for the next registration) or gone for good (its name is removed).
    static func deregister(service index: Int, restarting: Bool) {
        guard let registration, SystemRole(program: services[index].program, services[index].programLength) != .names else {
            return
        }
        _ = try? withBytes(&services[index].name, services[index].nameLength) { name throws(KernelError) in
            if restarting {
                try NameRegistrar(registration).markDown(name)
            } else {
                try NameRegistrar(registration).unregister(name)
            }
        }
    }

    /// Applies service `index`'s policy to the end of its instance.
    static func serviceEnded(_ index: Int, _ reason: ExitReason, _ code: UInt64) {
        let id = services[index].lastID
        services[index].slot = -1

        var line = TextLine()
        line.write("process-manager: ")
        for byte in 0..<services[index].nameLength { line.write(byte: services[index].name[byte]) }
        line.write(" (process ")
        line.writeDecimal(id)
        switch reason {
        case .exited:
            line.write(") ended with code ")
            line.writeDecimal(code)
        case .faulted:
            line.write(") faulted (ESR ")
            line.writeHex(code)
            line.write(")")
        case .killed: line.write(") was killed")
        }
        if services[index].crashRequested {
            // Ended on request: back at once, counted against nothing.
            services[index].crashRequested = false
            deregister(service: index, restarting: true)
            line.write(" on request; restarting now")
            System.print(FormattedText(line: line))
            services[index].due = now
            services[index].state = .restartPending
            services[index].restarts += 1
            services[index].uncountedRestart = true
            return
        }
        guard services[index].policy.restarts(after: reason, code: code) else {
            leaveStopped(index)
            line.write("; not restarted")
            System.print(FormattedText(line: line))
            return
        }
        let time = now
        let tooOften = services[index].recentCount == Supervision.maximumRestarts
            && time - services[index].recent[0] < ticks(milliseconds: Supervision.window)
        if tooOften {
            System.print(FormattedText(line: line))
            leaveStopped(index)
            log(index, "restarted too often; left stopped", id: nil)
            return
        }
        if time - services[index].startedAt >= ticks(milliseconds: Supervision.window) {
            services[index].nextDelay = Supervision.firstDelay
        }
        deregister(service: index, restarting: true)
        let delay = services[index].nextDelay
        line.write("; restarting in ")
        line.writeDecimal(delay)
        line.write(" ms")
        System.print(FormattedText(line: line))
        services[index].lastDelay = delay
        services[index].nextDelay = min(delay * 2, Supervision.longestDelay)
        services[index].due = time + ticks(milliseconds: delay)
        services[index].state = .restartPending
    }

    /// Starts every service whose delay is over; a start that fails counts as an end.
    static func restartDue() {
        let time = now
        for index in 0..<serviceCapacity where services[index].inUse && services[index].state == .restartPending
            && services[index].due <= time {
            if services[index].uncountedRestart {
                services[index].uncountedRestart = false
                tryStart(index, counted: false)
                continue
            }
            if services[index].recentCount == Supervision.maximumRestarts {
                for older in 1..<Supervision.maximumRestarts { services[index].recent[older - 1] = services[index].recent[older] }
                services[index].recentCount -= 1
            }
            services[index].recent[services[index].recentCount] = time
            services[index].recentCount += 1
            services[index].restarts += 1
            tryStart(index, counted: true)
        }
    }

    /// Starts service `index`'s next instance. A start refused for want of room, here or in the
    /// kernel (this server's handle table, memory, a full queue), is not the service's failure:
    /// it is tried again after the longest delay and counted against nothing (`counted`: the
    /// attempt was, and is taken back), so that a moment of pressure, which a client can cause,
    /// cannot leave a service stopped for good. Any other failure counts as an end.
    static func tryStart(_ index: Int, counted: Bool) {
        do throws(KernelError) {
            try startInstance(index)
            services[index].startDeferred = false
        } catch {
            guard error == .handleTableFull || error == .outOfMemory || error == .queueFull else {
                services[index].startDeferred = false
                log(index, "could not be restarted", id: nil)
                serviceEnded(index, .killed, 0)
                return
            }
            if counted && services[index].recentCount > 0 { services[index].recentCount -= 1 }
            if !services[index].startDeferred {
                services[index].startDeferred = true
                var line = TextLine()
                line.write("process-manager: ")
                for byte in 0..<services[index].nameLength { line.write(byte: services[index].name[byte]) }
                line.write(" could not be started for want of room (")
                line.write(error.summary)
                line.write("); trying again every second")
                System.print(FormattedText(line: line))
            }
            services[index].due = now + ticks(milliseconds: Supervision.longestDelay)
            services[index].uncountedRestart = true
        }
    }

    static func serviceEndpoint(_ message: inout IPCMessage) throws(KernelError) {
        let index = try namedService(message)
        guard services[index].state == .running else { throw .notFound }
        let copy = try IPC.duplicate(services[index].port, rights: [.send, .duplicate, .transfer])
        clear(&message, label: 0)
        message.setWord(atByte: 0, services[index].lastID)
        message.length = 8
        message.attach(copy)
    }

    static func crashService(_ message: inout IPCMessage) throws(KernelError) {
        let index = try namedService(message)
        let slot = services[index].slot
        guard services[index].state == .running, slot >= 0 else { throw .notFound }
        try ProcessHandles.kill(slots[slot].process)
        services[index].crashRequested = true
        clear(&message, label: 0)
        message.setWord(atByte: 0, slots[slot].id)
        message.length = 8
    }

    /// A send right to the running instance of the system service `role`, if one runs.
    static func runningPort(of role: SystemRole) -> Handle? {
        for index in 0..<serviceCapacity where services[index].inUse && services[index].state == .running
            && SystemRole(program: services[index].program, services[index].programLength) == role {
            return services[index].port
        }
        return nil
    }

    /// Ends a program a client asked for, by its id (control port only): once its client has
    /// ended, nobody else holds a handle to it, and without this it would hold its client slot for
    /// as long as it ran.
    static func endProgram(_ message: inout IPCMessage) throws(KernelError) {
        guard message.length == 8 else { throw .invalidArgument }
        let id = message.word(atByte: 0)
        guard let slot = slots.firstIndex(where: { $0.inUse && $0.service == Slot.client && $0.state == .running && $0.id == id })
        else { throw .notFound }
        try ProcessHandles.kill(slots[slot].process)
        clear(&message, label: 0)
    }

    static func stopService(_ message: inout IPCMessage) throws(KernelError) {
        let index = try namedService(message)
        forget(index)
        clear(&message, label: 0)
    }

    /// Ends service `index`'s instance (its slot then only waits to be collected) and forgets it.
    static func forget(_ index: Int) {
        if services[index].state != .stopped { deregister(service: index, restarting: false) }
        let slot = services[index].slot
        if slot >= 0 {
            // Not a client's: its end must not give back a client slot it never took.
            slots[slot].service = Slot.forgotten
            try? ProcessHandles.kill(slots[slot].process)
        }
        if services[index].port != .none { try? IPC.close(services[index].port) }
        closePrivatePort(index)
        services[index].handles.closeAll()
        services[index] = Service()
    }

    /// Service `index` is not started again: its name goes, and its private port.
    static func leaveStopped(_ index: Int) {
        deregister(service: index, restarting: false)
        services[index].state = .stopped
        closePrivatePort(index)
    }

    /// Lets service `index`'s private port go, once no instance will run again: with its last
    /// receive right gone it closes, and the calls waiting there fail (`peerClosed`) instead of
    /// waiting for ever.
    static func closePrivatePort(_ index: Int) {
        guard services[index].privatePort != .none else { return }
        try? IPC.close(services[index].privatePort)
        services[index].privatePort = .none
    }

    static func namedService(_ message: IPCMessage) throws(KernelError) -> Int {
        let length = Int(clamping: message.word(atByte: 0))
        guard length >= 1, length <= 24, message.length == 8 + length else { throw .invalidArgument }
        var name = InlineArray<24, UInt8>(repeating: 0)
        for index in 0..<length { name[index] = message[byte: 8 + index] }
        guard let index = findService(name, length) else { throw .notFound }
        return index
    }

    static func log(_ index: Int, _ what: StaticString, id: UInt64?) {
        var line = TextLine()
        line.write("process-manager: ")
        if id != nil {
            line.write(what)
            line.write(" ")
        }
        for byte in 0..<services[index].nameLength { line.write(byte: services[index].name[byte]) }
        if let id {
            line.write(" (process ")
            line.writeDecimal(id)
            line.write(")")
        } else {
            line.write(" ")
            line.write(what)
        }
        System.print(FormattedText(line: line))
    }
}

/// The two programs this server knows by name: the name service, which gets the registrar port
/// (whose send right this server keeps, to register every service), and the memory manager, whose
/// port every later program gets. Any other program is only what the manifest says it is.
enum SystemRole: Equatable {
    case names
    case memoryManager
    case other

    init(program: UnsafeRawBufferPointer) {
        if Self.equal(program, "names") {
            self = .names
        } else if Self.equal(program, "memory-manager") {
            self = .memoryManager
        } else {
            self = .other
        }
    }

    init(program: InlineArray<64, UInt8>, _ length: Int) {
        var copy = program
        self = withUnsafeBytes(of: &copy) { SystemRole(program: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
    }

    static func equal(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        for index in 0..<bytes.count where bytes[index] != name.utf8Start[index] { return false }
        return true
    }
}
