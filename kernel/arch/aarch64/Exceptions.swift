// Exception entry from vectors.S: IRQs go to the interrupt dispatcher, SVCs to the system call
// dispatcher, an FP/SIMD trap from EL0 to the lazy FP/SIMD switch, any other exception from EL0
// to the process layer as the program's fault, and faults of the kernel's memory probes and
// user-memory copies to their fixups; anything else ends in a panic with a full report.

import AArch64

/// The register frame vectors.S saves, laid out as include/Layouts.h defines.
struct ExceptionFrame {
    static var size: Int { Int(EXCEPTION_FRAME_SIZE) }
    let base: UnsafeMutablePointer<UInt64>

    /// The frame's word at a byte offset from Layouts.h.
    private func word(at offset: Int32) -> UnsafeMutablePointer<UInt64> {
        base + Int(offset) / MemoryLayout<UInt64>.size
    }

    /// The saved x0-x30, in order.
    var registers: UnsafeMutablePointer<UInt64> { word(at: EXCEPTION_FRAME_REGISTERS) }
    func register(_ index: Int) -> UInt64 { word(at: EXCEPTION_FRAME_REGISTERS)[index] }
    func setRegister(_ index: Int, _ value: UInt64) { word(at: EXCEPTION_FRAME_REGISTERS)[index] = value }
    var stackPointerEL0: UInt64 {
        get { word(at: EXCEPTION_FRAME_SP_EL0).pointee }
        nonmutating set { word(at: EXCEPTION_FRAME_SP_EL0).pointee = newValue }
    }
    var exceptionLinkRegister: UInt64 {
        get { word(at: EXCEPTION_FRAME_ELR).pointee }
        nonmutating set { word(at: EXCEPTION_FRAME_ELR).pointee = newValue }
    }
    var savedProgramStatus: UInt64 {
        get { word(at: EXCEPTION_FRAME_SPSR).pointee }
        nonmutating set { word(at: EXCEPTION_FRAME_SPSR).pointee = newValue }
    }
    var syndrome: ExceptionSyndrome { ExceptionSyndrome(word(at: EXCEPTION_FRAME_ESR).pointee) }
    var faultAddress: UInt64 { word(at: EXCEPTION_FRAME_FAR).pointee }
}

/// Which of the 16 vectors was taken (vectors.S passes 0...15).
struct VectorKind {
    let value: UInt64

    static let names: (StaticString, StaticString, StaticString, StaticString) =
        ("synchronous", "IRQ", "FIQ", "SError")

    var typeName: StaticString {
        switch value & 3 {
        case 0: return Self.names.0
        case 1: return Self.names.1
        case 2: return Self.names.2
        default: return Self.names.3
        }
    }

    var originName: StaticString {
        switch value >> 2 {
        case 0: return "EL1 with SP_EL0"
        case 1: return "EL1"
        case 2: return "EL0 (AArch64)"
        default: return "EL0 (AArch32)"
        }
    }

    var isSynchronous: Bool { value & 3 == 0 }

    /// A synchronous exception from EL0 in AArch64: system calls and the program's faults.
    static let lowerSynchronous: UInt64 = 8
}

extension ExceptionSyndrome {
    /// The BRK the boot self-test raises to see exceptions taken and returned from.
    var isSelfTestBreak: Bool { isClass(.breakInstruction) && immediate == 0x5354 }
}

enum Exceptions {
    /// What one CPU's exceptions leave for the self-tests, in its per-CPU block.
    struct CPUState {
        /// BRK self-test traps handled on this CPU; the boot self-test checks it moves.
        var selfTestTraps = 0
        /// The fault address of this CPU's last faulting memory probe.
        var probeFaultAddress: UInt64 = 0
    }

    static var selfTestTraps: Int { PerCPU.current.exceptions.selfTestTraps }

    /// This CPU's vector table: the single-CPU one, or once other CPUs run threads the one whose
    /// exceptions take the big kernel lock (vectors.S).
    static func install(multiprocessor: Bool = false) {
        aarch64_write_vbar(multiprocessor ? aarch64_address_of_exception_vectors_smp() : KernelImage.exceptionVectors)
        aarch64_isb()
    }

    static var vectorTableAddress: UInt64 { KernelImage.exceptionVectors }
}

// The entries one CPU takes most (system calls and interrupts from EL0) are named for
// vectors.S with `@_silgen_name` rather than `@_cdecl`: the Swift function itself then has the
// name, where `@_cdecl` adds a C entry that only branches to it, an instruction on every entry.
// Their Swift convention is the C one for what they take and give (a pointer or nothing in, nothing
// out), and vectors.S counts on nothing in the registers they return with but x19-x28, which the
// short system call entry does not save. Swift gives those back as C does as long as a function
// neither throws (its error comes back in x21) nor is `async` (its context is in x22): these
// five must stay so.

