// The rules of moving a message between two processes, apart from how user memory is reached:
// a message is read from the sender's buffer with the handles it lists taken out of the sender's
// table, and written into a receiver's buffer with them installed in the receiver's table. Both
// steps are all or nothing: a failure leaves the tables, and the message, as they were. The
// kernel reaches user memory with unprivileged copies; host tests use memory of their own.

/// How the transfer reaches user memory: both copies check the range and report a fault as
/// `badAddress`.
public protocol UserMemoryAccess {
    func copyIn(to kernel: UnsafeMutableRawPointer, from user: UserAddress, count: UInt64) throws(KernelError)
    func copyOut(to user: UserAddress, from kernel: UnsafeRawPointer, count: UInt64) throws(KernelError)
}

/// A handle on its way between tables: the object and the rights it had in the sender's.
public struct MovedHandle<Object> {
    public var object: Object
    public var rights: Rights
    public init(object: Object, rights: Rights) {
        self.object = object
        self.rights = rights
    }
}

/// Up to four handles moving with a message. Plain fields rather than an inline array: indexing
/// an inline array stored in a struct can copy the whole array, on every access. The fields sit
/// in an optional that stays nil until a handle is stored, so dropping a message that never
/// carried one (most do not) tests one word instead of releasing four empty fields.
public struct MovedHandles<Object> {
    struct Fields {
        var first: MovedHandle<Object>?
        var second: MovedHandle<Object>?
        var third: MovedHandle<Object>?
        var fourth: MovedHandle<Object>?
    }

    var fields: Fields?

    public init() {}

    /// Lets go of every handle, leaving the fields empty as before the first was stored. Out of
    /// line: most messages carry no handles, and their paths stay short.
    @inline(never)
    public mutating func removeAll() { fields = nil }

    public subscript(index: Int) -> MovedHandle<Object>? {
        get {
            guard let fields else { return nil }
            switch index {
            case 0: return fields.first
            case 1: return fields.second
            case 2: return fields.third
            default: return fields.fourth
            }
        }
        set {
            if fields == nil {
                guard newValue != nil else { return }
                fields = Fields()
            }
            switch index {
            case 0: fields!.first = newValue
            case 1: fields!.second = newValue
            case 2: fields!.third = newValue
            default: fields!.fourth = newValue
            }
        }
    }
}

/// A message between the copy from the sender and the copy to the receiver: in a port's queue,
/// or on its way straight to a waiting receiver.
public struct InFlightMessage<Object> {
    public var label: UInt64 = 0
    public var length = 0
    public var sender: UInt64 = 0
    public var handles = MovedHandles<Object>()
    public var handleCount = 0
    /// The payload's bytes: a buffer owned by the port's queue slot or the waiting caller, so the
    /// message itself stays a few words and user data is copied once in and once out.
    public var payload: UnsafeMutableRawPointer?
    /// For a call: the one-time capability to answer it, installed with `Rights.reply`.
    public var reply: Object?

    public init() {}

    /// Hands every handle the message still holds, and its reply capability, to `release`: the
    /// message is dropped (its port closed, or its receiver could not take it).
    public mutating func releaseAll(_ release: (MovedHandle<Object>) -> Void) {
        for index in 0..<handleCount {
            if let handle = handles[index] { release(handle) }
            handles[index] = nil
        }
        handleCount = 0
        if let reply { release(MovedHandle(object: reply, rights: .reply)) }
        reply = nil
    }
}

extension InFlightMessage where Object == KernelObject {
    /// Releases every handle the message still holds, and its reply capability: the message is
    /// dropped.
    public mutating func releaseAll() { releaseAll { $0.release() } }
}

extension KernelError {
    /// The system call error for a handle-table failure.
    public init(_ error: HandleError) {
        switch error {
        case .invalidHandle: self = .invalidHandle
        case .accessDenied: self = .accessDenied
        case .tableFull: self = .handleTableFull
        }
    }
}

public enum MessageTransfer {
    /// Whether a whole `IPCMessage` at `address` lies in user space, 8-byte aligned.
    @inline(__always)
    public static func isMessageAddress(_ address: UserAddress) -> Bool {
        address.value & 7 == 0 && UserSpace.contains(address, count: UInt64(IPCMessageLayout.size))
    }

