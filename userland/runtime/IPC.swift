// Port-based IPC from user space: typed wrappers over the IPC system calls (docs/IPC.md) and the
// message type whose layout the kernel reads (IPCMessageLayout in the ABI).

import UserSystemCall

/// One message: a label, up to 256 payload bytes and up to 4 handles to move with it. The kernel
/// fills `sender` and, for a call, `replyHandle`.
public struct IPCMessage {
    var words = IPCMessageWords(repeating: 0)

    public init(label: UInt64 = 0) { self.label = label }

    public var label: UInt64 {
        get { words[IPCMessageLayout.label / 8] }
        set { words[IPCMessageLayout.label / 8] = newValue }
    }
    public var length: Int {
        get { Int(words[IPCMessageLayout.length / 8]) }
        set { words[IPCMessageLayout.length / 8] = UInt64(newValue) }
    }
    public var sender: ProcessID { ProcessID(words[IPCMessageLayout.sender / 8]) }
    public var replyHandle: Handle? {
        let value = words[IPCMessageLayout.replyHandle / 8]
        return value == 0 ? nil : Handle(value)
    }
    public var handleCount: Int {
        get { Int(words[IPCMessageLayout.handleCount / 8]) }
        set { words[IPCMessageLayout.handleCount / 8] = UInt64(newValue) }
    }
    public func handle(_ index: Int) -> Handle { Handle(words[IPCMessageLayout.handles / 8 + index]) }

    /// Closes the handles the message carries (a received one whose handles are not kept).
    public func closeHandles() {
        for index in 0..<min(handleCount, IPCMessageLayout.maximumHandles) { try? IPC.close(handle(index)) }
    }

    /// Adds a handle to move with the message.
    public mutating func attach(_ handle: Handle) {
        words[IPCMessageLayout.handles / 8 + handleCount] = handle.value
        handleCount += 1
    }

    public subscript(byte index: Int) -> UInt8 {
        get { withUnsafeBytes(of: words) { $0[IPCMessageLayout.payload + index] } }
        set { withUnsafeMutableBytes(of: &words) { $0[IPCMessageLayout.payload + index] = newValue } }
    }

    /// Sets the payload to `count` bytes made by `byte(index)`.
    public mutating func fill(count: Int, _ byte: (Int) -> UInt8) {
        length = count
        withUnsafeMutableBytes(of: &words) { for index in 0..<count { $0[IPCMessageLayout.payload + index] = byte(index) } }
    }

    /// The payload's 64-bit little-endian word at byte `offset` (a multiple of 8).
    public func word(atByte offset: Int) -> UInt64 { words[(IPCMessageLayout.payload + offset) / 8] }
    public mutating func setWord(atByte offset: Int, _ value: UInt64) {
        words[(IPCMessageLayout.payload + offset) / 8] = value
    }

    /// Sets the raw length field, for tests of the kernel's checks.
    public mutating func setRawLength(_ value: UInt64) { words[IPCMessageLayout.length / 8] = value }
    public mutating func setRawHandle(_ index: Int, _ value: UInt64) { words[IPCMessageLayout.handles / 8 + index] = value }
}

/// A message that travels in registers (`callRegisters`, `replyReceiveRegisters`): a label and up
/// to 64 payload bytes, no handles. The kernel moves it from one thread's registers to the
/// other's; the words past its length arrive as zero. A server also gets `replyHandle` (for a
/// call) and `sender`.
public struct RegisterMessage {
    /// x0-x4, then the payload's x9-x16: what `user_system_call_registers` loads and stores.
    var words = InlineArray<13, UInt64>(repeating: 0)
    static let firstPayloadWord = 5

    public init(label: UInt64 = 0) { self.label = label }

    public var label: UInt64 {
        get { words[RegisterMessageLayout.label] }
        set { words[RegisterMessageLayout.label] = newValue }
    }
    public var length: Int {
        get { Int(words[RegisterMessageLayout.length]) }
        set { words[RegisterMessageLayout.length] = UInt64(newValue) }
    }
    /// The length word as it is, for the calls: `length` converts it, a test more on every call.
    var rawLength: UInt64 { words[RegisterMessageLayout.length] }
    public var replyHandle: Handle? {
        let value = words[RegisterMessageLayout.replyHandle]
        return value == 0 ? nil : Handle(value)
    }
    public var sender: ProcessID { ProcessID(words[RegisterMessageLayout.sender]) }

    /// The payload's word `index` (0-7), little-endian bytes `8 * index` up.
    public func word(_ index: Int) -> UInt64 { words[Self.firstPayloadWord + index] }
    public mutating func setWord(_ index: Int, _ value: UInt64) { words[Self.firstPayloadWord + index] = value }

