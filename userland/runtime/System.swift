// The user runtime's view of the kernel: typed wrappers over the system calls of the ABI
// (abi/), with errors thrown as `KernelError` values. Every wrapper goes through `invoke`, which
// moves a call's argument struct to registers and its result back.

import UserSystemCall

public struct ProcessID: Equatable {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
}

public enum System {
    /// How many calls the kernel refused with `outOfMemory` in this process, and requests a
    /// service answered so (`answered`): a program can tell a failure caused by memory pressure
    /// from any other.
    nonisolated(unsafe) public static var outOfMemoryResults: UInt64 = 0

    /// The error a service answered with, from its answer's label (0: served; a label no error
    /// has reads as `invalidArgument`). `outOfMemory` counts in `outOfMemoryResults` as the
    /// kernel's refusals do: the service was refused memory for this request.
    public static func answered(_ label: UInt64) -> KernelError? {
        guard let error = KernelError(status: label) else { return nil }
        if error == .outOfMemory { outOfMemoryResults &+= 1 }
        return error
    }

    /// Makes the system call `call` describes: its result, or the error the kernel returned.
    @inline(__always)
    public static func invoke<Call: SystemCallArguments>(_ call: Call) throws(KernelError) -> Call.Result {
        let arguments = call.registers
        let result = user_system_call(Call.number.rawValue, arguments.x0, arguments.x1, arguments.x2, arguments.x3,
                                      arguments.x4, arguments.x5)
        if let error = KernelError(status: result.status) {
            if error == .outOfMemory { outOfMemoryResults &+= 1 }
            throw error
        }
        return Call.Result(registers: ResultRegisters(x1: result.value0, x2: result.value1))
    }

    /// The argument the parent passed when it started this program.
    public static var startArgument: UInt64 { user_read_start_argument() }

    /// Init's start argument: what the kernel command line asked the system to do.
    public static var startFlags: StartFlags { StartFlags(rawValue: startArgument) }

    /// Writes `bytes` to the console service if the program has one (ConsoleOutput), else, or
    /// when it does not answer, with the kernel's debug write.
    public static func write(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        if ConsoleOutput.write(bytes) { return }
        _ = try? invoke(SystemCall.DebugWrite(text: UserAddress(base), length: UInt64(bytes.count)))
    }

    /// Prints one line (cut at `TextLine.capacity` bytes, still ending in a newline).
    public static func print(_ text: FormattedText) {
        var line = text.line
        line.write(byte: UInt8(ascii: "\n"))
        line.withUnsafeBytes { write($0) }
        if line.truncated {
            var newline = UInt8(ascii: "\n")
            withUnsafeBytes(of: &newline) { write($0) }
        }
    }

    public static func exit(_ code: UInt64) -> Never {
        _ = try? invoke(SystemCall.Exit(code: code))
        while true {}
    }

    public static func yield() { _ = try? invoke(SystemCall.Yield()) }

    public static func sleep(nanoseconds: UInt64) { _ = try? invoke(SystemCall.Sleep(nanoseconds: nanoseconds)) }

    /// The system clock now; a reading of 0 ticks at 0 Hz if it could not be read.
    public static var clock: ClockReading {
        guard let result = try? invoke(SystemCall.Clock()) else { return ClockReading(ticks: 0, frequency: 0) }
        return ClockReading(ticks: result.ticks, frequency: result.frequency)
    }

    public static var processID: ProcessID { ProcessID((try? invoke(SystemCall.ProcessID()))?.process ?? 0) }
    public static var parentID: ProcessID { ProcessID((try? invoke(SystemCall.ProcessID()))?.parent ?? 0) }
    public static var threadID: UInt64 { (try? invoke(SystemCall.ThreadID()))?.thread ?? 0 }

    /// The handle the parent passed at spawn, if any.
    public static var startHandle: Handle? {
        let value = user_read_start_handle()
        return value == 0 ? nil : Handle(value)
    }

    /// The start block, if the loader said it mapped one where the convention puts it.
    static var startBlockMapping: UnsafeRawPointer? {
        let address = user_read_start_block()
        guard address == ProgramStart.blockAddress else { return nil }
        return UnsafeRawPointer(bitPattern: UInt(address))
    }

    /// Init's initial ramdisk: a read-only memory object of the whole archive, which the kernel
    /// gives only to init.
    public static var initialRamdisk: Handle? {
        let value = user_read_start_ramdisk()
        return value == 0 ? nil : Handle(value)
    }