    /// Reads the message at `address` into `message` and takes the handles it lists out of
    /// `sender` (each needs the transfer right and must not hold the receive right; none listed
    /// twice). A receive right stays in its table: in a queue it could keep its own port alive
    /// (its handle queued on itself, or two ports' handles on each other). All or nothing: on an error
    /// the sender keeps every handle. The header passes through `header` (scratch for
    /// `IPCMessageLayout.headerWords` words); the payload goes to `payload`.
    @inline(__always)
    public static func readIn<Object, Memory: UserMemoryAccess>(
        _ message: inout InFlightMessage<Object>, from address: UserAddress, memory: Memory,
        sender: inout HandleTable<Object>, senderID: UInt64, header: UnsafeMutablePointer<UInt64>,
        payload: UnsafeMutableRawPointer
    ) throws(KernelError) {
        guard address.value & 7 == 0 else { throw .badAddress }
        // The header first; then only as much payload as the message says it carries.
        try memory.copyIn(to: header, from: address, count: UInt64(IPCMessageLayout.payload))
        let length = header[IPCMessageLayout.length / 8]
        let count = header[IPCMessageLayout.handleCount / 8]
        guard length <= UInt64(IPCMessageLayout.maximumPayload), count <= UInt64(IPCMessageLayout.maximumHandles) else {
            throw .invalidArgument
        }
        if length > 0 {
            try memory.copyIn(to: payload, from: address.advanced(by: UInt64(IPCMessageLayout.payload)),
                              count: (length + 7) & ~7)
        }
        // Check every handle first, then move them all: no move can fail after the checks.
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<Int(count) {
            for earlier in 0..<index where handles[earlier] == handles[index] { throw .invalidArgument }
            let rights: Rights
            do throws(HandleError) {
                rights = try sender.lookup(Handle(handles[index]), requiring: .transfer).rights
            } catch {
                throw KernelError(error)
            }
            guard !rights.contains(.receive) else { throw .accessDenied }
        }
        for index in 0..<Int(count) {
            guard let (object, rights) = try? sender.remove(Handle(handles[index])) else { continue }
            message.handles[index] = MovedHandle(object: object, rights: rights)
        }
        message.label = header[IPCMessageLayout.label / 8]
        message.length = Int(length)
        message.handleCount = Int(count)
        message.sender = senderID
        message.payload = payload
    }

    /// Writes `message` at `address`, installing its handles (and reply capability) in
    /// `receiver`. All or nothing: if they do not fit or the memory is not writable, the message
    /// keeps everything and the error says why. The header is built in `header` (scratch).
    public static func writeOut<Object, Memory: UserMemoryAccess>(
        _ message: inout InFlightMessage<Object>, to address: UserAddress, memory: Memory,
        receiver: inout HandleTable<Object>, header: UnsafeMutablePointer<UInt64>
    ) throws(KernelError) {
        guard isMessageAddress(address) else { throw .badAddress }
        let needed = message.handleCount + (message.reply == nil ? 0 : 1)
        guard receiver.capacity - receiver.count >= needed else { throw .handleTableFull }
        header[IPCMessageLayout.label / 8] = message.label
        header[IPCMessageLayout.length / 8] = UInt64(message.length)
        header[IPCMessageLayout.handleCount / 8] = UInt64(message.handleCount)
        header[IPCMessageLayout.sender / 8] = message.sender
        header[IPCMessageLayout.replyHandle / 8] = 0
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<IPCMessageLayout.maximumHandles { handles[index] = 0 }
        // Room was checked, so every insert succeeds.
        for index in 0..<message.handleCount {
            guard let moved = message.handles[index],
                  let handle = try? receiver.insert(moved.object, rights: moved.rights) else { continue }
            handles[index] = handle.value
        }
        if let reply = message.reply, let handle = try? receiver.insert(reply, rights: .reply) {
            header[IPCMessageLayout.replyHandle / 8] = handle.value
        }
        do throws(KernelError) {
            try memory.copyOut(to: address, from: header, count: UInt64(IPCMessageLayout.payload))
            if message.length > 0, let payload = message.payload {
                try memory.copyOut(to: address.advanced(by: UInt64(IPCMessageLayout.payload)), from: payload,
                                   count: UInt64((message.length + 7) & ~7))
            }
        } catch {
            // Not taken: the handles leave the receiver's table again; the message still holds them.
            for index in 0..<message.handleCount where handles[index] != 0 { receiver.discard(Handle(handles[index])) }
            if header[IPCMessageLayout.replyHandle / 8] != 0 {
                receiver.discard(Handle(header[IPCMessageLayout.replyHandle / 8]))
            }
            throw error
        }
        // Taken: the receiver's table holds the handles now.
        if message.handleCount > 0 { message.handles.removeAll() }
        message.handleCount = 0
        message.reply = nil
    }
}

