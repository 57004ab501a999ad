// The process manager's protocol (docs/ARCHITECTURE.md, "Process manager"): request labels, the
// payload layout of each request and reply, and `ProcessManager`, the typed client. Every request
// is a call; the reply's label is 0 for success or the `KernelError` that refused it. Payload
// words are little-endian 64-bit values at the byte offsets given here.

public enum ProcessManagerRequest: UInt64, Sendable {
    /// Starts a program. Words: 0 start argument, 1 memory limit, 2 options (bit 0: reply with a
    /// process handle), 3 the tags of the attached handles (byte i for handle i: 0 makes it the
    /// start handle, else a `StartTag`), 4 name length, 5 argument text length; the name, then
    /// the text, from byte 48. Reply: word 0 the process id; the process handle (wait) if asked.
    case spawn = 1
    /// Word 0: the id of a process the caller spawned. The reply comes when it ends: word 0 its
    /// exit code (the ESR for a fault), word 1 its `ExitReason`.
    case wait = 2
    /// Word 0: the id of a process the caller spawned. Ends it.
    case kill = 3
    /// Word 0: the index of the first entry wanted. Reply: word 0 the number of entries, word 1
    /// how many follow (at most `ProcessEntry.perReply`), from byte 16, `ProcessEntry.size`
    /// bytes each: the spawned processes, then the supervised services.
    case list = 4
    /// Starts a supervised service. Words: 0 start argument, 1 memory limit, 2 `RestartPolicy`,
    /// 3 tags of the attached handles (as for spawn; each handle needs duplicate, for restarts),
    /// 4 service name length (1-24), 5 program name length, 6 argument text length; the three
    /// texts from byte 56. Reply: word 0 the process id; a send right to the service's port.
    case startService = 5
    /// Word 0 the service name's length, the name from byte 8. Reply: word 0 the id of its
    /// running instance, and a send right to that instance's port; `notFound` if none runs.
    case serviceEndpoint = 6
    /// As serviceEndpoint; ends the service (only its starter may) and forgets it.
    case stopService = 7
    /// As serviceEndpoint; ends the service's running instance on purpose, to show a restart:
    /// it is started again at once, whatever its policy, and the restart counts against no cap.
    /// Reply: word 0 the id of the instance ended.
    case crashService = 8
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

/// One entry of a list reply. Layout: 0 process id, 8 bytes its program mapped, 16 memory
/// limit, 24 state, 25 restarts, 26 name length, 27 flags (bit 0: a service), 28 the last
/// restart delay in ms (32 bits), 32 the name (24 bytes).
public struct ProcessEntry {
    public static let size = 56
    public static let perReply = 4
    public var id: UInt64 = 0
    public var mappedBytes: UInt64 = 0
    public var memoryLimit: UInt64 = 0
    public var state = ManagedState.running
    public var restarts = 0
    public var isService = false
    public var restartDelayMilliseconds: UInt64 = 0
    public var name = InlineArray<24, UInt8>(repeating: 0)
    public var nameLength = 0

    public init() {}

    public func nameEquals(_ other: StaticString) -> Bool {
        guard other.utf8CodeUnitCount == nameLength else { return false }
        for index in 0..<nameLength where name[index] != other.utf8Start[index] { return false }
        return true
    }

    func write(into message: inout IPCMessage, at offset: Int) {
        message.setWord(atByte: offset, id)
        message.setWord(atByte: offset + 8, mappedBytes)
        message.setWord(atByte: offset + 16, memoryLimit)
        message[byte: offset + 24] = state.rawValue
        message[byte: offset + 25] = UInt8(min(restarts, 255))
        message[byte: offset + 26] = UInt8(nameLength)
        message[byte: offset + 27] = isService ? 1 : 0
        let delay = UInt32(min(restartDelayMilliseconds, UInt64(UInt32.max)))
        for index in 0..<4 { message[byte: offset + 28 + index] = UInt8(truncatingIfNeeded: delay >> (8 * UInt32(index))) }
        for index in 0..<24 { message[byte: offset + 32 + index] = index < nameLength ? name[index] : 0 }
    }

