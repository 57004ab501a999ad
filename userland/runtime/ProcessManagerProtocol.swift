// The process manager's protocol (docs/ARCHITECTURE.md, "Process manager"): request labels, the
// payload layout of each request and reply, and `ProcessManager`, the typed client. Every request
// is a call; the reply's label is 0 for success or the `KernelError` that refused it. Payload
// words are little-endian 64-bit values at the byte offsets given here. Authority is by
// capability: a spawned program's process handle (wait, control) goes to whoever asked for it,
// and only requests arriving on the control port (`.serviceControl`) may start, stop or crash
// services.

public enum ProcessManagerRequest: UInt64, Sendable {
    /// Starts a program. Words: 0 start argument, 1 memory limit, 2 options (0), 3 the tags of
    /// the attached handles (byte i for handle i: 0 makes it the start handle, else a
    /// `StartTag`), 4 name length, 5 argument text length; the name, then the text, from byte
    /// 48. One handle must be the client's own process handle with the account right, tagged
    /// `.ownProcess`: the program's memory account hangs under the client's, so the client's
    /// limit bounds it (it stays with the manager, which closes it). Without one the request is
    /// refused (`accessDenied`) but on the control port, where the program runs on the manager's
    /// account as a service does (init, which has no handle to itself, spawns so).
    /// Reply: word 0 the process id, and the process handle (wait, control, transfer): the
    /// caller waits for the program and ends it with that. (Labels 2 and 3, wait and kill by
    /// process id, are retired: they took the sender's id as authority.)
    case spawn = 1
    /// Word 0: the index of the first entry wanted. Reply: word 0 the number of entries, word 1
    /// how many follow (at most `ProcessEntry.perReply`), from byte 16, `ProcessEntry.size`
    /// bytes each: the spawned processes, then the supervised services.
    case list = 4
    /// Starts a supervised service (control port only). Words: 0 start argument, 1 memory limit,
    /// 2 the `RestartPolicy` in bits 0-7 and `ServiceOptions` from bit 8, 3 tags of the attached
    /// handles (as for spawn; each handle needs duplicate, for restarts), 4 service name length
    /// (1-24), 5 program name length, 6 argument text length; the three texts from byte 56.
    /// Reply: word 0 the process id; a send right to the service's port, and with
    /// `ServiceOptions.privatePort` a second one to its private port.
    case startService = 5
    /// Word 0 the service name's length, the name from byte 8. Reply: word 0 the id of its
    /// running instance, and a send right to that instance's port; `notFound` if none runs.
    case serviceEndpoint = 6
    /// As serviceEndpoint; ends the service and forgets it. Control port only.
    case stopService = 7
    /// As serviceEndpoint; ends the service's running instance on purpose, to show a restart:
    /// it is started again at once, whatever its policy, and the restart counts against no cap.
    /// Reply: word 0 the id of the instance ended. Control port only.
    case crashService = 8
    /// Word 0: the process id of a program a client asked for, still running. It is ended as its
    /// process handle would end it; its client sees it killed. Control port only: the holder of
    /// the control right may end any program (its client may have ended long ago, the only other
    /// holder of a handle to it). `notFound` for no such program (a service's instance included).
    case endProgram = 9

    /// Whether only the control port takes the request: startService (5) is one too.
    public var needsControl: Bool {
        switch self {
        case .startService, .stopService, .crashService, .endProgram: return true
        case .spawn, .list, .serviceEndpoint: return false
        }
    }
}

/// What a service is started with, beyond its port (startService's word 2, from bit 8).
public struct ServiceOptions: OptionSet, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// A private port besides the public one, made once and kept by the process manager across
    /// restarts: every instance gets its receive right (`.privateService`), and send rights go
    /// only to the service's starter, who hands them on. The console serves the terminal there.
    public static let privatePort = ServiceOptions(rawValue: 1)
    public static let known: ServiceOptions = [.privatePort]
    public static let shift: UInt64 = 8
}

/// What a list entry says of a process or service.
public enum ManagedState: UInt8, Sendable {
    case running = 1
    case exited = 2
    case faulted = 3
    case killed = 4
    /// A service waiting out its backoff delay before its next start.
    case restartPending = 5
    /// A service left stopped: its policy said so, or it restarted too often.
    case stopped = 6
}