/// A system call from EL0 outside `SystemCalls.frameWaitCalls` (vectors.S, system_call_entry):
/// the frame holds x0-x18, x29 and x30, with x19-x28 still in their registers.
@_silgen_name("system_call_dispatch")
func systemCallDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    SystemCalls.dispatch(ExceptionFrame(base: frameBase), from: .shortFrame)
    Scheduler.preemptIfNeeded()
}

/// A call that may wait in its frame (`SystemCalls.frameWaitCalls`) from EL0 (vectors.S,
/// system_call_entry): the frame holds every register. The fast path may leave the thread
/// waiting in it.
@_silgen_name("frame_call_dispatch")
func frameCallDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    SystemCalls.dispatchWaitingInFrame(ExceptionFrame(base: frameBase), SystemCalls.Directly.self)
}

/// `callRegisters` and `replyReceiveRegisters` from EL0 while one CPU runs, made by `svc #1` and
/// `svc #2`: the entry (vectors.S, register_call_entry) tells them apart by the immediate, wrote
/// the number to x8 and saved every register, as for `frame_call_dispatch`. Their fast legs make
/// no call, so these functions have no stack frame of their own on the way to the switch.
@_silgen_name("call_registers_dispatch")
func callRegistersDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    SystemCalls.dispatchInRegisters(ExceptionFrame(base: frameBase), answering: false)
}

@_silgen_name("reply_receive_registers_dispatch")
func replyReceiveRegistersDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    SystemCalls.dispatchInRegisters(ExceptionFrame(base: frameBase), answering: true)
}

/// An IRQ from EL0 while one CPU runs (vectors.S, user_interrupt_entry): the frame holds every
/// register of the interrupted thread, and nothing else is on its kernel stack, so a switch away
/// may leave the frame (`Scheduler.preemptAtUserInterrupt`). From the multiprocessor table an
/// IRQ goes the general way, under the big kernel lock.
@_silgen_name("user_interrupt_dispatch")
func userInterruptDispatch() {
    Interrupts.handleIRQ()
    Scheduler.preemptAtUserInterrupt()
}

/// The same from the multiprocessor table, under the big kernel lock as `lockedExceptionDispatch`
/// takes it. A fast path that returns to user space from another thread's frame gives the lock
/// up on the way (resume_user_frame_unlocking).
@_cdecl("locked_frame_call_dispatch")
func lockedFrameCallDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    let taken = BigKernelLock.acquireUnlessHeld()
    if Scheduler.currentKilledInUserSpace { Scheduler.endKilledThread() }
    SystemCalls.dispatchWaitingInFrame(ExceptionFrame(base: frameBase), SystemCalls.Back.self)
    if Scheduler.currentKilledInUserSpace { Scheduler.endKilledThread() }
    if taken { BigKernelLock.release() }
}

/// A thread that waited in its user frame, switched to the general way (vectors.S,
/// thread_resume_frame_wait): its wait is finished here, and the rest is what the dispatcher does
/// on its way out; then it returns to user space from the frame.
@_cdecl("frame_wait_resume")
func frameWaitResume() {
    if PerCPU.current.scheduler.dead != nil { Scheduler.releaseDeadThreads() }
    Scheduler.running?._withUnsafeGuaranteedRef { thread in
        IPCFastPath.finishFrameWait(thread)
        thread.inSystemCall = false
        if thread.killed { Scheduler.markCurrentDead() }
    }
    Scheduler.preemptIfNeeded()
    BigKernelLock.releaseIfHeld()
}

/// The same from the multiprocessor table: under the big kernel lock, as any exception from EL0.
@_cdecl("locked_system_call_dispatch")
func lockedSystemCallDispatch(_ frameBase: UnsafeMutablePointer<UInt64>) {
    lockedExceptionDispatch(frameBase, VectorKind.lowerSynchronous)
}

