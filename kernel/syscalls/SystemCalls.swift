// System call dispatch: `svc #0` arrives here with the caller's registers in the exception frame.
// Each call's argument struct (abi/SystemCallArguments.swift) is rebuilt from the saved registers, its
// handler returns the call's result or throws a `KernelError`, and one place, `serve`, turns that
// into the status in x0 and the values in x1-x2 (docs/SYSCALLS.md). Every argument is checked; a
// bad one is an error, never a kernel fault. The switch over numbers has no default: a call
// without a handler does not compile.

enum SystemCalls {
    /// System calls taken on this CPU.
    static var count: UInt64 { PerCPU.current.systemCallsTaken }
    /// Longest process name `processCreate` accepts.
    static let maximumNameLength = 64
    /// Largest single `map`.
    static let maximumMapBytes: UInt64 = 1 << 30
    /// Largest single `debugWrite`.
    static let maximumWriteBytes: UInt64 = 1 << 20

    /// Which entry a system call came in by, and so what the dispatcher knows of it.
    enum Entry {
        /// vectors.S, system_call_entry on one CPU, a call outside `frameWaitCalls`: x19-x28 are
        /// not in the frame.
        case shortFrame
        /// vectors.S, system_call_entry (either table), a call in `frameWaitCalls`: every
        /// register is in the frame. Only from a thread without a process
        /// (`dispatchWithoutProcess`): the others go through `dispatchWaitingInFrame` (or, for
        /// the calls in registers on one CPU, `dispatchInRegisters`), which has their fast paths.
        case wholeFrame
        /// Through `exception_dispatch`: the multiprocessor table's calls outside
        /// `frameWaitCalls` (a short frame, as `shortFrame`), or EL1's (the boot self-tests). Only
        /// `notificationSignal` has a fast path here, as from a short frame.
        case any
    }

    /// The calls whose fast path may leave the caller waiting in its exception frame (ipc/FastPath.swift),
    /// one bit per number: vectors.S saves every register for them (SYSTEM_CALLS_WAITING_IN_FRAME
    /// in Layouts.h, which the boot self-test compares with this).
    static var frameWaitCalls: UInt64 {
        1 << SystemCallNumber.call.rawValue | 1 << SystemCallNumber.replyReceive.rawValue
            | 1 << SystemCallNumber.notificationWait.rawValue | 1 << SystemCallNumber.callRegisters.rawValue
            | 1 << SystemCallNumber.replyReceiveRegisters.rawValue
    }

    /// Inlined into the exception dispatchers, with the two steps below: a system call costs one
    /// Swift call frame on its way to the fast path.
    @inline(__always)
    static func dispatch(_ frame: ExceptionFrame, from entry: Entry = .any) {
        // The running thread first: the count's store would make the compiler read TPIDR_EL1 again.
        let running = Scheduler.running
        PerCPU.current.systemCalls &+= 1
        guard let running else {
            // No thread before the scheduler starts (the boot self-tests' system calls).
            perform(frame, thread: nil, process: nil)
            return
        }
        running._withUnsafeGuaranteedRef { thread in dispatch(frame, thread: thread, from: entry) }
    }

    @inline(__always)
    private static func dispatch(_ frame: ExceptionFrame, thread: Thread, from entry: Entry) {
        // The calls served without checks (`serveWithoutChecks`) but `yield` neither block nor
        // switch: they leave nothing on the stack that a kill would have to unwind, so they are
        // served before the thread counts as inside a system call. `yield`, which switches, is
        // served in the fast path below, inside one.
        let number = frame.register(8)
        if entry != .wholeFrame && number <= SystemCallNumber.threadID.rawValue && number != SystemCallNumber.yield.rawValue
            && serveWithoutChecks(number, frame, thread: thread) {
            return
        }
        thread.inSystemCall = true
        if !fastPath(frame, thread: thread, from: entry) {
            // The process borrowed, not counted: the thread holds it for its whole life
            // (Thread.processReference), so calls that need no process pay nothing for it either.
            if let process = thread.processReference {
                process._withUnsafeGuaranteedRef { perform(frame, thread: thread, process: $0) }
            } else {
                perform(frame, thread: thread, process: nil)
            }
        }
        thread.inSystemCall = false
        if thread.killed { Scheduler.markCurrentDead() }
    }