    init(from message: IPCMessage, at offset: Int) {
        id = message.word(atByte: offset)
        mappedBytes = message.word(atByte: offset + 8)
        memoryLimit = message.word(atByte: offset + 16)
        state = ManagedState(rawValue: message[byte: offset + 24]) ?? .stopped
        restarts = Int(message[byte: offset + 25])
        nameLength = min(Int(message[byte: offset + 26]), 24)
        isService = message[byte: offset + 27] & 1 != 0
        var delay: UInt64 = 0
        for index in 0..<4 { delay |= UInt64(message[byte: offset + 28 + index]) << (8 * UInt64(index)) }
        restartDelayMilliseconds = delay
        for index in 0..<24 { name[index] = message[byte: offset + 32 + index] }
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
    public init(_ port: Handle) { self.port = port }

    /// The reply's status as an error.
    static func check(_ reply: IPCMessage) throws(KernelError) {
        if reply.label != 0 { throw KernelError(rawValue: reply.label) ?? .invalidArgument }
    }

    /// Sends `message` (attaching `handles`, which move to the process manager, with their tags
    /// in word 3) and checks the reply.
    func call(_ message: inout IPCMessage, _ handles: StartHandles) throws(KernelError) -> IPCMessage {
        guard handles.count <= IPCMessageLayout.maximumHandles else { throw .invalidArgument }
        var tags: UInt64 = 0
        for index in 0..<handles.count {
            message.attach(handles.handle(index))
            tags |= (handles.tag(index) & 0xFF) << (8 * UInt64(index))
        }
        if handles.count > 0 { message.setWord(atByte: 24, tags) }
        try IPC.call(port, &message)
        try Self.check(message)
        return message
    }

    /// Starts `program` with `argument` in x0, `arguments` as its argument text, and `handles`
    /// (at most 4, moved; `startHandle` ones become x1) as its tagged handles. Returns its id
    /// and, if `wantHandle`, a process handle to wait on.
    public func spawn(_ program: UnsafeRawBufferPointer, argument: UInt64 = 0,
                      arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                      handles: ClientHandles = ClientHandles(), memoryLimit: UInt64 = 0,
                      wantHandle: Bool = false) throws(KernelError) -> (id: UInt64, process: Handle?) {
        var message = IPCMessage(label: ProcessManagerRequest.spawn.rawValue)
        message.setWord(atByte: 0, argument)
        message.setWord(atByte: 8, memoryLimit)
        message.setWord(atByte: 16, wantHandle ? 1 : 0)
        message.setWord(atByte: 32, UInt64(program.count))
        message.setWord(atByte: 40, UInt64(arguments.count))
        guard message.setBytes(atByte: 48, program), message.setBytes(atByte: 48 + program.count, arguments) else {
            throw .invalidArgument
        }
        message.length = 48 + program.count + arguments.count
        let reply = try call(&message, handles.tagged)
        return (reply.word(atByte: 0), reply.handleCount > 0 ? reply.handle(0) : nil)
    }

    public func spawn(_ program: StaticString, argument: UInt64 = 0, handles: ClientHandles = ClientHandles(),
                      memoryLimit: UInt64 = 0) throws(KernelError) -> UInt64 {
        try spawn(UnsafeRawBufferPointer(program), argument: argument, handles: handles, memoryLimit: memoryLimit).id
    }

    /// Waits for process `id` (one the caller spawned) to end.
    public func wait(_ id: UInt64) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        var message = IPCMessage(label: ProcessManagerRequest.wait.rawValue)
        message.setWord(atByte: 0, id)
        message.length = 8
        let reply = try call(&message, StartHandles())
        return (ExitReason(rawValue: reply.word(atByte: 8)) ?? .killed, reply.word(atByte: 0))
    }

    public func kill(_ id: UInt64) throws(KernelError) {
        var message = IPCMessage(label: ProcessManagerRequest.kill.rawValue)
        message.setWord(atByte: 0, id)
        message.length = 8
        _ = try call(&message, StartHandles())
    }

    /// Up to `ProcessEntry.perReply` entries from index `first`, and the number of entries.
    public func list(from first: Int, into entries: inout InlineArray<4, ProcessEntry>) throws(KernelError)
        -> (count: Int, total: Int) {
        var message = IPCMessage(label: ProcessManagerRequest.list.rawValue)
        message.setWord(atByte: 0, UInt64(first))
        message.length = 8
        let reply = try call(&message, StartHandles())
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
    /// instance's id and a send right to its port.
    public func startService(_ name: UnsafeRawBufferPointer, program: UnsafeRawBufferPointer, argument: UInt64 = 0,
                             arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                             policy: RestartPolicy, handles: ClientHandles = ClientHandles(),
                             memoryLimit: UInt64 = 0) throws(KernelError) -> (id: UInt64, port: Handle) {
        var message = IPCMessage(label: ProcessManagerRequest.startService.rawValue)
        message.setWord(atByte: 0, argument)
        message.setWord(atByte: 8, memoryLimit)
        message.setWord(atByte: 16, policy.rawValue)
        message.setWord(atByte: 32, UInt64(name.count))
        message.setWord(atByte: 40, UInt64(program.count))
        message.setWord(atByte: 48, UInt64(arguments.count))
        guard message.setBytes(atByte: 56, name), message.setBytes(atByte: 56 + name.count, program),
              message.setBytes(atByte: 56 + name.count + program.count, arguments) else { throw .invalidArgument }
        message.length = 56 + name.count + program.count + arguments.count
        let reply = try call(&message, handles.tagged)
        guard reply.handleCount == 1 else { throw .invalidArgument }
        return (reply.word(atByte: 0), reply.handle(0))
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
        _ = try serviceCall(&message, name)
    }

    /// Ends service `name`'s running instance on purpose (it is started again at once); the id
    /// of the instance ended.
    @discardableResult
    public func crashService(_ name: UnsafeRawBufferPointer) throws(KernelError) -> UInt64 {
        var message = IPCMessage(label: ProcessManagerRequest.crashService.rawValue)
        return try serviceCall(&message, name).word(atByte: 0)
    }

    func serviceCall(_ message: inout IPCMessage, _ name: UnsafeRawBufferPointer) throws(KernelError) -> IPCMessage {
        message.setWord(atByte: 0, UInt64(name.count))
        guard message.setBytes(atByte: 8, name) else { throw .invalidArgument }
        message.length = 8 + name.count
        return try call(&message, StartHandles())
    }
}

/// The handles a client attaches to a spawn or startService request (at most 4): an optional
/// start handle and tagged ones.
public struct ClientHandles {
    var tagged = StartHandles()
    public init() {}

    /// `handle` becomes the program's start handle (x1).
    public mutating func start(_ handle: Handle) { tagged.appendRaw(0, handle) }
    public mutating func append(_ tag: StartTag, _ handle: Handle) { tagged.append(tag, handle) }
}