    public subscript(byte index: Int) -> UInt8 {
        get { UInt8(truncatingIfNeeded: word(index / 8) >> (UInt64(index % 8) * 8)) }
        set {
            let shift = UInt64(index % 8) * 8
            setWord(index / 8, word(index / 8) & ~(0xff << shift) | UInt64(newValue) << shift)
        }
    }

    /// Sets the payload to `count` bytes (at most 64) made by `byte(index)`.
    public mutating func fill(count: Int, _ byte: (Int) -> UInt8) {
        length = count
        for index in 0..<count { self[byte: index] = byte(index) }
    }

    /// Makes the call with the argument registers `call` gives (x0-x4) and the payload; the status.
    mutating func invoke<Call: SystemCallArguments>(_ call: Call) throws(KernelError) {
        let registers = call.registers
        (words[0], words[1], words[2], words[3], words[4]) = (registers.x0, registers.x1, registers.x2, registers.x3,
                                                              registers.x4)
        withUnsafeMutablePointer(to: &words) { words in
            words.withMemoryRebound(to: UInt64.self, capacity: 13) { user_system_call_registers(Call.number.rawValue, $0) }
        }
        if let error = KernelError(status: words[0]) {
            if error == .outOfMemory { System.outOfMemoryResults &+= 1 }
            throw error
        }
    }

    /// `invoke` by `svc #immediate` with the number in x8, whatever the call: for the tests that
    /// `svc #0` and an immediate the kernel does not name a call by (3) reach the same call.
    mutating func invoke<Call: SystemCallArguments>(_ call: Call, svc immediate: UInt64) throws(KernelError) {
        let registers = call.registers
        (words[0], words[1], words[2], words[3], words[4]) = (registers.x0, registers.x1, registers.x2, registers.x3,
                                                              registers.x4)
        withUnsafeMutablePointer(to: &words) { words in
            words.withMemoryRebound(to: UInt64.self, capacity: 13) {
                user_system_call_registers_by(immediate == 3 ? 3 : 0, Call.number.rawValue, $0)
            }
        }
        if let error = KernelError(status: words[0]) { throw error }
    }
}

public enum IPC {
    /// Runs `body` with the address of `message`'s words, for the calls that read or write it.
    @inline(__always)
    static func withMessage<Result>(_ message: inout IPCMessage,
                                    _ body: (UserAddress) throws(KernelError) -> Result) throws(KernelError) -> Result {
        try withUnsafeMutablePointer(to: &message.words) { words throws(KernelError) in try body(UserAddress(words)) }
    }

    public static func createPort() throws(KernelError) -> Handle { try System.invoke(SystemCall.PortCreate()).handle }
    public static func createNotification() throws(KernelError) -> Handle {
        try System.invoke(SystemCall.NotificationCreate()).handle
    }
    public static func close(_ handle: Handle) throws(KernelError) { _ = try System.invoke(SystemCall.HandleClose(handle: handle)) }

    public static func duplicate(_ handle: Handle, rights: Rights) throws(KernelError) -> Handle {
        try System.invoke(SystemCall.HandleDuplicate(handle: handle, rights: rights)).handle
    }

    /// Queues `message` on `port`; `queueFull` if there is no room (nothing is sent then).
    public static func send(_ port: Handle, _ message: inout IPCMessage) throws(KernelError) {
        _ = try withMessage(&message) { address throws(KernelError) in
            try System.invoke(SystemCall.Send(port: port, message: address))
        }
    }

    /// The next message on `port`, waiting up to `timeout` nanoseconds (0: no wait; .max: for ever).
    public static func receive(_ port: Handle, into message: inout IPCMessage, timeout: UInt64 = .max) throws(KernelError) {
        _ = try withMessage(&message) { address throws(KernelError) in
            try System.invoke(SystemCall.Receive(port: port, message: address, timeout: timeout))
        }
    }

    /// Sends `message` and waits for the reply, which replaces it.
    public static func call(_ port: Handle, _ message: inout IPCMessage) throws(KernelError) {
        _ = try withMessage(&message) { address throws(KernelError) in
            try System.invoke(SystemCall.Call(port: port, message: address))
        }
    }

    public static func reply(_ handle: Handle, _ message: inout IPCMessage) throws(KernelError) {
        _ = try withMessage(&message) { address throws(KernelError) in
            try System.invoke(SystemCall.Reply(reply: handle, message: address))
        }
    }