/// One entry of a list reply. Layout: 0 process id, 8 memory in use, 16 memory limit, 24 state,
/// 25 restarts, 26 name length, 27 flags (bit 0: a service), 28 the last restart delay in ms (32
/// bits), 32 the name (24 bytes), 56 the id of the process that asked for it, 64 CPU time in
/// nanoseconds, 72 threads.
public struct ProcessEntry {
    public static let size = 80
    public static let perReply = 3
    public var id: UInt64 = 0
    /// What the kernel holds for it (its account: pages, tables, kernel objects), while it runs.
    public var memoryInUse: UInt64 = 0
    public var memoryLimit: UInt64 = 0
    public var state = ManagedState.running
    public var restarts = 0
    public var isService = false
    public var restartDelayMilliseconds: UInt64 = 0
    public var name = InlineArray<24, UInt8>(repeating: 0)
    public var nameLength = 0
    /// The process that asked for it (a spawn's client, a service's starter); the kernel's
    /// parent of every program is the process manager.
    public var requester: UInt64 = 0
    /// CPU time, sampled at each timer tick, and live threads, while it runs.
    public var cpuNanoseconds: UInt64 = 0
    public var threads: UInt64 = 0

    public init() {}

    public func nameEquals(_ other: StaticString) -> Bool {
        guard other.utf8CodeUnitCount == nameLength else { return false }
        for index in 0..<nameLength where name[index] != other.utf8Start[index] { return false }
        return true
    }

    func write(into message: inout IPCMessage, at offset: Int) {
        message.setWord(atByte: offset, id)
        message.setWord(atByte: offset + 8, memoryInUse)
        message.setWord(atByte: offset + 16, memoryLimit)
        message[byte: offset + 24] = state.rawValue
        message[byte: offset + 25] = UInt8(min(restarts, 255))
        message[byte: offset + 26] = UInt8(nameLength)
        message[byte: offset + 27] = isService ? 1 : 0
        let delay = UInt32(min(restartDelayMilliseconds, UInt64(UInt32.max)))
        for index in 0..<4 { message[byte: offset + 28 + index] = UInt8(truncatingIfNeeded: delay >> (8 * UInt32(index))) }
        for index in 0..<24 { message[byte: offset + 32 + index] = index < nameLength ? name[index] : 0 }
        message.setWord(atByte: offset + 56, requester)
        message.setWord(atByte: offset + 64, cpuNanoseconds)
        message.setWord(atByte: offset + 72, threads)
    }

    init(from message: IPCMessage, at offset: Int) {
        id = message.word(atByte: offset)
        memoryInUse = message.word(atByte: offset + 8)
        memoryLimit = message.word(atByte: offset + 16)
        state = ManagedState(rawValue: message[byte: offset + 24]) ?? .stopped
        restarts = Int(message[byte: offset + 25])
        nameLength = min(Int(message[byte: offset + 26]), 24)
        isService = message[byte: offset + 27] & 1 != 0
        var delay: UInt64 = 0
        for index in 0..<4 { delay |= UInt64(message[byte: offset + 28 + index]) << (8 * UInt64(index)) }
        restartDelayMilliseconds = delay
        for index in 0..<24 { name[index] = message[byte: offset + 32 + index] }
        requester = message.word(atByte: offset + 56)
        cpuNanoseconds = message.word(atByte: offset + 64)
        threads = message.word(atByte: offset + 72)
    }
}

extension IPCMessage {
    /// Copies `bytes` into the payload at byte `offset`; false if they do not fit.
    public mutating func setBytes(atByte offset: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard offset >= 0, bytes.count <= IPCMessageLayout.maximumPayload - offset else { return false }
        for index in 0..<bytes.count { self[byte: offset + index] = bytes[index] }
        return true
    }