    /// A call that may wait in its frame (`frameWaitCalls`), from EL0 (vectors.S on one CPU,
    /// `lockedFrameCallDispatch` on several): its fast path, and the general way when that does
    /// not apply. Each fast path is a function of its own, which returns only when it does not
    /// apply, having changed nothing; one that leaves the thread waiting in its frame never
    /// returns. The fast paths count the call (a leg's counter, `IPCStatistics.Counters`) and mark
    /// the thread as in one (`IPCFastPath.enterFrameWait`) only once they commit. The frame is
    /// the top of the running thread's kernel stack (this entry is from EL0 only): its
    /// `userRegisters`, which the calls in registers read and write.
    ///
    /// `Way` says where a fast path that does not apply goes. On one CPU (`Directly`) each one
    /// ends in the general dispatch as its last call, so this function is only a few compares
    /// and a branch. On several (`Back`) each one returns here, and the general dispatch is
    /// inlined after it, in the frame the dispatcher has for the big kernel lock anyway.
    ///
    /// On one CPU the calls in registers come here only when made by `svc #0`: `svc #1` and
    /// `svc #2`, which the runtime uses, go from the entry to `dispatchInRegisters`.
    @inline(__always)
    static func dispatchWaitingInFrame<Way: FallbackWay>(_ frame: ExceptionFrame, _ way: Way.Type) {
        fromProcess(frame) { thread, process in
            let number = frame.register(8)
            // On several CPUs the calls in registers first (one range compare for both, one to
            // tell them apart): the other calls here move their message through memory, which
            // costs more than the compares they wait for. On one, where the entry takes those
            // by their own SVCs, `notificationWait` first (`_fastPath`, or the compiler orders the
            // compares by number): its wait with bits there is the shortest call here.
            if Way.self == Back.self && number &- SystemCallNumber.callRegisters.rawValue < 2 {
                if number == SystemCallNumber.callRegisters.rawValue {
                    callRegisters(frame, thread, process, way)
                } else {
                    replyReceiveRegisters(frame, thread, process, way)
                }
            } else if Way.self == Directly.self && _fastPath(number == SystemCallNumber.notificationWait.rawValue) {
                _ = notificationWait(frame, thread, process, way)
            } else if _fastPath(number == SystemCallNumber.call.rawValue) {
                call(frame, thread, process, SystemCall.Call(registers: frame.systemCallArguments), way)
            } else if number == SystemCallNumber.replyReceive.rawValue {
                replyReceive(frame, thread, process, SystemCall.ReplyReceive(registers: frame.systemCallArguments),
                             way)
            } else if Way.self == Back.self && number == SystemCallNumber.notificationWait.rawValue {
                if notificationWait(frame, thread, process, way) { return }
            } else if Way.self == Directly.self && number == SystemCallNumber.callRegisters.rawValue {
                callRegisters(frame, thread, process, way)
            } else if Way.self == Directly.self && number == SystemCallNumber.replyReceiveRegisters.rawValue {
                replyReceiveRegisters(frame, thread, process, way)
            } else {
                // A number past 63 that the entry's bit test took for one of them.
                if Way.self == Directly.self { return dispatchWaitingInFrameGenerally() }
                return performWaitingInFrame(thread: thread, process: process)
            }
            if Way.self == Back.self { performWaitingInFrame(thread: thread, process: process) }
        }
    }

    /// `callRegisters`, or `replyReceiveRegisters` when `answering`, from one CPU's entry, which
    /// told them apart by their SVC's immediate (vectors.S): as `dispatchWaitingInFrame` serves
    /// them, without its compares. Every call from EL0 has a running thread with a process, so
    /// this does not look for the call without one, as `fromProcess` does (`DEBUG=1` checks).
    @inline(__always)
    static func dispatchInRegisters(_ frame: ExceptionFrame, answering: Bool) {
        #if KERNEL_DEBUG
        if Scheduler.running?._withUnsafeGuaranteedRef({ $0.processReference }) == nil {
            kernelPanic("a call in registers from a thread without a process")
        }
        #endif
        Scheduler.running.unsafelyUnwrapped._withUnsafeGuaranteedRef { thread in
            thread.processReference.unsafelyUnwrapped._withUnsafeGuaranteedRef { process in
                if answering {
                    IPCFastPath.replyReceiveRegisters(frame.registers, thread: thread, process: process,
                                                      Directly.CPUs.self)
                } else {
                    IPCFastPath.callRegisters(frame.registers, thread: thread, process: process, Directly.CPUs.self)
                }
            }
        }
        dispatchWaitingInFrameGenerally()
    }

