// System call dispatch: `svc #0` arrives here with the caller's registers in the exception frame.
// The number is in x8, arguments in x0-x5; the status goes back in x0 and values in x1-x2
// (kernel/core/SystemCallABI.swift, docs/SYSCALLS.md). Every argument is checked; a bad one is
// an error status, never a kernel fault.

enum SystemCalls {
    nonisolated(unsafe) static var count: UInt64 = 0
    /// Longest program name `spawn` accepts.
    static let maximumNameLength = 64
    /// Largest single `map`.
    static let maximumMapBytes: UInt64 = 1 << 30

    /// Inlined into the exception dispatcher, with the two steps below: a system call costs one
    /// Swift call frame on its way to the fast path.
    @inline(__always)
    static func dispatch(_ frame: ExceptionFrame) {
        count &+= 1
        guard let running = Scheduler.running else {
            // No thread before the scheduler starts (the boot self-tests' system calls).
            finish(frame, perform(frame, thread: nil))
            return
        }
        running._withUnsafeGuaranteedRef { thread in dispatch(frame, thread: thread) }
    }

    @inline(__always)
    private static func dispatch(_ frame: ExceptionFrame, thread: Thread) {
        thread.inSystemCall = true
        let result = fastPath(frame, thread: thread) ?? perform(frame, thread: thread)
        thread.inSystemCall = false
        if thread.killed { Scheduler.markCurrentDead() }
        finish(frame, result)
    }

    /// The status in x0 and, on success, the values in x1 and x2.
    private static func finish(_ frame: ExceptionFrame, _ result: (KernelError, UInt64, UInt64)) {
        frame.setRegister(0, result.0.rawValue)
        if result.0 == .success {
            frame.setRegister(1, result.1)
            frame.setRegister(2, result.2)
        }
    }

    /// The IPC fast path (ipc/FastPath.swift) for `call` and `replyReceive`, when it applies.
    @inline(__always)
    private static func fastPath(_ frame: ExceptionFrame, thread: Thread) -> (KernelError, UInt64, UInt64)? {
        let number = frame.register(8)
        guard number == SystemCallNumber.call.rawValue || number == SystemCallNumber.replyReceive.rawValue,
              let process = thread.processReference else { return nil }
        let status = process._withUnsafeGuaranteedRef { process in
            number == SystemCallNumber.call.rawValue
                ? IPCFastPath.call(frame, thread: thread, process: process)
                : IPCFastPath.replyReceive(frame, thread: thread, process: process)
        }
        guard let status else { return nil }
        return (status, 0, 0)
    }

    private static func perform(_ frame: ExceptionFrame, thread: Thread?) -> (KernelError, UInt64, UInt64) {
        guard let number = SystemCallNumber(rawValue: frame.register(8)) else { return (.unknownSystemCall, 0, 0) }
        let process = thread?.process
        switch number {
        case .null:
            return (.success, 0, 0)
        case .clock:
            return (.success, Clock.uptime, Clock.frequency)
        case .debugWrite:
            return debugWrite(address: frame.register(0), count: frame.register(1))
        case .exit:
            guard let process else { return (.accessDenied, 0, 0) }
            Processes.end(process, reason: .exited, code: frame.register(0))
            return (.success, 0, 0)
        case .yield:
            Scheduler.yield()
            return (.success, 0, 0)
        case .sleep:
            return sleep(nanoseconds: frame.register(0))
        case .processID:
            guard let process else { return (.accessDenied, 0, 0) }
            return (.success, process.id, process.parentID)
        case .threadID:
            return (.success, Scheduler.current?.id ?? 0, 0)
        case .spawn:
            return spawn(address: frame.register(0), count: frame.register(1), argument: frame.register(2),
                         handle: frame.register(3), parent: process)
        case .wait:
            guard let process else { return (.accessDenied, 0, 0) }
            return Processes.wait(for: frame.register(0), caller: process)
        case .kill:
            guard let process, let target = Processes.find(frame.register(0)),
                  target.parentID == process.id || target === process else { return (.notFound, 0, 0) }
            Processes.end(target, reason: .killed, code: 0)
            return (.success, 0, 0)
        case .map:
            return map(size: frame.register(0), access: frame.register(1), space: process?.addressSpace)
        case .unmap:
            guard let space = process?.addressSpace else { return (.accessDenied, 0, 0) }
            return (space.unmapRegion(start: frame.register(0), size: alignUp(frame.register(1), to: pageSize) ?? 0), 0, 0)
        case .memoryStatistics:
            let statistics = PhysicalFrames.statistics
            return (.success, statistics.freeFrames, statistics.totalFrames)
        case .processStatistics:
            return (.success, UInt64(Processes.liveCount), process?.addressSpace?.mappedBytes ?? 0)
        case .kernelStatistics:
            let heap = Heap.statistics.counters
            return (.success, heap.blocksInUse, heap.pagesHeld)
        default:
            guard let thread, let process else { return (.accessDenied, 0, 0) }
            return ipc(number, frame, thread, process)
        }
    }

