// The user runtime's view of the kernel: typed wrappers over the system calls of
// kernel/core/SystemCallABI.swift, with errors as `KernelError` values.

import UserSystemCall

public struct ProcessID: Equatable {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
}

public enum System {
    @inline(__always)
    static func call(_ number: SystemCallNumber, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0)
        -> (status: KernelError, value0: UInt64, value1: UInt64)
    {
        let result = user_system_call(number.rawValue, a0, a1, a2, 0, 0, 0)
        return (KernelError(rawValue: result.status) ?? .invalidArgument, result.value0, result.value1)
    }

    /// The argument the parent passed when it started this program.
    public static var startArgument: UInt64 { user_read_start_argument() }

    public static func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        _ = call(.debugWrite, UInt64(UInt(bitPattern: base)), UInt64(bytes.count))
    }

    /// Prints one line.
    public static func print(_ text: FormattedText) {
        var line = text.line
        line.write(byte: UInt8(ascii: "\n"))
        line.withUnsafeBytes { write($0) }
    }

    public static func exit(_ code: UInt64) -> Never {
        _ = call(.exit, code)
        while true {}
    }

    public static func yield() { _ = call(.yield) }

    public static func sleep(nanoseconds: UInt64) { _ = call(.sleep, nanoseconds) }

    public static var clock: (ticks: UInt64, frequency: UInt64) {
        let result = call(.clock)
        return (result.value0, result.value1)
    }

    public static var processID: ProcessID { ProcessID(call(.processID).value0) }
    public static var parentID: ProcessID { ProcessID(call(.processID).value1) }
    public static var threadID: UInt64 { call(.threadID).value0 }

    /// The handle the parent passed at spawn, if any.
    public static var startHandle: Handle? {
        let value = user_read_start_handle()
        return value == 0 ? nil : Handle(value)
    }

    /// Starts `name` from the initial ramdisk with `argument` as its start argument, moving
    /// `handle` (which needs the transfer right) to it.
    public static func spawn(_ name: StaticString, argument: UInt64 = 0, handle: Handle? = nil) throws(KernelError) -> ProcessID {
        let result = user_system_call(SystemCallNumber.spawn.rawValue, UInt64(UInt(bitPattern: name.utf8Start)),
                                      UInt64(name.utf8CodeUnitCount), argument, handle?.value ?? 0, 0, 0)
        guard result.status == 0 else { throw KernelError(rawValue: result.status) ?? .invalidArgument }
        return ProcessID(result.value0)
    }

    public static func wait(_ child: ProcessID) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        let result = call(.wait, child.value)
        guard result.status == .success else { throw result.status }
        return (ExitReason(rawValue: result.value1) ?? .killed, result.value0)
    }

    public static func kill(_ process: ProcessID) throws(KernelError) {
        let status = call(.kill, process.value).status
        guard status == .success else { throw status }
    }

    public static func map(bytes: UInt64, access: MemoryAccess) throws(KernelError) -> UnsafeMutableRawPointer {
        let result = call(.map, bytes, access.rawValue)
        guard result.status == .success, let pointer = UnsafeMutableRawPointer(bitPattern: UInt(result.value0)) else {
            throw result.status == .success ? .outOfMemory : result.status
        }
        return pointer
    }

    public static func unmap(_ pointer: UnsafeMutableRawPointer, bytes: UInt64) throws(KernelError) {
        let status = call(.unmap, UInt64(UInt(bitPattern: pointer)), bytes).status
        guard status == .success else { throw status }
    }

    public static var memory: (freeFrames: UInt64, totalFrames: UInt64) {
        let result = call(.memoryStatistics)
        return (result.value0, result.value1)
    }

    /// Kernel heap blocks in use and pages the kernel heap holds.
    public static var kernelHeap: (blocks: UInt64, pages: UInt64) {
        let result = call(.kernelStatistics)
        return (result.value0, result.value1)
    }

    public static var processes: (live: UInt64, mappedBytes: UInt64) {
        let result = call(.processStatistics)
        return (result.value0, result.value1)
    }

    public typealias ThreadBody = @convention(c) (UInt64) -> Void

    /// Starts `body(argument)` on a new thread of this process with a stack of `stackBytes`;
    /// the thread ends when `body` returns. Returns its thread id.
    public static func createThread(stackBytes: UInt64 = 64 * 1024, argument: UInt64 = 0,
                                    _ body: ThreadBody) throws(KernelError) -> UInt64 {
        let stack = try map(bytes: stackBytes, access: .write)
        let top = UInt64(UInt(bitPattern: stack)) + stackBytes
        let result = user_system_call(SystemCallNumber.threadCreate.rawValue, user_thread_start_address(), top, argument,
                                      UInt64(UInt(bitPattern: unsafeBitCast(body, to: UnsafeRawPointer.self))), 0, 0)
        guard result.status == 0 else {
            try? unmap(stack, bytes: stackBytes)
            throw KernelError(rawValue: result.status) ?? .invalidArgument
        }
        return result.value0
    }

    /// Ends the calling thread (the process too, if it is the last).
    public static func exitThread() -> Never {
        _ = call(.threadExit, 0)
        while true {}
    }

    /// Init only: device `index` (0 = the console UART) for a userspace driver: a memory object of
    /// its registers and its interrupt.
    public static func openDevice(_ index: UInt64) throws(KernelError) -> (registers: Handle, interrupt: UInt64) {
        let result = call(.deviceOpen, index)
        guard result.status == .success else { throw result.status }
        return (Handle(result.value0), result.value1)
    }

    /// Init only: the device interrupt sets bit 0 of `notification` and stays masked until
    /// `acknowledgeInterrupt`.
    public static func bindInterrupt(_ interrupt: UInt64, to notification: Handle) throws(KernelError) {
        let status = call(.interruptBind, interrupt, notification.value).status
        guard status == .success else { throw status }
    }

    public static func acknowledgeInterrupt(_ interrupt: UInt64) throws(KernelError) {
        let status = call(.interruptAcknowledge, interrupt).status
        guard status == .success else { throw status }
    }

    /// Ends the program with a message: the user-space panic.
    public static func panic(_ message: FormattedText, code: UInt64 = 134) -> Never {
        var line = TextLine()
        line.write("panic: ")
        message.line.forEachByte { line.write(byte: $0) }
        print(FormattedText(line: line))
        exit(code)
    }
}

extension FormattedText {
    init(line: TextLine) {
        self.init(stringLiteral: "")
        self.line = line
    }
}