    /// Runs `body` with `count` payload bytes from `offset`, if the message's length holds them.
    public mutating func withBytes<Result>(atByte offset: Int, count: UInt64,
                                           _ body: (UnsafeRawBufferPointer) -> Result) -> Result? {
        guard offset >= 0, offset <= length, count <= UInt64(length - offset) else { return nil }
        return withUnsafeBytes(of: &words) { all in
            body(UnsafeRawBufferPointer(rebasing: all[(IPCMessageLayout.payload + offset)..<(IPCMessageLayout.payload + offset + Int(count))]))
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes of a static string.
    public init(_ text: StaticString) { self.init(start: text.utf8Start, count: text.utf8CodeUnitCount) }
}

/// A client of the process manager, through a send right to its port.
public struct ProcessManager {
    public let port: Handle
    /// A send right to the control port, if this client has that authority.
    public let control: Handle?
    public init(_ port: Handle, control: Handle? = nil) {
        self.port = port
        self.control = control
    }

    /// Starts the process manager with `loader`, on two ports of its own: the receive rights
    /// under `.service` and `.serviceControl`, a send right under `.processManager` (which it
    /// hands to the programs it starts) and a copy of `ramdisk` under `.ramdisk`. Its process
    /// handle, its id, and a client holding send rights (duplicate, transfer) to both ports.
    public static func start(with loader: ProgramLoader, ramdisk: Handle) throws(KernelError)
        -> (process: Handle, id: UInt64, client: ProcessManager) {
        var made = InlineArray<6, Handle>(repeating: .none)
        do throws(KernelError) {
            let port = try IPC.createPort()
            defer { try? IPC.close(port) }
            let controlPort = try IPC.createPort()
            defer { try? IPC.close(controlPort) }
            made[0] = try IPC.duplicate(port, rights: [.send, .duplicate, .transfer])
            made[1] = try IPC.duplicate(port, rights: [.receive, .transfer])
            made[2] = try IPC.duplicate(made[0], rights: [.send, .duplicate, .transfer])
            made[3] = try IPC.duplicate(ramdisk, rights: [.map, .duplicate, .transfer])
            made[4] = try IPC.duplicate(controlPort, rights: [.send, .duplicate, .transfer])
            made[5] = try IPC.duplicate(controlPort, rights: [.receive, .transfer])
            var handles = StartHandles()
            handles.append(.service, made[1])
            handles.append(.processManager, made[2])
            handles.append(.ramdisk, made[3])
            handles.append(.serviceControl, made[5])
            let started = try loader.spawn("process-manager", handles: handles)
            return (started.process, started.id, ProcessManager(made[0], control: made[4]))
        } catch {
            // Values the loader moved are stale now, and their close refused.
            for index in 0..<6 where made[index] != .none { try? IPC.close(made[index]) }
            throw error
        }
    }

    /// Adds a copy of this client's control right (`rights`, which need transfer) to `handles`
    /// under `.serviceControl`, for a program it starts that controls services; nothing if this
    /// client has none or no copy can be made.
    public func grantControl(to handles: inout ClientHandles, rights: Rights = [.send, .transfer]) {
        guard let control, let copy = try? IPC.duplicate(control, rights: rights) else { return }
        handles.append(.serviceControl, copy)
    }

    /// Closes this client's send rights.
    public func close() {
        try? IPC.close(port)
        if let control { try? IPC.close(control) }
    }

    /// The reply's status as an error.
    static func check(_ reply: IPCMessage) throws(KernelError) {
        if let error = System.answered(reply.label) { throw error }
    }

    /// Sends `message` (attaching `handles`, which move to the process manager, with their tags
    /// in word 3) to the control port if `control` (refused without one), else to the manager's
    /// port, and checks the reply.
    func call(_ message: inout IPCMessage, _ handles: ClientHandles, control: Bool = false) throws(KernelError) -> IPCMessage {
        guard handles.count <= IPCMessageLayout.maximumHandles else {
            handles.closeAll()
            throw .invalidArgument
        }
        var tags: UInt64 = 0
        for index in 0..<handles.count {
            message.attach(handles.handle(index))
            tags |= (handles.tag(index) & 0xFF) << (8 * UInt64(index))
        }
        if handles.count > 0 { message.setWord(atByte: 24, tags) }
        guard let target = control ? self.control : port else {
            handles.closeAll()
            throw .accessDenied
        }
        do throws(KernelError) {
            try IPC.call(target, &message)
        } catch {
            // Not sent (a full queue, a manager gone): the handles are still here. Sent, they
            // are gone, and their numbers name nothing (a slot taken again has a new generation).
            handles.closeAll()
            throw error
        }
        try Self.check(message)
        return message
    }

    /// Starts `program` with `argument` in x0, `arguments` as its argument text, and `handles`
    /// (at most 3, moved, or closed if the request is refused; `startHandle` ones become x1) as
    /// its tagged handles. It is paid for by
    /// this program: a copy of its own process handle (`.ownProcess`, the account right) goes with
    /// the request, and the child's account hangs under this program's, within its limit. Returns
    /// the child: `System.wait` and `System.kill` take it, as they take one `System.spawn` started.
    public func spawn(_ program: UnsafeRawBufferPointer, argument: UInt64 = 0,
                      arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                      handles: ClientHandles = ClientHandles(), memoryLimit: UInt64 = 0) throws(KernelError) -> ChildProcess {
        var handles = handles
        func refuse(_ error: KernelError) -> KernelError {
            handles.closeAll()
            return error
        }
        // A program that has its own handle pays, or asks nothing: a copy it cannot make or
        // attach does not send the request unpaid on the control port instead.
        var paid: Handle?
        if let own = ProgramStart.handle(.ownProcess) {
            guard handles.count < IPCMessageLayout.maximumHandles else { throw refuse(.invalidArgument) }
            do throws(KernelError) {
                let copy = try IPC.duplicate(own, rights: [.account, .transfer])
                handles.append(.ownProcess, copy)
                paid = copy
            } catch {
                throw refuse(error)
            }
        }
        var message = IPCMessage(label: ProcessManagerRequest.spawn.rawValue)
        message.setWord(atByte: 0, argument)
        message.setWord(atByte: 8, memoryLimit)
        message.setWord(atByte: 32, UInt64(program.count))
        message.setWord(atByte: 40, UInt64(arguments.count))
        guard message.setBytes(atByte: 48, program), message.setBytes(atByte: 48 + program.count, arguments) else {
            throw refuse(.invalidArgument)
        }
        message.length = 48 + program.count + arguments.count
        // Without a handle to pay with (init has none), only the control port may take it.
        let reply = try call(&message, handles, control: paid == nil && control != nil)
        guard reply.handleCount == 1 else {
            reply.closeHandles()
            throw .invalidArgument
        }
        return ChildProcess(process: reply.handle(0), id: ProcessID(reply.word(atByte: 0)))
    }

    public func spawn(_ program: StaticString, argument: UInt64 = 0, handles: ClientHandles = ClientHandles(),
                      memoryLimit: UInt64 = 0) throws(KernelError) -> ChildProcess {
        try spawn(UnsafeRawBufferPointer(program), argument: argument, handles: handles, memoryLimit: memoryLimit)
    }

    /// Up to `ProcessEntry.perReply` entries from index `first`, and the number of entries.
    public func list(from first: Int, into entries: inout InlineArray<4, ProcessEntry>) throws(KernelError)
        -> (count: Int, total: Int) {
        var message = IPCMessage(label: ProcessManagerRequest.list.rawValue)
        message.setWord(atByte: 0, UInt64(first))
        message.length = 8
        let reply = try call(&message, ClientHandles())
        let count = min(Int(reply.word(atByte: 8)), ProcessEntry.perReply)
        for index in 0..<count { entries[index] = ProcessEntry(from: reply, at: 16 + index * ProcessEntry.size) }
        return (count, Int(reply.word(atByte: 0)))
    }

    /// The entry named `name`, if the list has one (services are listed under their name).
    public func entry(named name: StaticString) throws(KernelError) -> ProcessEntry? {
        var entries = InlineArray<4, ProcessEntry>(repeating: ProcessEntry())
        var first = 0
        while true {
            let (count, total) = try list(from: first, into: &entries)
            for index in 0..<count where entries[index].nameEquals(name) { return entries[index] }
            first += count
            if count == 0 || first >= total { return nil }
        }
    }

    /// Starts service `name` running `program`, restarted by `policy`; returns its first
    /// instance's id, a send right to its port and, with `.privatePort`, one to its private port.
    public func startService(_ name: UnsafeRawBufferPointer, program: UnsafeRawBufferPointer, argument: UInt64 = 0,
                             arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                             policy: RestartPolicy, options: ServiceOptions = [], handles: ClientHandles = ClientHandles(),
                             memoryLimit: UInt64 = 0) throws(KernelError)
        -> (id: UInt64, port: Handle, privatePort: Handle?) {
        var message = IPCMessage(label: ProcessManagerRequest.startService.rawValue)
        message.setWord(atByte: 0, argument)
        message.setWord(atByte: 8, memoryLimit)
        message.setWord(atByte: 16, policy.rawValue | options.rawValue << ServiceOptions.shift)
        message.setWord(atByte: 32, UInt64(name.count))
        message.setWord(atByte: 40, UInt64(program.count))
        message.setWord(atByte: 48, UInt64(arguments.count))
        guard message.setBytes(atByte: 56, name), message.setBytes(atByte: 56 + name.count, program),
              message.setBytes(atByte: 56 + name.count + program.count, arguments) else { throw .invalidArgument }
        message.length = 56 + name.count + program.count + arguments.count
        let reply = try call(&message, handles, control: true)
        let expected = options.contains(.privatePort) ? 2 : 1
        guard reply.handleCount == expected else {
            reply.closeHandles()
            throw .invalidArgument
        }
        return (reply.word(atByte: 0), reply.handle(0), expected == 2 ? reply.handle(1) : nil)
    }

    /// The running instance of service `name` and a send right to its port.
    public func serviceEndpoint(_ name: UnsafeRawBufferPointer) throws(KernelError) -> (id: UInt64, port: Handle) {
        var message = IPCMessage(label: ProcessManagerRequest.serviceEndpoint.rawValue)
        let reply = try serviceCall(&message, name)
        guard reply.handleCount == 1 else { throw .notFound }
        return (reply.word(atByte: 0), reply.handle(0))
    }

    public func stopService(_ name: UnsafeRawBufferPointer) throws(KernelError) {
        var message = IPCMessage(label: ProcessManagerRequest.stopService.rawValue)
        _ = try serviceCall(&message, name, control: true)
    }

    /// Ends service `name`'s running instance on purpose (it is started again at once); the id
    /// of the instance ended.
    @discardableResult
    public func crashService(_ name: UnsafeRawBufferPointer) throws(KernelError) -> UInt64 {
        var message = IPCMessage(label: ProcessManagerRequest.crashService.rawValue)
        return try serviceCall(&message, name, control: true).word(atByte: 0)
    }

    /// Ends program `id`, started for any client (`ProcessManagerRequest.endProgram`).
    public func endProgram(_ id: UInt64) throws(KernelError) {
        var message = IPCMessage(label: ProcessManagerRequest.endProgram.rawValue)
        message.setWord(atByte: 0, id)
        message.length = 8
        _ = try call(&message, ClientHandles(), control: true)
    }

    func serviceCall(_ message: inout IPCMessage, _ name: UnsafeRawBufferPointer,
                     control: Bool = false) throws(KernelError) -> IPCMessage {
        message.setWord(atByte: 0, UInt64(name.count))
        guard message.setBytes(atByte: 8, name) else { throw .invalidArgument }
        message.length = 8 + name.count
        return try call(&message, ClientHandles(), control: control)
    }
}

/// The handles a client attaches to a spawn or startService request (at most 4): an optional
/// start handle and tagged ones.
public struct ClientHandles {
    var tags = InlineArray<4, UInt64>(repeating: 0)
    var handles = InlineArray<4, UInt64>(repeating: 0)
    /// Handles appended, those past the capacity (closed at once) included: a request with more
    /// is refused.
    public private(set) var count = 0
    public init() {}

    /// `handle` becomes the program's start handle (x1).
    public mutating func start(_ handle: Handle) { appendRaw(0, handle) }
    public mutating func append(_ tag: StartTag, _ handle: Handle) { appendRaw(tag.rawValue, handle) }

    @inline(__always)
    mutating func appendRaw(_ tag: UInt64, _ handle: Handle) {
        if count < handles.count {
            tags[count] = tag
            handles[count] = handle.value
        } else {
            closeOverflow(handle)
        }
        count += 1
    }

    /// A handle past the capacity: not kept, so closed here (out of line, as it is rare).
    @inline(never)
    func closeOverflow(_ handle: Handle) { try? IPC.close(handle) }

    func tag(_ index: Int) -> UInt64 { tags[index] }
    func handle(_ index: Int) -> Handle { Handle(handles[index]) }

    /// Closes every handle kept: for a request that will not be sent.
    func closeAll() {
        for index in 0..<min(count, handles.count) { try? IPC.close(handle(index)) }
    }
}