    /// `body` with the running thread and its process, borrowed (the process holds the thread,
    /// and the thread its process); a call from a thread without one (which no call from EL0 is)
    /// goes as any call.
    @inline(__always)
    private static func fromProcess(_ frame: ExceptionFrame, _ body: (Thread, Process) -> Void) {
        guard let running = Scheduler.running, running._withUnsafeGuaranteedRef({ $0.processReference }) != nil else {
            return dispatchWithoutProcess(frame)
        }
        running._withUnsafeGuaranteedRef { thread in
            thread.processReference.unsafelyUnwrapped._withUnsafeGuaranteedRef { process in body(thread, process) }
        }
    }

    /// Where a fast path that does not apply goes (`dispatchWaitingInFrame`).
    /// Each way serves one entry (vectors.S), so it also says what the fast paths may know of the
    /// CPUs online (`CPUs`).
    protocol FallbackWay { associatedtype CPUs: Scheduler.CPUsOnline }
    /// To the general dispatch, as the fast path's last call: one CPU's.
    enum Directly: FallbackWay { typealias CPUs = Scheduler.OneCPU }
    /// Back to the dispatcher, which then takes the call the general way: under the big kernel
    /// lock, on a multiprocessor.
    enum Back: FallbackWay { typealias CPUs = Scheduler.SeveralCPUs }

    @inline(never)
    private static func dispatchWithoutProcess(_ frame: ExceptionFrame) {
        dispatch(frame, from: .wholeFrame)
        Scheduler.preemptIfNeeded()
    }

    // Each fast path's function. All take the frame, the thread and the process first, in that
    // order, so that the dispatcher's branch to any of them finds them in the same registers;
    // `call` and `replyReceive` take their arguments read from the frame, after them.

    @inline(never)
    private static func callRegisters<Way: FallbackWay>(_ frame: ExceptionFrame, _ thread: Thread, _ process: Process,
                                                        _: Way.Type) {
        IPCFastPath.callRegisters(frame.registers, thread: thread, process: process, Way.CPUs.self)
        if Way.self == Directly.self { dispatchWaitingInFrameGenerally() }
    }

    @inline(never)
    private static func replyReceiveRegisters<Way: FallbackWay>(_ frame: ExceptionFrame, _ thread: Thread,
                                                                _ process: Process, _: Way.Type) {
        IPCFastPath.replyReceiveRegisters(frame.registers, thread: thread, process: process, Way.CPUs.self)
        if Way.self == Directly.self { dispatchWaitingInFrameGenerally() }
    }

    @inline(never)
    private static func call<Way: FallbackWay>(_: ExceptionFrame, _ thread: Thread, _ process: Process,
                                               _ call: SystemCall.Call, _: Way.Type) {
        IPCFastPath.call(call, thread: thread, process: process, Way.CPUs.self)
        if Way.self == Directly.self { dispatchWaitingInFrameGenerally() }
    }

    @inline(never)
    private static func replyReceive<Way: FallbackWay>(_: ExceptionFrame, _ thread: Thread, _ process: Process,
                                                       _ call: SystemCall.ReplyReceive, _: Way.Type) {
        IPCFastPath.replyReceive(call, thread: thread, process: process, Way.CPUs.self)
        if Way.self == Directly.self { dispatchWaitingInFrameGenerally() }
    }

    /// Bits taken at once end the call here, counted (`IPCFastPath.wait`). Taking them wakes no
    /// thread, but a switch may be due from before the call (a thread this one released after
    /// its own switch here may have woken one above it), so the way out tests for it as the
    /// general one does.
    @inline(never)
    private static func notificationWait<Way: FallbackWay>(_ frame: ExceptionFrame, _ thread: Thread,
                                                           _ process: Process, _: Way.Type) -> Bool {
        if IPCFastPath.wait(frame.registers, thread: thread, process: process, Way.CPUs.self) {
            Scheduler.preemptIfNeeded()
            return true
        }
        if Way.self == Directly.self { dispatchWaitingInFrameGenerally() }
        return false
    }

    /// The general way for a call that may wait in its frame, once its fast path did not apply,
    /// as `dispatch` would. It takes nothing, so that the fast paths need keep nothing for it:
    /// the thread is the running one, which has a process (`dispatchWaitingInFrame`), and the
    /// frame is the one its `userRegisters` begin (the entry is from EL0, and the registers are
    /// the frame's first words: EXCEPTION_FRAME_REGISTERS is 0, which the boot self-test checks,
    /// as `Thread.waitInFrame` relies on it too).
    @inline(never)
    private static func dispatchWaitingInFrameGenerally() {
        guard let running = Scheduler.running else { return }
        running._withUnsafeGuaranteedRef { thread in
            guard let process = thread.processReference else { return }
            process._withUnsafeGuaranteedRef { process in performWaitingInFrame(thread: thread, process: process) }
        }
    }

