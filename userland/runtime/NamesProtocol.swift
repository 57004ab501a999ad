// The name service's protocol (userland/services/names): labels, payload layouts and the typed
// clients of its two ports. `Names` looks services up (the public port, anyone may hold it);
// `NameRegistrar` registers them (the registrar port, held by the process manager alone).
// docs/ARCHITECTURE.md ("The name service") describes the service.
//
// Every request is a call. The answer's label is its status: 0 for success, otherwise the raw
// value of a `KernelError`:
//
// | label | request (port) | payload in | handles in | answer payload, handles |
// |---|---|---|---|---|
// | 1 lookup | public | the name | none | generation, state; a send right (only when up) |
// | 2 list | public | nothing, or a cursor word | none | next cursor, record count, records |
// | 16 register | registrar | the name | a send right | generation |
// | 17 markDown | registrar | the name | none | generation |
// | 18 unregister | registrar | the name | none | nothing |
//
// A name is the whole payload: 1 to 32 bytes, each a letter, digit, '-', '_' or '.' (the
// manifest's rule for service names, `ServiceManifest.isValidName`). Words are 64-bit,
// little-endian, at payload offsets 0 and 8. A list record is the generation (8 bytes), the state
// (1 byte), the name's length (1 byte) and the name, packed from payload offset 16; the next
// cursor is all ones once the listing is complete.
//
// Errors: `invalidArgument` for an unknown label, a bad name or payload length, or handles where
// none belong (or not exactly one for register); `accessDenied` for a registrar request on the
// public port, or a register whose handle is not a send right with duplicate and transfer;
// `notFound` for a name nobody registered; `wouldBlock` for a lookup of a name marked down (its
// service is restarting: look again later; the answer still carries generation and state);
// `outOfMemory` for a register when the table (48 names) is full. A received handle the service
// does not keep is closed.

/// What state a registered name is in.
public enum ServiceState: UInt64, Equatable, Sendable {
    /// The service runs; a lookup answers a send right to its port.
    case up = 1
    /// Its process ended and it is being restarted: the name stays reserved, a lookup answers
    /// `wouldBlock` with no handle until the next registration.
    case restarting = 2
}

/// One name as `Names.list` reports it.
public struct NameRecord: Equatable {
    public let name: ServiceName
    public let generation: UInt64
    public let state: ServiceState
}

public enum NamesProtocol {
    public static let lookup: UInt64 = 1
    public static let list: UInt64 = 2
    public static let register: UInt64 = 16
    public static let markDown: UInt64 = 17
    public static let unregister: UInt64 = 18
    /// As register, with the generation given by the registrar (not 0, below 2^62): word 0, then
    /// the name from byte 8.
    public static let registerGeneration: UInt64 = 19

    /// The status label of a successful answer.
    public static let success: UInt64 = 0
    /// Names the service holds at most: each keeps a handle, and a process's table has 64 slots
    /// (the rest are its two ports, a reply capability and the handles a request can carry).
    public static let maximumNames = 48
    public static let maximumNameLength = 32
    /// A list record's size before its name: generation, state, name length.
    public static let recordHeader = 10
    /// Where list records start in an answer's payload.
    public static let recordsOffset = 16
    /// The cursor of a listing that is complete.
    public static let endOfList = UInt64.max
    /// The rights of a registered send right, and of the copies lookups hand out.
    public static let portRights: Rights = [.send, .duplicate, .transfer]

    /// Calls `body` with the payload as it was received (its length).
    public static func withPayload<Result>(_ message: inout IPCMessage,
                                           _ body: (UnsafeMutableRawBufferPointer) -> Result) -> Result {
        let length = min(max(message.length, 0), IPCMessageLayout.maximumPayload)
        return withUnsafeMutableBytes(of: &message.words) { words in
            body(UnsafeMutableRawBufferPointer(rebasing: words[IPCMessageLayout.payload..<IPCMessageLayout.payload + length]))
        }
    }

    /// A request with `label` whose payload is `name`.
    static func request(_ label: UInt64, name: UnsafeRawBufferPointer) throws(KernelError) -> IPCMessage {
        guard name.count <= IPCMessageLayout.maximumPayload else { throw .invalidArgument }
        var message = IPCMessage(label: label)
        message.length = name.count
        withPayload(&message) { payload in
            for index in 0..<name.count { payload[index] = name[index] }
        }
        return message
    }

    /// Calls `port` with `message` and checks the answer's status; any handle a failed answer
    /// carries is closed.
    static func call(_ port: Handle, _ message: inout IPCMessage) throws(KernelError) {
        try IPC.call(port, &message)
        if let error = System.answered(message.label) {
            message.closeHandles()
            throw error
        }
    }
}

/// A client of the name service's public port.
public struct Names {
    public let handle: Handle

    public init(_ handle: Handle) { self.handle = handle }

    /// The name service as the loader gave it to this program (start block tag `names`).
    public static var shared: Names? { ProgramStart.handle(.names).map { Names($0) } }

    /// A send right to the port of the service registered as `name` (the caller's to close), and
    /// the generation of its registration. `notFound` if no service has the name; `wouldBlock`
    /// while it is restarting.
    public func lookup(_ name: UnsafeRawBufferPointer) throws(KernelError) -> (port: Handle, generation: UInt64) {
        var message = try NamesProtocol.request(NamesProtocol.lookup, name: name)
        try NamesProtocol.call(handle, &message)
        guard message.handleCount == 1 else {
            message.closeHandles()
            throw .invalidArgument
        }
        return (message.handle(0), message.word(atByte: 0))
    }