    private static func ipc(_ number: SystemCallNumber, _ frame: ExceptionFrame, _ thread: Thread,
                            _ process: Process) -> (KernelError, UInt64, UInt64) {
        let a0 = frame.register(0), a1 = frame.register(1), a2 = frame.register(2)
        switch number {
        case .portCreate:
            return created(.port(Port()), in: process)
        case .notificationCreate:
            return created(.notification(Notification()), in: process)
        case .handleClose:
            return (IPC.close(Handle(a0), in: process), 0, 0)
        case .handleDuplicate:
            let rights = Rights(rawValue: a1)
            guard rights.rawValue & ~Rights.all.rawValue == 0 else { return (.invalidArgument, 0, 0) }
            let (status, handle) = IPC.duplicate(Handle(a0), rights: rights, in: process)
            return (status, handle, 0)
        case .send:
            return (IPC.send(port: a0, message: a1, thread: thread, sender: process), 0, 0)
        case .receive:
            return (IPC.receive(port: a0, message: a1, timeout: a2, thread: thread, receiver: process), 0, 0)
        case .call:
            return (IPC.call(port: a0, message: a1, thread: thread, caller: process), 0, 0)
        case .reply:
            return (IPC.reply(handle: a0, message: a1, thread: thread, server: process), 0, 0)
        case .replyReceive:
            return (IPC.replyReceive(reply: a0, message: a1, port: a2, timeout: frame.register(3), thread: thread, server: process), 0, 0)
        case .notificationSignal:
            return (IPC.signal(a0, bits: a1, process: process), 0, 0)
        case .notificationWait:
            let (status, bits) = IPC.wait(a0, timeout: a1, process: process)
            return (status, bits, 0)
        case .memoryCreate:
            let (status, handle) = IPC.createMemory(bytes: a0, in: process)
            return (status, handle, 0)
        case .memoryMap:
            let (status, address) = IPC.mapMemory(a0, access: a1, in: process)
            return (status, address, 0)
        case .waitAny:
            let (status, index) = IPC.waitAny(handles: a0, count: a1, timeout: a2, process: process)
            return (status, index, 0)
        case .threadCreate:
            let (status, id) = Processes.createThread(in: process, entry: a0, stack: a1, argument0: a2,
                                                      argument1: frame.register(3))
            return (status, id, 0)
        case .deviceOpen:
            return DeviceAccess.open(a0, process: process)
        case .interruptBind:
            return (DeviceAccess.bind(a0, notification: a1, process: process), 0, 0)
        case .interruptAcknowledge:
            return (DeviceAccess.acknowledge(a0, process: process), 0, 0)
        case .threadExit:
            guard let thread = Scheduler.current else { return (.accessDenied, 0, 0) }
            Processes.exitThread(thread, code: a0)
            return (.success, 0, 0)
        default:
            return (.unknownSystemCall, 0, 0)
        }
    }