    @inline(__always)
    private static func performWaitingInFrame(thread: Thread, process: Process) {
        PerCPU.current.systemCalls &+= 1
        thread.inSystemCall = true
        perform(ExceptionFrame(base: thread.userRegisters), thread: thread, process: process)
        thread.inSystemCall = false
        if thread.killed { Scheduler.markCurrentDead() }
        Scheduler.preemptIfNeeded()
    }

    /// The fast paths of the calls outside `frameWaitCalls`, when they apply: whether one did
    /// the call. From a short frame `notificationSignal` has one, and `yield` is served without
    /// `perform` (`dispatch` served the other calls `serveWithoutChecks` takes; the test is that
    /// one's again, which the compiler folds into it, where a test for `yield` alone costs the
    /// calls after it one compare more). From the whole frame (a thread without a process,
    /// `dispatchWithoutProcess`) there is none.
    @inline(__always)
    private static func fastPath(_ frame: ExceptionFrame, thread: Thread, from entry: Entry) -> Bool {
        if entry == .wholeFrame { return false }
        let number = frame.register(8)
        if number <= SystemCallNumber.threadID.rawValue { return serveWithoutChecks(number, frame, thread: thread) }
        guard number == SystemCallNumber.notificationSignal.rawValue, let process = thread.processReference,
              process._withUnsafeGuaranteedRef({ IPCFastPath.signal(frame.registers, process: $0) }) else { return false }
        frame.setStatus(systemCallSuccess)
        return true
    }

    /// The calls that take no argument to check and cannot fail, served here: by the dispatcher
    /// without `perform`, whose frame saves a dozen registers, and by `perform` for the calls
    /// made before the scheduler runs. Whether `number` was one.
    @inline(__always)
    private static func serveWithoutChecks(_ number: UInt64, _ frame: ExceptionFrame, thread: Thread?) -> Bool {
        switch number {
        case SystemCallNumber.null.rawValue:
            serve(frame, SystemCall.Null.self) { _ in NoValues() }
        case SystemCallNumber.clock.rawValue:
            serve(frame, SystemCall.Clock.self) { _ in .init(ticks: Clock.uptime, frequency: Clock.frequency) }
        case SystemCallNumber.yield.rawValue:
            serve(frame, SystemCall.Yield.self) { _ in
                Scheduler.yield()
                return NoValues()
            }
        case SystemCallNumber.threadID.rawValue:
            serve(frame, SystemCall.ThreadID.self) { _ in .init(thread: thread?.id ?? 0) }
        default:
            return false
        }
        return true
    }

    /// Runs `handler` on the call's arguments and leaves its outcome in the caller's registers:
    /// x0 = 0 and the values in x1-x2, or x0 = the error (x1-x2 unchanged).
    @inline(__always)
    private static func serve<Call: SystemCallArguments>(
        _ frame: ExceptionFrame, _: Call.Type, _ handler: (Call) throws(KernelError) -> Call.Result
    ) {
        do throws(KernelError) {
            let values = try handler(Call(registers: frame.systemCallArguments)).registers
            frame.setStatus(systemCallSuccess)
            frame.setRegister(1, values.x1)
            frame.setRegister(2, values.x2)
        } catch {
            frame.setStatus(error.rawValue)
        }
    }

    /// `serve` for the calls whose message comes and goes in registers (`RegisterMessageLayout`):
    /// the handler has written the message it took into the frame, so only the status is set
    /// here. `thread` is the caller, whose frame this must be: a call from EL1 (the kernel's
    /// own) has no user registers to take a message from.
    @inline(__always)
    private static func serveInRegisters<Call: SystemCallArguments>(
        _ frame: ExceptionFrame, _ thread: Thread?, _: Call.Type, _ handler: (Call, Thread) throws(KernelError) -> Void
    ) {
        do throws(KernelError) {
            guard let thread, thread.process != nil, frame.registers == thread.userRegisters else {
                throw .accessDenied
            }
            try handler(Call(registers: frame.systemCallArguments), thread)
            frame.setStatus(systemCallSuccess)
        } catch {
            frame.setStatus(error.rawValue)
        }
    }