// Messages in registers (`RegisterMessageLayout`): the short messages of `callRegisters` and
// `replyReceiveRegisters`, read from the sender's saved registers and written into the
// receiver's, never through user memory. `registers` points at a thread's saved x0.
extension MessageTransfer {
    /// Reads the message in `registers` into `message`, its payload into `payload` (at least
    /// `RegisterMessageLayout.maximumPayload` bytes). A length over 64 is `invalidArgument`.
    @inline(__always)
    public static func readIn<Object>(_ message: inout InFlightMessage<Object>, fromRegisters registers: UnsafePointer<UInt64>,
                                      senderID: UInt64, payload: UnsafeMutableRawPointer) throws(KernelError) {
        let length = registers[RegisterMessageLayout.length]
        guard length <= UInt64(RegisterMessageLayout.maximumPayload) else { throw .invalidArgument }
        let words = payload.assumingMemoryBound(to: UInt64.self)
        for index in 0..<Int((length + 7) / 8) { words[index] = registers[RegisterMessageLayout.payload + index] }
        message.label = registers[RegisterMessageLayout.label]
        message.length = Int(length)
        message.sender = senderID
        message.payload = payload
    }

    /// Writes `message` into `registers`, installing its reply capability (if it is a call) in
    /// `receiver`: label, length, reply handle (0: none), sender and the payload words, the words
    /// past its length zero. A message with handles or more than 64 bytes is `messageTooLong`,
    /// and one whose reply capability finds no room `handleTableFull`; either way nothing
    /// changed and the message keeps everything.
    @inline(__always)
    public static func writeOut<Object>(_ message: inout InFlightMessage<Object>,
                                        toRegisters registers: UnsafeMutablePointer<UInt64>,
                                        receiver: inout HandleTable<Object>) throws(KernelError) {
        guard message.handleCount == 0, message.length <= RegisterMessageLayout.maximumPayload else {
            throw .messageTooLong
        }
        var replyHandle: UInt64 = 0
        if let reply = message.reply {
            do throws(HandleError) {
                replyHandle = try receiver.insert(reply, rights: .reply).value
            } catch {
                throw KernelError(error)
            }
            message.reply = nil
        }
        registers[RegisterMessageLayout.label] = message.label
        registers[RegisterMessageLayout.length] = UInt64(message.length)
        registers[RegisterMessageLayout.replyHandle] = replyHandle
        registers[RegisterMessageLayout.sender] = message.sender
        copyPayload(from: message.payload, length: message.length, to: registers)
    }

    /// The payload words of a `length`-byte message (at most `RegisterMessageLayout.maximumPayload`)
    /// from `payload` into `registers`' payload registers, zero past the length (the receiver
    /// sees none of the sender's other words).
    ///
    /// One straight copy per number of words, picked by a jump table: the loop's own form
    /// compared and branched at every word. No words at all, the commonest, is tested first.
    @inline(__always)
    public static func copyPayload(from payload: UnsafeRawPointer?, length: Int, to registers: UnsafeMutablePointer<UInt64>) {
        let source = payload?.assumingMemoryBound(to: UInt64.self)
        let payloadRegisters = registers + RegisterMessageLayout.payload
        guard length > 0 else { return copyWords(0, from: source, to: payloadRegisters) }
        switch (length + 7) / 8 {
        case 1: copyWords(1, from: source, to: payloadRegisters)
        case 2: copyWords(2, from: source, to: payloadRegisters)
        case 3: copyWords(3, from: source, to: payloadRegisters)
        case 4: copyWords(4, from: source, to: payloadRegisters)
        case 5: copyWords(5, from: source, to: payloadRegisters)
        case 6: copyWords(6, from: source, to: payloadRegisters)
        case 7: copyWords(7, from: source, to: payloadRegisters)
        default: copyWords(8, from: source, to: payloadRegisters)
        }
    }

    /// `count` words from `source`, then zeros, into the `RegisterMessageLayout.payloadWords`
    /// words at `destination`; `count` a constant, so that it unrolls into loads and stores. Two
    /// words at a time, both loaded before either is stored: the two places may overlap as far
    /// as the compiler knows, and a store between two loads would keep them from pairing.
    @inline(__always)
    private static func copyWords(_ count: Int, from source: UnsafePointer<UInt64>?,
                                  to destination: UnsafeMutablePointer<UInt64>) {
        for index in stride(from: 0, to: RegisterMessageLayout.payloadWords, by: 2) {
            let first = index < count ? source.unsafelyUnwrapped[index] : 0
            let second = index + 1 < count ? source.unsafelyUnwrapped[index + 1] : 0
            destination[index] = first
            destination[index + 1] = second
        }
    }
}
