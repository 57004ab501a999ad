// Port-based IPC from user space: typed wrappers over the IPC system calls (docs/IPC.md) and the
// message type whose layout the kernel reads (IPCMessageLayout in the shared ABI).

import UserSystemCall

/// One message: a label, up to 256 payload bytes and up to 4 handles to move with it. The kernel
/// fills `sender` and, for a call, `replyHandle`.
public struct IPCMessage {
    var words = InlineArray<41, UInt64>(repeating: 0)

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

    /// Sets the raw length field, for tests of the kernel's checks.
    public mutating func setRawLength(_ value: UInt64) { words[IPCMessageLayout.length / 8] = value }
    public mutating func setRawHandle(_ index: Int, _ value: UInt64) { words[IPCMessageLayout.handles / 8 + index] = value }
}

public enum IPC {
    static func call(_ number: SystemCallNumber, _ a0: UInt64, _ a1: UInt64 = 0, _ a2: UInt64 = 0) throws(KernelError) -> UInt64 {
        let result = user_system_call(number.rawValue, a0, a1, a2, 0, 0, 0)
        guard result.status == 0 else { throw KernelError(rawValue: result.status) ?? .invalidArgument }
        return result.value0
    }

    static func withMessage(_ message: inout IPCMessage, _ body: (UInt64) -> user_system_call_result) throws(KernelError) {
        let result = withUnsafeMutablePointer(to: &message.words) { body(UInt64(UInt(bitPattern: $0))) }
        guard result.status == 0 else { throw KernelError(rawValue: result.status) ?? .invalidArgument }
    }

    public static func createPort() throws(KernelError) -> Handle { Handle(try call(.portCreate, 0)) }
    public static func createNotification() throws(KernelError) -> Handle { Handle(try call(.notificationCreate, 0)) }
    public static func close(_ handle: Handle) throws(KernelError) { _ = try call(.handleClose, handle.value) }

    public static func duplicate(_ handle: Handle, rights: Rights) throws(KernelError) -> Handle {
        Handle(try call(.handleDuplicate, handle.value, rights.rawValue))
    }

    /// Queues `message` on `port`; `queueFull` if there is no room (nothing is sent then).
    public static func send(_ port: Handle, _ message: inout IPCMessage) throws(KernelError) {
        try withMessage(&message) { user_system_call(SystemCallNumber.send.rawValue, port.value, $0, 0, 0, 0, 0) }
    }

    /// The next message on `port`, waiting up to `timeout` nanoseconds (0: no wait; .max: for ever).
    public static func receive(_ port: Handle, into message: inout IPCMessage, timeout: UInt64 = .max) throws(KernelError) {
        try withMessage(&message) { user_system_call(SystemCallNumber.receive.rawValue, port.value, $0, timeout, 0, 0, 0) }
    }

    /// Sends `message` and waits for the reply, which replaces it.
    public static func call(_ port: Handle, _ message: inout IPCMessage) throws(KernelError) {
        try withMessage(&message) { user_system_call(SystemCallNumber.call.rawValue, port.value, $0, 0, 0, 0, 0) }
    }

    public static func reply(_ handle: Handle, _ message: inout IPCMessage) throws(KernelError) {
        try withMessage(&message) { user_system_call(SystemCallNumber.reply.rawValue, handle.value, $0, 0, 0, 0, 0) }
    }

    /// A server's loop step: answers `reply` (if any) with `message`, then waits up to `timeout`
    /// nanoseconds for the next message on `port`, which replaces it. The answered caller runs
    /// while this thread waits.
    public static func replyAndReceive(_ reply: Handle?, _ port: Handle, _ message: inout IPCMessage,
                                       timeout: UInt64 = .max) throws(KernelError) {
        try withMessage(&message) {
            user_system_call(SystemCallNumber.replyReceive.rawValue, reply?.value ?? 0, $0, port.value, timeout, 0, 0)
        }
    }

    /// A zeroed memory object of `bytes` (rounded up to pages, at most 1 MiB) to share by handle.
    public static func createMemory(bytes: UInt64) throws(KernelError) -> Handle {
        Handle(try call(.memoryCreate, bytes))
    }

    /// Maps a memory object (the handle needs `map`, and `write` for a writable mapping).
    public static func map(_ memory: Handle, writable: Bool) throws(KernelError) -> UnsafeMutableRawPointer {
        let address = try call(.memoryMap, memory.value, writable ? MemoryAccess.write.rawValue : 0)
        return UnsafeMutableRawPointer(bitPattern: UInt(address))!
    }

    /// The index of the first of `handles` (ports and notifications, at most 8) that is ready,
    /// waiting up to `timeout` nanoseconds; then `receive` or `wait` on it does not block.
    public static func waitAny(_ handles: [Handle], timeout: UInt64 = .max) throws(KernelError) -> Int {
        var values = InlineArray<8, UInt64>(repeating: 0)
        for (index, handle) in handles.prefix(8).enumerated() { values[index] = handle.value }
        let result = withUnsafeMutablePointer(to: &values) {
            user_system_call(SystemCallNumber.waitAny.rawValue, UInt64(UInt(bitPattern: $0)), UInt64(handles.count), timeout, 0, 0, 0)
        }
        guard result.status == 0 else { throw KernelError(rawValue: result.status) ?? .invalidArgument }
        return Int(result.value0)
    }

    public static func signal(_ notification: Handle, bits: UInt64) throws(KernelError) {
        _ = try call(.notificationSignal, notification.value, bits)
    }

    public static func wait(_ notification: Handle, timeout: UInt64 = .max) throws(KernelError) -> UInt64 {
        try call(.notificationWait, notification.value, timeout)
    }
}