    /// Waits for child `child`, which has no handle here, to end, and collects it (`spawn` in
    /// ChildProcesses.swift returns a handle: wait with that).
    public static func wait(_ child: ProcessID) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        let result = try invoke(SystemCall.Wait(process: child.value))
        return (result.reason, result.code)
    }

    /// Ends this process or a child of it.
    public static func kill(_ process: ProcessID) throws(KernelError) {
        _ = try invoke(SystemCall.Kill(process: process.value))
    }

    public static func map(bytes: UInt64, access: MemoryAccess) throws(KernelError) -> UnsafeMutableRawPointer {
        let address = try invoke(SystemCall.Map(bytes: bytes, access: access)).address
        guard let pointer = UnsafeMutableRawPointer(address) else { throw .outOfMemory }
        return pointer
    }

    public static func unmap(_ pointer: UnsafeMutableRawPointer, bytes: UInt64) throws(KernelError) {
        _ = try invoke(SystemCall.Unmap(address: UserAddress(pointer), bytes: bytes))
    }

    public static var memory: (freeFrames: UInt64, totalFrames: UInt64) {
        guard let result = try? invoke(SystemCall.MemoryStatistics()) else { return (0, 0) }
        return (result.freeFrames, result.totalFrames)
    }

    /// Kernel heap blocks in use and pages the kernel heap holds.
    public static var kernelHeap: (blocks: UInt64, pages: UInt64) {
        guard let result = try? invoke(SystemCall.KernelStatistics()) else { return (0, 0) }
        return (result.heapBlocks, result.heapPages)
    }

    /// What the kernel holds for this process and its descendants, and their limit in bytes
    /// (UInt64.max: none of its own).
    public static var memoryAccount: (used: UInt64, limit: UInt64) {
        guard let result = try? invoke(SystemCall.MemoryAccount()) else { return (0, 0) }
        return (result.used, result.limit)
    }

    /// Kernel objects alive machine-wide, and the bytes charged to all processes.
    public static var kernelObjects: (objects: UInt64, chargedBytes: UInt64) {
        guard let result = try? invoke(SystemCall.KernelObjects()) else { return (0, 0) }
        return (result.objects, result.chargedBytes)
    }

    /// Ports alive machine-wide, and how many are closed (their receiver gone) but still named.
    public static var ports: (alive: UInt64, closed: UInt64) {
        guard let result = try? invoke(SystemCall.PortStatistics()) else { return (0, 0) }
        return (result.ports, result.closed)
    }

    public static var processes: (live: UInt64, mappedBytes: UInt64) {
        guard let result = try? invoke(SystemCall.ProcessStatistics()) else { return (0, 0) }
        return (result.liveProcesses, result.mappedBytes)
    }

    public typealias ThreadBody = @convention(c) (UInt64) -> Void

    /// Starts `body(argument)` on a new thread of this process with a stack of `stackBytes`;
    /// the thread ends when `body` returns. Returns its thread id.
    public static func createThread(stackBytes: UInt64 = 64 * 1024, argument: UInt64 = 0,
                                    _ body: ThreadBody) throws(KernelError) -> UInt64 {
        // The stack comes from where the heap's pages come from: the memory manager when this
        // program has one (on its books, charged to this process), else `map`, which also says
        // why when neither can give it.
        let stack: UnsafeMutableRawPointer
        if let obtained = HeapPageSource.obtain(bytes: stackBytes) {
            stack = obtained
        } else {
            stack = try map(bytes: stackBytes, access: .write)
        }
        let call = SystemCall.ThreadCreate(entry: UserAddress(user_thread_start_address()),
                                           stackTop: UserAddress(stack).advanced(by: stackBytes), argument0: argument,
                                           argument1: UInt64(UInt(bitPattern: unsafeBitCast(body, to: UnsafeRawPointer.self))))
        do throws(KernelError) {
            return try invoke(call).thread
        } catch {
            try? unmap(stack, bytes: stackBytes)
            throw error
        }
    }

    /// Ends the calling thread (the process too, if it is the last).
    public static func exitThread() -> Never {
        _ = try? invoke(SystemCall.ThreadExit(code: 0))
        while true {}
    }

    /// Device `index` (0 = the console UART) opened through device-access capability `access`
    /// (needs open) for a userspace driver: a memory object of its registers and its interrupt,
    /// each a handle that can be handed on to a driver process.
    public static func openDevice(_ index: UInt64, through access: Handle) throws(KernelError)
        -> (registers: Handle, interrupt: Handle) {
        let result = try invoke(SystemCall.DeviceOpen(access: access, device: index))
        return (result.registerMemory, result.interrupt)
    }

    /// What device `index` of device-access capability `access` is (nil for a kind this
    /// runtime does not know), and the physical address of its registers.
    public static func deviceInfo(_ index: UInt64, through access: Handle) throws(KernelError)
        -> (kind: DeviceKind?, registerAddress: UInt64) {
        let result = try invoke(SystemCall.DeviceInfo(access: access, device: index))
        return (DeviceKind(rawValue: result.kind), result.registerAddress)
    }

    /// `bytes` of zeroed, physically contiguous memory for device `index` of `access` to read
    /// and write: its memory object and the address the device sees. When the object ends, the
    /// kernel stops the device before the memory is reused.
    public static func createDMA(_ bytes: UInt64, forDevice index: UInt64, through access: Handle) throws(KernelError)
        -> (memory: Handle, deviceAddress: UInt64) {
        let result = try invoke(SystemCall.DMACreate(access: access, device: index, bytes: bytes))
        return (result.memory, result.deviceAddress)
    }

    /// Makes `interrupt` (needs bind) set bit 0 of `notification`; after each signal the line
    /// stays masked until `acknowledgeInterrupt`. Returns the line's interrupt identifier, for
    /// reports.
    @discardableResult
    public static func bindInterrupt(_ interrupt: Handle, to notification: Handle) throws(KernelError) -> UInt64 {
        try invoke(SystemCall.InterruptBind(interrupt: interrupt, notification: notification)).identifier
    }

    /// Unmasks bound interrupt `interrupt` (needs bind) once the driver has handled it.
    public static func acknowledgeInterrupt(_ interrupt: Handle) throws(KernelError) {
        _ = try invoke(SystemCall.InterruptAcknowledge(interrupt: interrupt))
    }

    /// Takes over the kernel log through device-access capability `access`: the kernel's lines
    /// and programs' debug writes then wait for this program, which reads them with `readLog`
    /// and is told of them by `bits` on `notification`. Returns the reader.
    public static func openLog(through access: Handle, notification: Handle, bits: UInt64) throws(KernelError) -> Handle {
        try invoke(SystemCall.LogOpen(access: access, notification: notification, bits: bits)).reader
    }

    /// Moves waiting kernel log records, each whole, into `buffer` (at least `logRecordMaximum`
    /// bytes); the bytes moved, 0 when none wait.
    public static func readLog(_ reader: Handle, into buffer: UnsafeMutableRawBufferPointer) throws(KernelError) -> Int {
        guard let base = buffer.baseAddress else { throw .badAddress }
        return Int(try invoke(SystemCall.LogRead(reader: reader, buffer: UserAddress(UnsafeRawPointer(base)), capacity: UInt64(buffer.count))).length)
    }

    /// Restricts thread `thread` of this process (0: the calling thread) to the CPUs in `cpus`,
    /// one bit per CPU index (0: only reads it). Returns the mask it had and the CPUs that run
    /// threads.
    @discardableResult
    public static func setAffinity(_ cpus: UInt64, thread: UInt64 = 0) throws(KernelError) -> (previous: UInt64, online: UInt64) {
        let result = try invoke(SystemCall.ThreadAffinity(thread: thread, cpus: cpus))
        return (result.previous, result.online)
    }

    /// Sets the priority of `thread` (0: the calling thread) of this process to `priority`, from
    /// 0 (background) up to the default level (`nil`: only reads it). Returns the level it had and
    /// the highest this process may set. A negative level is `invalidArgument`.
    @discardableResult
    public static func setPriority(_ priority: Int?, thread: UInt64 = 0) throws(KernelError) -> (previous: Int, highest: Int) {
        let result = try invoke(SystemCall.ThreadPriority(thread: thread, priority: priority.map { $0 < 0 ? UInt64(Int.max) : UInt64($0) } ?? .max))
        return (Int(truncatingIfNeeded: result.previous), Int(truncatingIfNeeded: result.highest))
    }

    /// The CPUs that run threads, one bit per CPU index.
    public static var onlineCPUs: UInt64 { (try? setAffinity(0))?.online ?? 1 }

    /// CPU `cpu`'s figures since it came online.
    public static func cpuStatistics(_ cpu: Int) throws(KernelError) -> CPUStatistics {
        var words = InlineArray<8, UInt64>(repeating: 0)
        try withUnsafeMutableBytes(of: &words) { bytes throws(KernelError) in
            _ = try invoke(SystemCall.CPUStatisticsRead(cpu: UInt64(cpu), buffer: UserAddress(UnsafeRawPointer(bytes.baseAddress!)),
                                                        capacity: UInt64(bytes.count)))
        }
        return withUnsafeBytes(of: &words) { CPUStatistics(words: $0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
    }

    /// Ends the program with a message: the user-space panic.
    /// The exit code of a program whose heap could not grow: the kernel refused it memory.
    public static let outOfMemoryExitCode: UInt64 = 12

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

extension UserAddress {
    /// The address of `pointer` in this program.
    public init(_ pointer: UnsafeRawPointer) { self.init(UInt64(UInt(bitPattern: pointer))) }
}

extension UnsafeMutableRawPointer {
    /// The memory at `address` in this program, if not null.
    public init?(_ address: UserAddress) { self.init(bitPattern: UInt(address.value)) }
}