    /// A message address a program passed to the calls that also serve the register forms
    /// (`call`, `reply`, `replyReceive`): never `UserAddress.registers`, which stands for the
    /// caller's registers inside the kernel (the copies check the rest). `send` and `receive`
    /// take memory only, and their checks refuse it as they refuse any unaligned address.
    @inline(__always)
    private static func messageAddress(_ address: UserAddress) throws(KernelError) -> UserAddress {
        guard address != .registers else { throw .badAddress }
        return address
    }

    private static func perform(_ frame: ExceptionFrame, thread: Thread?, process: Process?) {
        guard let number = SystemCallNumber(rawValue: frame.register(8)) else {
            frame.setStatus(KernelError.unknownSystemCall.rawValue)
            return
        }
        /// The calling process: every call but a few needs one (the idle thread has none).
        func caller() throws(KernelError) -> Process {
            guard let process else { throw .accessDenied }
            return process
        }
        func callingThread() throws(KernelError) -> Thread {
            guard let thread, thread.process != nil else { throw .accessDenied }
            return thread
        }
        switch number {
        case .null, .clock, .yield, .threadID:
            _ = serveWithoutChecks(number.rawValue, frame, thread: thread)
        case .debugWrite:
            serve(frame, SystemCall.DebugWrite.self) { call throws(KernelError) in
                .init(written: try debugWrite(call.text, length: call.length))
            }
        case .exit:
            serve(frame, SystemCall.Exit.self) { call throws(KernelError) in
                Processes.end(try caller(), reason: .exited, code: call.code)
                return NoValues()
            }
        case .sleep:
            serve(frame, SystemCall.Sleep.self) { call throws(KernelError) in
                try sleep(try callingThread(), nanoseconds: call.nanoseconds)
                return NoValues()
            }
        case .processID:
            serve(frame, SystemCall.ProcessID.self) { _ throws(KernelError) in
                let process = try caller()
                return .init(process: process.id, parent: process.parentID)
            }
        case .retired8:
            frame.setStatus(KernelError.unknownSystemCall.rawValue)
        case .wait:
            serve(frame, SystemCall.Wait.self) { call throws(KernelError) in
                let ended = try Processes.wait(for: call.process, caller: try caller())
                return .init(code: ended.code, reason: ended.reason)
            }
        case .kill:
            serve(frame, SystemCall.Kill.self) { call throws(KernelError) in
                let process = try caller()
                guard let target = Processes.find(call.process),
                      target.parentID == process.id || target === process else { throw .notFound }
                Processes.end(target, reason: .killed, code: 0)
                return NoValues()
            }
        case .map:
            serve(frame, SystemCall.Map.self) { call throws(KernelError) in
                .init(address: try map(call, space: try addressSpace(of: caller())))
            }
        case .unmap:
            serve(frame, SystemCall.Unmap.self) { call throws(KernelError) in
                guard call.bytes > 0, let size = alignUp(call.bytes, to: pageSize) else { throw .invalidArgument }
                try addressSpace(of: caller()).unmapRegion(start: call.address.value, size: size)
                return NoValues()
            }
        case .memoryStatistics:
            serve(frame, SystemCall.MemoryStatistics.self) { _ in
                // Free for a new request: the frames set aside for pages on demand are spoken for.
                let frames = PhysicalFrames.unpromisedAndTotalFrames
                return .init(freeFrames: frames.free, totalFrames: frames.total)
            }
        case .processStatistics:
            serve(frame, SystemCall.ProcessStatistics.self) { _ in
                .init(liveProcesses: UInt64(Processes.liveCount), mappedBytes: process?.addressSpace?.mappedBytes ?? 0)
            }
        case .kernelStatistics:
            serve(frame, SystemCall.KernelStatistics.self) { _ in
                let heap = Heap.statistics.counters
                return .init(heapBlocks: heap.blocksInUse, heapPages: heap.pagesHeld)
            }
        case .portCreate:
            serve(frame, SystemCall.PortCreate.self) { _ throws(KernelError) in
                let process = try caller()
                let port = try KernelMemory.make(.port, for: process.account) { Port() }
                return .init(handle: try Handles.install(port, rights: .newPort, in: process, isNew: true))
            }
        case .notificationCreate:
            serve(frame, SystemCall.NotificationCreate.self) { _ throws(KernelError) in
                let process = try caller()
                let notification = try KernelMemory.make(.notification, for: process.account) { Notification() }
                return .init(handle: try Handles.install(notification, rights: .newNotification, in: process, isNew: true))
            }
        case .handleClose:
            serve(frame, SystemCall.HandleClose.self) { call throws(KernelError) in
                do throws(KernelError) {
                    try Handles.close(call.handle, in: try caller())
                } catch .invalidHandle where call.handle == .replySlot {
                    // Not a table entry (no table has one of generation 0): the calling
                    // thread's reply slot (ReplySlot). Tested here, so a close costs nothing more.
                    try ReplySlot.empty(try callingThread(), lettingGo: true)
                }
                return NoValues()
            }
        case .handleDuplicate:
            serve(frame, SystemCall.HandleDuplicate.self) { call throws(KernelError) in
                guard call.rights.isSubset(of: .all) else { throw .invalidArgument }
                return .init(handle: try Handles.duplicate(call.handle, rights: call.rights, in: try caller()))
            }
        case .send:
            serve(frame, SystemCall.Send.self) { call throws(KernelError) in
                try IPC.send(port: call.port, message: call.message, thread: try callingThread(), sender: try caller())
                return NoValues()
            }
        case .receive:
            serve(frame, SystemCall.Receive.self) { call throws(KernelError) in
                try IPC.receive(port: call.port, message: call.message, timeout: call.timeout,
                                thread: try callingThread(), receiver: try caller())
                return NoValues()
            }
        case .call:
            serve(frame, SystemCall.Call.self) { call throws(KernelError) in
                try IPC.call(port: call.port, message: try messageAddress(call.message), thread: try callingThread(), caller: try caller())
                return NoValues()
            }
        case .reply:
            serve(frame, SystemCall.Reply.self) { call throws(KernelError) in
                try IPC.reply(call.reply, message: try messageAddress(call.message), thread: try callingThread(), server: try caller())
                return NoValues()
            }
        case .replyReceive:
            serve(frame, SystemCall.ReplyReceive.self) { call throws(KernelError) in
                try IPC.replyReceive(reply: call.reply, message: try messageAddress(call.message), port: call.port, timeout: call.timeout,
                                     thread: try callingThread(), server: try caller())
                return NoValues()
            }
        case .callRegisters:
            serveInRegisters(frame, thread, SystemCall.CallRegisters.self) { call, thread throws(KernelError) in
                try IPC.call(port: call.port, message: .registers, thread: thread, caller: try caller())
            }
        case .replyReceiveRegisters:
            serveInRegisters(frame, thread, SystemCall.ReplyReceiveRegisters.self) { call, thread throws(KernelError) in
                try IPC.replyReceive(reply: call.reply, message: .registers, port: call.port, timeout: call.timeout,
                                     thread: thread, server: try caller())
            }
        case .notificationSignal:
            serve(frame, SystemCall.NotificationSignal.self) { call throws(KernelError) in
                try IPC.signal(call.notification, bits: call.bits, process: try caller())
                return NoValues()
            }
        case .notificationWait:
            serve(frame, SystemCall.NotificationWait.self) { call throws(KernelError) in
                .init(bits: try IPC.wait(call.notification, timeout: call.timeout, thread: try callingThread(),
                                         process: try caller()))
            }
        case .memoryCreate:
            serve(frame, SystemCall.MemoryCreate.self) { call throws(KernelError) in
                .init(handle: try MemoryCalls.create(call, caller: try caller()))
            }
        case .memoryMap:
            serve(frame, SystemCall.MemoryMap.self) { call throws(KernelError) in
                try MemoryCalls.map(call, caller: try caller())
            }
        case .memoryWrite:
            serve(frame, SystemCall.MemoryWrite.self) { call throws(KernelError) in
                try MemoryCalls.copy(call, caller: try caller())
                return NoValues()
            }
        case .memoryRead:
            serve(frame, SystemCall.MemoryRead.self) { call throws(KernelError) in
                try MemoryCalls.copy(call, caller: try caller())
                return NoValues()
            }
        case .waitAny:
            serve(frame, SystemCall.WaitAny.self) { call throws(KernelError) in
                .init(index: try IPC.waitAny(handles: call.handles, count: call.count, timeout: call.timeout,
                                             thread: try callingThread(), process: try caller()))
            }
        case .threadCreate:
            serve(frame, SystemCall.ThreadCreate.self) { call throws(KernelError) in
                .init(thread: try Processes.createThread(in: try caller(), entry: call.entry, stack: call.stackTop,
                                                         argument0: call.argument0, argument1: call.argument1))
            }
        case .threadExit:
            serve(frame, SystemCall.ThreadExit.self) { call throws(KernelError) in
                Processes.exitThread(try callingThread(), code: call.code)
                return NoValues()
            }
        case .memoryAccount:
            serve(frame, SystemCall.MemoryAccount.self) { call throws(KernelError) in
                let account = try ProcessCalls.account(call, caller: try caller())
                return .init(used: account.used, limit: account.limit)
            }
        case .kernelObjects:
            serve(frame, SystemCall.KernelObjects.self) { _ in
                .init(objects: KernelMemory.root.objects, chargedBytes: KernelMemory.root.used)
            }
        case .ipcStatistics:
            serve(frame, SystemCall.IPCStatistics.self) { _ in
                let total = IPCStatistics.total
                return .init(messages: total.messages, calls: total.calls)
            }
        case .portStatistics:
            serve(frame, SystemCall.PortStatistics.self) { _ in
                .init(ports: PortCensus.alive, closed: PortCensus.closed)
            }
        case .processInfo:
            serve(frame, SystemCall.ProcessInfo.self) { call throws(KernelError) in
                let target = try ProcessCalls.process(call.process, in: try caller(), requiring: .wait)
                return .init(threads: UInt64(target.threads.count),
                             cpuNanoseconds: target.ticks &* (1_000_000_000 / max(Clock.tickHz, 1)))
            }
        case .processCreate:
            serve(frame, SystemCall.ProcessCreate.self) { call throws(KernelError) in
                try ProcessCalls.create(call, caller: try caller())
            }
        case .processMap:
            serve(frame, SystemCall.ProcessMap.self) { call throws(KernelError) in
                try ProcessCalls.map(call, caller: try caller())
                return NoValues()
            }
        case .processStart:
            serve(frame, SystemCall.ProcessStart.self) { call throws(KernelError) in
                .init(thread: try ProcessCalls.start(call, caller: try caller()))
            }
        case .processGive:
            serve(frame, SystemCall.ProcessGive.self) { call throws(KernelError) in
                .init(given: try ProcessCalls.give(call, caller: try caller()))
            }
        case .processWait:
            serve(frame, SystemCall.ProcessWait.self) { call throws(KernelError) in
                let ended = try ProcessCalls.wait(call, thread: try callingThread(), caller: try caller())
                return .init(code: ended.code, reason: ended.reason)
            }
        case .processKill:
            serve(frame, SystemCall.ProcessKill.self) { call throws(KernelError) in
                Processes.end(try ProcessCalls.process(call.process, in: try caller(), requiring: .control),
                              reason: .killed, code: 0)
                return NoValues()
            }
        case .processNotify:
            serve(frame, SystemCall.ProcessNotify.self) { call throws(KernelError) in
                try ProcessCalls.notify(call, caller: try caller())
                return NoValues()
            }
        case .deviceOpen:
            serve(frame, SystemCall.DeviceOpen.self) { call throws(KernelError) in
                let device = try DeviceAccess.open(call.device, through: call.access, process: try caller())
                return .init(registerMemory: device.registers, interrupt: device.interrupt)
            }
        case .deviceInfo:
            serve(frame, SystemCall.DeviceInfo.self) { call throws(KernelError) in
                let device = try DeviceAccess.device(call.device, through: call.access, process: try caller())
                return .init(kind: device.kind.rawValue, registerAddress: device.registers.start.value)
            }
        case .dmaCreate:
            serve(frame, SystemCall.DMACreate.self) { call throws(KernelError) in
                let dma = try DeviceAccess.createDMA(bytes: call.bytes, for: call.device, through: call.access,
                                                     process: try caller())
                return .init(memory: dma.memory, deviceAddress: dma.deviceAddress)
            }
        case .interruptBind:
            serve(frame, SystemCall.InterruptBind.self) { call throws(KernelError) in
                .init(identifier: UInt64(try DeviceAccess.bind(call.interrupt, notification: call.notification,
                                                               process: try caller())))
            }
        case .logOpen:
            serve(frame, SystemCall.LogOpen.self) { call throws(KernelError) in
                .init(reader: try KernelLog.open(through: call.access, notification: call.notification, bits: call.bits,
                                                 process: try caller()))
            }
        case .logRead:
            serve(frame, SystemCall.LogRead.self) { call throws(KernelError) in
                .init(length: try KernelLog.read(call.reader, into: call.buffer, capacity: call.capacity, process: try caller()))
            }
        case .threadAffinity:
            serve(frame, SystemCall.ThreadAffinity.self) { call throws(KernelError) in
                let thread = call.thread == 0 ? try callingThread() : try Processes.thread(call.thread, of: try caller())
                return .init(previous: try Scheduler.setAffinity(of: thread, to: call.cpus), online: Scheduler.onlineCPUs)
            }
        case .threadPriority:
            serve(frame, SystemCall.ThreadPriority.self) { call throws(KernelError) in
                let thread = call.thread == 0 ? try callingThread() : try Processes.thread(call.thread, of: try caller())
                let previous = try Scheduler.setPriority(of: thread, to: call.priority)
                return .init(previous: UInt64(previous), highest: UInt64(Scheduler.highestUserPriority))
            }
        case .cpuStatistics:
            serve(frame, SystemCall.CPUStatisticsRead.self) { call throws(KernelError) in
                try Scheduler.copyStatistics(of: call.cpu, to: call.buffer, capacity: call.capacity)
                return .init(online: Scheduler.onlineCPUs, count: UInt64(PerCPU.storage?.count ?? 1))
            }
        case .interruptAcknowledge:
            serve(frame, SystemCall.InterruptAcknowledge.self) { call throws(KernelError) in
                try DeviceAccess.acknowledge(call.interrupt, process: try caller())
                return NoValues()
            }
        }
    }