    private static func created(_ object: KernelObject, in process: Process) -> (KernelError, UInt64, UInt64) {
        do throws(KernelError) {
            return (.success, try IPC.install(object, rights: .all, in: process, isNew: true).value, 0)
        } catch {
            return (error, 0, 0)
        }
    }

    /// Copies the text in pieces through a kernel buffer; stops at the first bad page.
    private static func debugWrite(address: UInt64, count: UInt64) -> (KernelError, UInt64, UInt64) {
        guard count <= 1 << 20, UserMemory.isUserRange(address, count) else { return (.badAddress, 0, 0) }
        var buffer = InlineArray<256, UInt8>(repeating: 0)
        var written: UInt64 = 0
        while written < count {
            let piece = min(count - written, 256)
            let status = withUnsafeMutableBytes(of: &buffer) { bytes in
                UserMemory.copyIn(to: bytes.baseAddress!, from: address + written, count: piece)
            }
            guard status == .success else { return (.badAddress, 0, 0) }
            withUnsafeBytes(of: &buffer) { bytes in Console.writeRaw(UnsafeRawBufferPointer(rebasing: bytes[0..<Int(piece)])) }
            written += piece
        }
        return (.success, written, 0)
    }

    private static func sleep(nanoseconds: UInt64) -> (KernelError, UInt64, UInt64) {
        guard let thread = Scheduler.current, thread.process != nil else { return (.accessDenied, 0, 0) }
        let ticks = Clock.ticks(forNanoseconds: nanoseconds)
        guard ticks > 0 else { return (.success, 0, 0) }
        thread.sleepExpired = false
        do throws(TimerQueue.Failure) {
            try Clock.addDeadline(at: Clock.now &+ ticks, token: thread.id)
        } catch {
            return (.outOfMemory, 0, 0)
        }
        while !thread.sleepExpired && !thread.killed { Scheduler.block() }
        return (.success, 0, 0)
    }

    private static func spawn(address: UInt64, count: UInt64, argument: UInt64, handle: UInt64,
                              parent: Process?) -> (KernelError, UInt64, UInt64) {
        guard count > 0, count <= UInt64(maximumNameLength) else { return (.invalidArgument, 0, 0) }
        var name = InlineArray<64, UInt8>(repeating: 0)
        let status = withUnsafeMutableBytes(of: &name) { UserMemory.copyIn(to: $0.baseAddress!, from: address, count: count) }
        guard status == .success else { return (status, 0, 0) }
        let (result, id) = withUnsafeBytes(of: &name) { bytes in
            Processes.spawn(name: UnsafeRawBufferPointer(rebasing: bytes[0..<Int(count)]), argument: argument,
                            parentID: parent?.id ?? 0, handle: parent == nil ? 0 : handle)
        }
        return (result, id, 0)
    }

    private static func map(size: UInt64, access: UInt64, space: AddressSpace?) -> (KernelError, UInt64, UInt64) {
        guard let space else { return (.accessDenied, 0, 0) }
        let requested = MemoryAccess(rawValue: access)
        guard size > 0, size <= maximumMapBytes, requested.rawValue & ~(MemoryAccess.write.rawValue | MemoryAccess.execute.rawValue) == 0,
              !(requested.contains(.write) && requested.contains(.execute)),
              let bytes = alignUp(size, to: pageSize) else { return (.invalidArgument, 0, 0) }
        var permissions: MappingPermissions = []
        if requested.contains(.write) { permissions.insert(.write) }
        if requested.contains(.execute) { permissions.insert(.execute) }
        guard let start = space.reserveMapAddress(size: bytes) else { return (.outOfMemory, 0, 0) }
        let status = space.mapZeroed(at: start, size: bytes, permissions: permissions)
        return (status, status == .success ? start : 0, 0)
    }
}