    public func lookup(_ name: StaticString) throws(KernelError) -> (port: Handle, generation: UInt64) {
        try lookup(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    public func lookup(_ name: ServiceName) throws(KernelError) -> (port: Handle, generation: UInt64) {
        try name.withBytes { bytes throws(KernelError) in try lookup(bytes) }
    }

    /// Calls `body` with every registered name, in table order, one answer of a few names at a
    /// time (a name registered or removed meanwhile may be missed).
    public func list(_ body: (NameRecord) -> Void) throws(KernelError) {
        var cursor: UInt64 = 0
        while cursor != NamesProtocol.endOfList {
            var message = IPCMessage(label: NamesProtocol.list)
            message.length = 8
            message.setWord(atByte: 0, cursor)
            try NamesProtocol.call(handle, &message)
            let next = message.word(atByte: 0)
            let count = message.word(atByte: 8)
            guard message.length >= NamesProtocol.recordsOffset, next > cursor else { throw .invalidArgument }
            let found = NamesProtocol.withPayload(&message) { payload -> Int in
                var offset = NamesProtocol.recordsOffset
                var found = 0
                while UInt64(found) < count && offset + NamesProtocol.recordHeader <= payload.count {
                    var generation: UInt64 = 0
                    for index in 0..<8 { generation |= UInt64(payload[offset + index]) << (8 * UInt64(index)) }
                    let length = Int(payload[offset + 9])
                    let nameStart = offset + NamesProtocol.recordHeader
                    guard nameStart + length <= payload.count, let state = ServiceState(rawValue: UInt64(payload[offset + 8])),
                          let name = ServiceName(UnsafeRawBufferPointer(rebasing: payload[nameStart..<nameStart + length])) else { break }
                    body(NameRecord(name: name, generation: generation, state: state))
                    found += 1
                    offset = nameStart + length
                }
                return found
            }
            guard UInt64(found) == count else { throw .invalidArgument }
            cursor = next
        }
    }
}

/// A client of the name service's registrar port.
public struct NameRegistrar {
    public let handle: Handle

    public init(_ handle: Handle) { self.handle = handle }

    /// The registrar port as the loader gave it to this program (start block tag `registration`).
    public static var shared: NameRegistrar? { ProgramStart.handle(.registration).map { NameRegistrar($0) } }

    /// Registers `port` (a send right with duplicate and transfer) as `name`: a new name, or a new
    /// instance of a restarted service, whose previous port is forgotten. Returns the
    /// registration's generation: 1 for a new name, one more for each registration after. `port`
    /// is used up whatever the result (moved to the service, or closed).
    @discardableResult
    public func register(_ name: UnsafeRawBufferPointer, port: Handle) throws(KernelError) -> UInt64 {
        try register(port) { () throws(KernelError) in try NamesProtocol.request(NamesProtocol.register, name: name) }
    }

    /// Registers `port` as `name`'s instance number `generation` (not 0), which the registrar
    /// counts itself: the numbers then keep growing when the name service restarts.
    @discardableResult
    public func register(_ name: UnsafeRawBufferPointer, port: Handle, generation: UInt64) throws(KernelError) -> UInt64 {
        try register(port) { () throws(KernelError) in
            guard name.count >= 1, name.count <= NamesProtocol.maximumNameLength else { throw .invalidArgument }
            var message = IPCMessage(label: NamesProtocol.registerGeneration)
            message.fill(count: 8 + name.count) { index in
                index < 8 ? UInt8(truncatingIfNeeded: generation >> (8 * UInt64(index))) : name[index - 8]
            }
            return message
        }
    }

    /// Sends the registration `request` makes with `port` attached; the generation answered.
    private func register(_ port: Handle, _ request: () throws(KernelError) -> IPCMessage) throws(KernelError) -> UInt64 {
        do throws(KernelError) {
            var message = try request()
            message.attach(port)
            try NamesProtocol.call(handle, &message)
            return message.word(atByte: 0)
        } catch {
            // Still here if the request never left; if it did, the handle's generation has moved on
            // and this fails harmlessly.
            try? IPC.close(port)
            throw error
        }
    }

    @discardableResult
    public func register(_ name: StaticString, port: Handle) throws(KernelError) -> UInt64 {
        try register(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), port: port)
    }

    @discardableResult
    public func register(_ name: ServiceName, port: Handle) throws(KernelError) -> UInt64 {
        try name.withBytes { bytes throws(KernelError) in try register(bytes, port: port) }
    }

    /// The service registered as `name` ended and will be restarted: its port is forgotten and
    /// lookups answer `wouldBlock` until the next `register`. Returns the generation that ended.
    @discardableResult
    public func markDown(_ name: UnsafeRawBufferPointer) throws(KernelError) -> UInt64 {
        var message = try NamesProtocol.request(NamesProtocol.markDown, name: name)
        try NamesProtocol.call(handle, &message)
        return message.word(atByte: 0)
    }

    @discardableResult
    public func markDown(_ name: StaticString) throws(KernelError) -> UInt64 {
        try markDown(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    @discardableResult
    public func markDown(_ name: ServiceName) throws(KernelError) -> UInt64 {
        try name.withBytes { bytes throws(KernelError) in try markDown(bytes) }
    }

    /// Removes `name` and forgets its port.
    public func unregister(_ name: UnsafeRawBufferPointer) throws(KernelError) {
        var message = try NamesProtocol.request(NamesProtocol.unregister, name: name)
        try NamesProtocol.call(handle, &message)
    }

    public func unregister(_ name: StaticString) throws(KernelError) {
        try unregister(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    public func unregister(_ name: ServiceName) throws(KernelError) {
        try name.withBytes { bytes throws(KernelError) in try unregister(bytes) }
    }
}