    private static func addressSpace(of process: Process) throws(KernelError) -> AddressSpace {
        guard let space = process.addressSpace else { throw .accessDenied }
        return space
    }

    /// Copies the text in pieces through a kernel buffer; stops at the first bad page.
    private static func debugWrite(_ text: UserAddress, length: UInt64) throws(KernelError) -> UInt64 {
        guard length <= maximumWriteBytes, UserMemory.isUserRange(text, length) else { throw .badAddress }
        var buffer = InlineArray<256, UInt8>(repeating: 0)
        var written: UInt64 = 0
        while written < length {
            let piece = min(length - written, 256)
            do throws(KernelError) {
                try withUnsafeMutableBytes(of: &buffer) { bytes throws(KernelError) in
                    try UserMemory.copyIn(to: bytes.baseAddress!, from: text.advanced(by: written), count: piece)
                }
            } catch {
                // What went out before the fault went out: the caller hears how much, and only
                // a write of which nothing went out fails.
                guard written > 0 else { throw error }
                break
            }
            withUnsafeBytes(of: &buffer) { bytes in Console.writeRaw(UnsafeRawBufferPointer(rebasing: bytes[0..<Int(piece)])) }
            written += piece
        }
        // Queued for the console service: it hears of it now (a system call is a safe place).
        KernelLog.deliverPending()
        return written
    }