    /// A server's loop step: answers `reply` (if any) with `message`, then waits up to `timeout`
    /// nanoseconds for the next message on `port`, which replaces it. The answered caller runs
    /// while this thread waits.
    public static func replyAndReceive(_ reply: Handle?, _ port: Handle, _ message: inout IPCMessage,
                                       timeout: UInt64 = .max) throws(KernelError) {
        _ = try withMessage(&message) { address throws(KernelError) in
            try System.invoke(SystemCall.ReplyReceive(reply: reply ?? .none, message: address, port: port, timeout: timeout))
        }
    }

    /// `call` with the message in registers: `message` goes to `port`, and the answer replaces
    /// it. An answer that does not fit in registers fails the call with `messageTooLong`.
    public static func callInRegisters(_ port: Handle, _ message: inout RegisterMessage) throws(KernelError) {
        try message.invoke(SystemCall.CallRegisters(port: port, label: message.label, length: message.rawLength))
    }

    /// `replyAndReceive` with both messages in registers: answers `reply` (if any) with `message`,
    /// then waits up to `timeout` nanoseconds for the next message on `port`, which replaces it.
    /// A message that does not fit in registers is `messageTooLong` and stays first in the
    /// queue, for `receive` to take.
    public static func replyAndReceiveInRegisters(_ reply: Handle?, _ port: Handle, _ message: inout RegisterMessage,
                                                  timeout: UInt64 = .max) throws(KernelError) {
        try message.invoke(SystemCall.ReplyReceiveRegisters(reply: reply ?? .none, label: message.label,
                                                            length: message.rawLength, port: port, timeout: timeout))
    }

    /// A zeroed memory object of `bytes` (rounded up to pages, at most 1 MiB) to share by handle;
    /// with `.onDemand`, each page is taken when first touched.
    public static func createMemory(bytes: UInt64, options: MemoryOptions = []) throws(KernelError) -> Handle {
        try System.invoke(SystemCall.MemoryCreate(bytes: bytes, options: options)).handle
    }

    /// Maps a memory object (the handle needs `map`, and `write` for a writable mapping).
    public static func map(_ memory: Handle, writable: Bool) throws(KernelError) -> UnsafeMutableRawPointer {
        try mapWithSize(memory, writable: writable).address
    }

    /// As `map`, with the mapping's size: the object's, whatever its sender said.
    public static func mapWithSize(_ memory: Handle, writable: Bool) throws(KernelError)
        -> (address: UnsafeMutableRawPointer, bytes: Int) {
        let mapped = try System.invoke(SystemCall.MemoryMap(memory: memory, access: writable ? .write : []))
        guard let pointer = UnsafeMutableRawPointer(bitPattern: UInt(mapped.address.value)) else { throw .outOfMemory }
        return (pointer, Int(mapped.bytes))
    }

    /// Copies `bytes` into memory object `memory` (needs write) at byte `offset`, without
    /// mapping it.
    public static func writeMemory(_ memory: Handle, at offset: UInt64, from bytes: UnsafeRawBufferPointer) throws(KernelError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = try System.invoke(SystemCall.MemoryWrite(memory: memory, offset: offset, address: UserAddress(base),
                                                     bytes: UInt64(bytes.count)))
    }

    /// Copies `bytes.count` bytes of memory object `memory` (needs map) from byte `offset` into
    /// `bytes`, without mapping it.
    public static func readMemory(_ memory: Handle, at offset: UInt64, into bytes: UnsafeMutableRawBufferPointer) throws(KernelError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = try System.invoke(SystemCall.MemoryRead(memory: memory, offset: offset, address: UserAddress(base),
                                                    bytes: UInt64(bytes.count)))
    }

    /// The index of the first of `handles` (ports and notifications, at most 8) that is ready,
    /// waiting up to `timeout` nanoseconds; then `receive` or `wait` on it does not block.
    public static func waitAny(_ handles: [Handle], timeout: UInt64 = .max) throws(KernelError) -> Int {
        var values = InlineArray<8, UInt64>(repeating: 0)
        for (index, handle) in handles.prefix(8).enumerated() { values[index] = handle.value }
        let result = try withUnsafeMutablePointer(to: &values) { words throws(KernelError) in
            try System.invoke(SystemCall.WaitAny(handles: UserAddress(words), count: UInt64(handles.count), timeout: timeout))
        }
        return Int(result.index)
    }

    public static func signal(_ notification: Handle, bits: UInt64) throws(KernelError) {
        _ = try System.invoke(SystemCall.NotificationSignal(notification: notification, bits: bits))
    }

    public static func wait(_ notification: Handle, timeout: UInt64 = .max) throws(KernelError) -> UInt64 {
        try System.invoke(SystemCall.NotificationWait(notification: notification, timeout: timeout)).bits
    }
}