@_cdecl("exception_dispatch")
func exceptionDispatch(_ frameBase: UnsafeMutablePointer<UInt64>, _ kindValue: UInt64) {
    let frame = ExceptionFrame(base: frameBase)
    let syndrome = frame.syndrome
    // The hot path first: a system call from user space.
    if kindValue == 8 && syndrome.exceptionClassValue == ExceptionSyndrome.ExceptionClass.supervisorCall.rawValue {
        SystemCalls.dispatch(frame)
        Scheduler.preemptIfNeeded()
        return
    }
    let kind = VectorKind(value: kindValue)
    let isSystemCall = syndrome.isClass(.supervisorCall)
    switch kindValue {
    case 16...31: // the multiprocessor table: the same, under the big kernel lock
        lockedExceptionDispatch(frameBase, kindValue - 16)
        return
    case 5, 9: // IRQ from EL1 or EL0
        Interrupts.handleIRQ()
        // At EL1 only the idle thread switches here, and not inside Interrupts.servePending: that
        // interrupted a system call (or the idle thread's releasing of ended threads), which goes
        // on and switches on its way out.
        if kindValue == 9 || (Scheduler.isIdle && !Interrupts.isServingPending) {
            Scheduler.preemptIfNeeded()
        } else {
            Scheduler.wakeHandedOff()
        }
        return
    case 4 where isSystemCall, 8 where isSystemCall: // SVC from EL1 (self-tests) or EL0
        SystemCalls.dispatch(frame)
        Scheduler.preemptIfNeeded()
        return
    case 0 where syndrome.isSelfTestBreak, 4 where syndrome.isSelfTestBreak:
        // The self-test's breakpoint, from the kernel only: from a program it is a fault like
        // any other.
        PerCPU.current.exceptions.selfTestTraps += 1
        frame.exceptionLinkRegister += 4 // resume after the BRK
        return
    case 8 where syndrome.isClass(.trappedFloatingPoint): // lazy FP/SIMD switch
        if let thread = Scheduler.current, thread.process != nil { LazyFloatingPoint.claim(for: thread.floatingPoint) }
        return
    case 8 where syndrome.isClass(.dataAbortLowerLevel) && UserMemory.mapOnDemand(frame): // a page's first touch
        return
    case 8...15: // anything else from EL0 is the program's fault, not the kernel's
        Processes.fault(frame, kind: kind)
        Scheduler.preemptIfNeeded()
        return
    default:
        break
    }
    if kind.isSynchronous, syndrome.isClass(.dataAbortSameLevel),
       MemoryProbe.recover(frame) || UserMemory.recover(frame) {
        return
    }
    exceptionPanic(frame: frame, kind: kind)
}

/// Loads and stores that may fault, for the kernel's own checks of its address space: a fault at
/// the probe instruction resumes at a fixup with the syndrome as the result instead of being a
/// kernel fault. (User-memory copies have their own fixup, `UserMemory.recover`.)
enum MemoryProbe {
    /// The fault address of the last probe on this CPU that faulted.
    static var lastFaultAddress: UInt64 { PerCPU.current.exceptions.probeFaultAddress }

    /// Reads 8 bytes at `address`; the fault's syndrome if the read faulted.
    static func load(_ address: UInt64) -> (value: UInt64, fault: ExceptionSyndrome?) {
        var value: UInt64 = 0
        let result = memory_probe_load(address, &value)
        return (value, result == 0 ? nil : ExceptionSyndrome(result))
    }

    static func store(_ address: UInt64, _ value: UInt64) -> ExceptionSyndrome? {
        let result = memory_probe_store(address, value)
        return result == 0 ? nil : ExceptionSyndrome(result)
    }

    /// True (and the frame redirected to the fixup) when the fault came from a probe instruction.
    static func recover(_ frame: ExceptionFrame) -> Bool {
        let faulting = frame.exceptionLinkRegister
        guard faulting == aarch64_address_of_memory_probe_load_instruction()
            || faulting == aarch64_address_of_memory_probe_store_instruction() else { return false }
        PerCPU.current.exceptions.probeFaultAddress = frame.faultAddress
        frame.setRegister(0, frame.syndrome.value)
        frame.exceptionLinkRegister = aarch64_address_of_memory_probe_fixup()
        return true
    }
}

/// The kernel-fault report: what was taken and from where, the syndrome decoded, the function
/// the exception was taken in, the saved registers, and a frame-pointer backtrace.
func exceptionPanic(frame: ExceptionFrame, kind: VectorKind) -> Never {
    Panic.begin()
    var summary = TextLine()
    summary.write("Kernel panic: unexpected ")
    summary.write(kind.typeName)
    summary.write(" exception from ")
    summary.write(kind.originName)
    summary.write(": ")
    frame.syndrome.describe(into: &summary)
    if kind.isSynchronous && frame.syndrome.exceptionClass == .breakInstruction && frame.syndrome.immediate == 1 {
        summary.write(" (Swift runtime trap: overflow, bounds check or nil unwrap)")
    }
    Console.write(summary)
    log("  ESR \(hex: frame.syndrome.value)  FAR \(hex: frame.faultAddress)  ELR \(hex: frame.exceptionLinkRegister)")
    var location = TextLine()
    location.write("  at ")
    if Panic.describe(frame.exceptionLinkRegister, into: &location) { Console.write(location) }
    log("  SPSR \(hex: frame.savedProgramStatus)  SP_EL0 \(hex: frame.stackPointerEL0)")
    var index = 0
    while index < 31 {
        var line = TextLine()
        var column = 0
        while column < 4 && index < 31 {
            line.write(index < 10 ? "  x" : " x")
            line.writeDecimal(UInt64(index))
            line.write(" ")
            line.writeHex(frame.register(index))
            index += 1
            column += 1
        }
        Console.write(line)
    }
    Panic.backtrace(from: frame.register(29))
    Panic.end()
}