    private static func sleep(_ thread: Thread, nanoseconds: UInt64) throws(KernelError) {
        let ticks = Clock.ticks(forNanoseconds: nanoseconds)
        guard ticks > 0 else { return }
        thread.sleepExpired = false
        try Clock.addDeadline(at: Clock.now &+ ticks, token: thread.id)
        while !thread.sleepExpired && !thread.killed { Scheduler.block() }
    }

    private static func map(_ call: SystemCall.Map, space: AddressSpace) throws(KernelError) -> UserAddress {
        guard call.bytes > 0, call.bytes <= maximumMapBytes, call.access.isSubset(of: [.write, .execute]),
              call.access != [.write, .execute],
              let bytes = alignUp(call.bytes, to: pageSize) else { throw .invalidArgument }
        var permissions: MappingPermissions = []
        if call.access.contains(.write) { permissions.insert(.write) }
        if call.access.contains(.execute) { permissions.insert(.execute) }
        guard let start = space.reserveMapAddress(size: bytes) else { throw .outOfMemory }
        try space.mapZeroed(at: start, size: bytes, permissions: permissions)
        return UserAddress(start)
    }
}

extension ExceptionFrame {
    /// x0-x5 as the caller left them.
    @inline(__always)
    var systemCallArguments: ArgumentRegisters {
        ArgumentRegisters(x0: register(0), x1: register(1), x2: register(2), x3: register(3), x4: register(4),
                          x5: register(5))
    }

    /// The status the caller finds in x0.
    @inline(__always)
    func setStatus(_ status: UInt64) { setRegister(0, status) }
}
