// A thread: its saved kernel context (what switch_context keeps), its user FP/SIMD state, its
// kernel stack and its scheduling state. A user thread's first switch lands in
// thread_enter_user, which "returns" from an exception frame built to enter EL0.

import AArch64

/// Callee-saved registers, frame pointer, link register and stack pointer, laid out as
/// include/Layouts.h defines for switch_context. The word count is a generic argument, which must
/// be a literal; the boot self-test checks it against SWITCH_CONTEXT_WORDS.
struct SwitchContext {
    var registers = InlineArray<13, UInt64>(repeating: 0)

    /// Where switch_context returns to in this thread.
    var linkRegister: UInt64 {
        get { registers[Self.slot(SWITCH_CONTEXT_X30)] }
        set { registers[Self.slot(SWITCH_CONTEXT_X30)] = newValue }
    }
    var stackPointer: UInt64 {
        get { registers[Self.slot(SWITCH_CONTEXT_SP)] }
        set { registers[Self.slot(SWITCH_CONTEXT_SP)] = newValue }
    }

    /// The register slot at a byte offset from Layouts.h.
    private static func slot(_ offset: Int32) -> Int { Int(offset) / MemoryLayout<UInt64>.size }
}

/// What a sender's direct delivery into a thread waiting in `receive` reported.
enum DeliveryOutcome {
    case delivered
    case failed(KernelError)
}

/// What a thread waiting in its user frame waits for (`Thread.frameWait`).
enum FrameWait {
    case none
    /// The answer to its `call` or `callRegisters`.
    case answer
    /// A message on the port `replyReceive` or `replyReceiveRegisters` named, into its buffer
    /// (`UserAddress.registers`: its registers), after answering.
    case message(on: Handle, into: UserAddress)
    /// Bits on a notification (`notificationWait`). Not counted, though its handle may be closed
    /// meanwhile: while this is its wait, the thread is the notification's waiter, which a signal
    /// hands its bits to and which the notification's end tells (`Thread.takeBitsAtOnce`,
    /// `Thread.notificationEnded`), either one leaving `.finished`. So while it is `.bits`,
    /// the notification is there.
    case bits(Unmanaged<Notification>)
    /// Over before the thread ran again: what the call returns is in its frame already. Also
    /// a thread preempted in user space by an interrupt's hand-off (`Thread.leaveInFrame`): its
    /// registers are all in its frame, and it is in no call.
    case finished
}

enum ThreadState: Equatable {
    case ready
    case running
    case blocked
    case dead
}

/// What the idle thread, which has no user registers, points `userRegisters` at: a frame's worth
/// of words nothing reads, since only a thread in a system call from EL0 has a message in registers.
private let noUserRegisters = UnsafeMutablePointer<UInt64>.allocate(capacity: ExceptionFrame.size / 8)

final class Thread: ChargedObject {
    let id: UInt64
    /// Nil for the idle thread, which runs only in the kernel.
    let process: Process?
    let context: UnsafeMutablePointer<SwitchContext>
    /// Its user FP/SIMD registers while another thread's are live (see LazyFloatingPoint).
    let floatingPoint: UnsafeMutableRawPointer
    // The four bytes the IPC fast paths write together at each hand-off, side by side so that
    // the compiler merges their stores (one or two instead of three or four).
    var state = ThreadState.ready
    /// Inside a system call: its kernel stack holds frames that must unwind before it can go.
    var inSystemCall = false
    /// `frameWait` as stored: which wait in a byte of its own (its words are `frameWaitWords`).
    /// A `FrameWait` packs its cases without payload into its payload's words, so telling them
    /// apart reads three fields; the fast paths test the kind at every hand-off.
    private var frameWaitKind = FrameWaitKind.none
    /// Set by a deadline while sleeping.
    var sleepExpired = false
    let stack: KernelStacks.Stack?
    /// TTBR0_EL1 for this thread (its process's tables and ASID); 0 once the process's address
    /// space is gone, or for the idle thread.
    var translationBase: TranslationBase
    var priority: Int
    /// Ticks left of its time slice: its own, spent across switches and blocking, and filled
    /// again only once spent (`Scheduler.tick`), so that threads passing the CPU to each other
    /// (IPC) use theirs up like any other and leave their level's other threads their turns.
    var sliceRemaining = Scheduler.sliceTicks
    /// Run-queue link, not counted (see `Scheduler.Queue`).
    var queueNext: Unmanaged<Thread>?
    /// Link in this CPU's list of dead threads waiting to be released, which holds them.
    var nextDead: Thread?
    /// Its process ended while it was inside a system call: it wakes, unwinds, and ends on the
    /// way out of the exception instead of returning to user space.
    var killed = false
    /// Reused for every call this thread makes (see IPC.call); made with the thread, dropped
    /// when it is released (the capability holds the thread, so this breaks the cycle).
    var replyCapability: ReplyCapability?
    /// The call this thread took in registers and has not answered, if it went to the slot
    /// (`ReplySlot`): its caller's reply capability, not counted.
    var replySlot: Unmanaged<ReplyCapability>?
    /// The thread whose reply slot holds this thread's call, while one does.
    var replySlotHolder: Unmanaged<Thread>?
    /// Whether `replySlot` counts its capability: once its caller was released before the
    /// answer, which handed the slot its reference; the caller holds it until then.
    var replySlotCounts = false
    /// What the thread's process paid for its heap part; its kernel stack is charged by the page.
    var charge = MemoryCharge()
    /// Where the payload of a reply to this thread's call waits between the server's memory and
    /// this thread's.
    let messageBuffer = UnsafeMutableRawPointer.allocate(byteCount: IPCMessageLayout.maximumPayload, alignment: 16)
    /// The header of a message this thread sends or delivers, between user memory and the
    /// kernel's message (`IPCMessageLayout` up to the payload).
    let messageHeader = UnsafeMutablePointer<UInt64>.allocate(capacity: IPCMessageLayout.headerWords)
    /// While blocked in `receive`: the user address a sender may deliver a message straight
    /// into (`.none` when not receiving; `.registers` for its saved registers). Its result is
    /// then `receiveResult`.
    var receiveAddress = UserAddress.none
    var receiveResult: DeliveryOutcome?
    /// While waiting in `call`: the user address the reply is written to (`.none` when not
    /// calling; `.registers` for its saved registers).
    var callAddress = UserAddress.none
    /// Not `.none` while it waits in its user frame: in a call that may wait, the IPC fast path
    /// left nothing on its kernel stack but the exception frame (all of x0-x30), and its context
    /// resumes in thread_resume_frame_wait, which finishes the wait (`IPCFastPath.finishFrameWait`).
    /// A fast path that finishes the wait itself returns to user space from the frame.
    var frameWait: FrameWait {
        get {
            switch frameWaitKind {
            case .none: return .none
            case .answer: return .answer
            case .message: return .message(on: Handle(frameWaitWords.0), into: UserAddress(frameWaitWords.1))
            case .bits:
                return .bits(Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: UInt(frameWaitWords.0)).unsafelyUnwrapped))
            case .finished: return .finished
            }
        }
        set {
            switch newValue {
            case .none: frameWaitKind = .none
            case .answer: frameWaitKind = .answer
            case .message(let port, let address):
                frameWaitKind = .message
                frameWaitWords = (port.value, address.value)
            case .bits(let notification):
                frameWaitKind = .bits
                frameWaitWords.0 = UInt64(UInt(bitPattern: notification.toOpaque()))
            case .finished: frameWaitKind = .finished
            }
        }
    }
    private var frameWaitWords: (UInt64, UInt64) = (0, 0)
    private enum FrameWaitKind: UInt8 {
        case none, answer, message, bits, finished
    }
    var waitsInFrame: Bool { frameWaitKind != .none }
    var isAwaitingAnswerInFrame: Bool { frameWaitKind == .answer }
    /// Its saved x0-x30 while it is in a system call from EL0 (`userFrame`'s registers): where a
    /// message in registers is read from and written to (`RegisterMessageLayout`). Kept, not
    /// computed, since both IPC fast paths read it for each thread they pass between.
    let userRegisters: UnsafeMutablePointer<UInt64>
    /// This thread's places in ports' waiter lists: the first for `receive`, one per handle for
    /// `waitAny`. Off every list before the thread is released.
    let waitLinks: UnsafeMutablePointer<WaitLink<Thread>>
    /// The CPU whose run queue holds it, or that it last ran on: woken, it goes back there.
    var cpu = 0
    /// The CPUs it may run on, one bit per CPU index (`threadAffinity`); all of them by default.
    var affinity = UInt64.max

    /// As many as `waitAny` takes handles.
    static let waitLinkCount = 8
    /// The link a plain `receive` waits with.
    var receiveLink: UnsafeMutablePointer<WaitLink<Thread>> { waitLinks }

    init(id: UInt64, process: Process?, stack: KernelStacks.Stack?, priority: Int) {
        self.id = id
        self.process = process
        self.stack = stack
        self.priority = priority
        cpu = PerCPU.current.index
        translationBase = process?.addressSpace?.translationBase ?? .none
        userRegisters = ExceptionFrame(base: Self.frameBase(on: stack)).registers
        context = UnsafeMutablePointer<SwitchContext>.allocate(capacity: 1)
        context.initialize(to: SwitchContext())
        floatingPoint = UnsafeMutableRawPointer.allocate(byteCount: LazyFloatingPoint.saveAreaBytes, alignment: 16)
        LazyFloatingPoint.prepare(floatingPoint)
        waitLinks = UnsafeMutablePointer<WaitLink<Thread>>.allocate(capacity: Self.waitLinkCount)
        for index in 0..<Self.waitLinkCount { (waitLinks + index).initialize(to: WaitLink(waiter: self)) }
        replyCapability = ReplyCapability(caller: self)
    }

    /// Builds, at the top of the kernel stack, the exception frame that enters EL0 at `entry`
    /// with SP_EL0 = `userStack`, x0 = `argument`, x1 = `handle`, x2 = `startBlock` and x3 =
    /// `ramdisk` (the program start convention, userland/runtime/start.S), and points the context at it.
    func prepareUserEntry(entry: UInt64, userStack: UInt64, argument: UInt64, handle: UInt64, startBlock: UInt64 = 0,
                          ramdisk: UInt64 = 0) {
        guard stack != nil else { return }
        let frame = userFrame
        frame.base.initialize(repeating: 0, count: ExceptionFrame.size / MemoryLayout<UInt64>.size)
        frame.setRegister(0, argument)
        frame.setRegister(1, handle)
        frame.setRegister(2, startBlock)
        frame.setRegister(3, ramdisk)
        frame.stackPointerEL0 = userStack
        frame.exceptionLinkRegister = entry
        frame.savedProgramStatus = 0 // EL0t, interrupts unmasked
        context.pointee.linkRegister = aarch64_address_of_thread_enter_user()
        context.pointee.stackPointer = UInt64(UInt(bitPattern: frame.base))
    }

    /// The running thread, in a call whose frame holds all its registers, waits in
    /// that frame for `wait` from now on: a switch to it lands in thread_resume_frame_wait with SP
    /// at the frame, and nothing it has on its kernel stack now is ever returned to.
    func waitInFrame(for wait: FrameWait) {
        frameWait = wait
        context.pointee.linkRegister = aarch64_address_of_thread_resume_frame_wait()
        context.pointee.stackPointer = UInt64(UInt(bitPattern: userRegisters))
    }

    /// Interrupted in user space with nothing on its kernel stack but its frame, it is switched
    /// away from without saving anything more: it comes back to user space from the frame, the
    /// way a thread whose wait in its frame is over does (`FrameWait.finished`).
    @inline(__always)
    func leaveInFrame() { waitInFrame(for: .finished) }

    /// Its wait in its frame finished the way the general code after a switch would, when that
    /// wait is over so that nothing waits again: an answered call, a delivered message, bits
    /// handed over, and the thread not killed (a killed thread ends on its way out, which only
    /// the general way does, `IPCFastPath.finishFrameWait`). Whether it did; if not, nothing
    /// changed. Here, below IPC, for the scheduler's switches to such a thread.
    func finishWaitAtOnce() -> Bool {
        guard !killed else { return false }
        switch frameWait {
        case .none, .bits:
            return false
        case .answer:
            let reply = replyCapability.unsafelyUnwrapped
            guard reply.call.finished else { return false }
            callAddress = .none
            endFrameWait(status: reply.call.failure?.rawValue ?? systemCallSuccess)
        case .message:
            guard case .delivered = receiveResult else { return false }
            receiveAddress = .none
            receiveResult = nil
            endFrameWait(status: systemCallSuccess)
        case .finished:
            leaveFrameWait()
        }
        return true
    }

    /// `finishWaitAtOnce` for a thread whose wait a signal finished (`takeBitsAtOnce`), as an
    /// interrupt's handler's is when `Scheduler.preempt` takes it straight to it; false for any other.
    @inline(__always)
    func finishHandedWaitAtOnce() -> Bool {
        guard frameWaitKind == .finished, !killed else { return false }
        leaveFrameWait()
        return true
    }

    /// A signal wakes this thread, its notification's waiter, with `bits` (SchedulerWaking): if
    /// it waits in its frame, they are its now, where `notificationWait` returns them (x1), and
    /// its wait is over. Then it no longer needs the notification, which it does not count.
    @inline(__always)
    func takeBitsAtOnce(_ bits: UInt64) -> Bool {
        guard frameWaitKind == .bits else { return false }
        guard !killed else {
            // Killed while it waited: the bits stay for the next waiter, and its wait is over
            // all the same. It no longer is the waiter, and it does not count the notification,
            // which may end before it runs to unwind (its process's end signals it, and may drop
            // the last reference); so nothing of the wait may lead back to it.
            endBitsWaitUnsignalled()
            return false
        }
        let values = SystemCall.NotificationWait.Result(bits: bits).registers
        userRegisters[0] = systemCallSuccess
        userRegisters[1] = values.x1
        userRegisters[2] = values.x2
        frameWait = .finished
        return true
    }

    /// The notification this thread waits on ended, unsignalled: the object itself (only a wait
    /// in the frame does not keep it), or the last handle with the wait right
    /// (`NotificationWord.isEnded`). A wait in its frame ends here with `peerClosed`; any other
    /// wait sees `isEnded` when it runs.
    func notificationEnded() {
        if frameWaitKind == .bits { endBitsWaitUnsignalled() }
        Scheduler.wake(self)
    }

    /// Its wait in the frame on a notification over without bits (`peerClosed`), leaving nothing
    /// that leads back to the notification: the notification ended, or the thread was killed.
    @inline(__always)
    private func endBitsWaitUnsignalled() {
        userRegisters[0] = KernelError.peerClosed.rawValue
        frameWait = .finished
    }

    /// A wait in its frame over, as the dispatcher would have left the thread on its way out:
    /// `status` in x0 (any values already in their registers), and out of the system call.
    @inline(__always)
    func endFrameWait(status: UInt64) {
        userRegisters[0] = status
        leaveFrameWait()
    }

    /// Out of its wait in the frame and of the system call, its values in their registers.
    /// `sleepExpired` is cleared with the rest, which no wait in the frame reads (they all wait
    /// for ever), so that the fast paths write these bytes as one word with `state`.
    @inline(__always)
    func leaveFrameWait() {
        frameWait = .none
        inSystemCall = false
        sleepExpired = false
    }

    /// The exception frame at the top of its kernel stack: its user registers while it is in a
    /// system call from EL0 (or before it first enters EL0), since every entry from EL0 starts
    /// with an empty kernel stack. A user thread only: the idle thread has no stack of its own.
    var userFrame: ExceptionFrame { ExceptionFrame(base: Self.frameBase(on: stack)) }

    private static func frameBase(on stack: KernelStacks.Stack?) -> UnsafeMutablePointer<UInt64> {
        guard let stack else { return noUserRegisters }
        return UnsafeMutablePointer<UInt64>(bitPattern: UInt(stack.top) - UInt(ExceptionFrame.size)).unsafelyUnwrapped
    }


    /// Blocked in a plain `receive`, so a sender may write a message straight into its buffer.
    var isAwaitingDirectMessage: Bool { state == .blocked && receiveAddress != .none && !killed }
    /// `isAwaitingDirectMessage`, into its registers.
    var isAwaitingMessageInRegisters: Bool { state == .blocked && receiveAddress == .registers && !killed }

    /// A sender wrote (or failed to write) a message into this waiting thread's buffer.
    func finishReceive(_ outcome: DeliveryOutcome) {
        receiveAddress = .none
        receiveResult = outcome
    }

    /// Once woken from a wait in `receive`: what a sender's direct delivery reported, if one did.
    func takeReceiveResult() -> DeliveryOutcome? {
        receiveAddress = .none
        defer { receiveResult = nil }
        return receiveResult
    }

    /// `process` unretained, for the IPC fast path: the thread holds its process for its whole
    /// life, so code running as this thread may use it without counting.
    var processReference: Unmanaged<Process>? { process.map { Unmanaged.passUnretained($0) } }

    func release() {
        if let stack, let account = process?.account { KernelStacks.free(stack, for: account) }
        context.deallocate()
        floatingPoint.deallocate()
        messageBuffer.deallocate()
        messageHeader.deallocate()
        for index in 0..<Self.waitLinkCount { WaitLink.unlink(waitLinks + index) }
        waitLinks.deinitialize(count: Self.waitLinkCount)
        waitLinks.deallocate()
        if replySlot != nil || replySlotHolder != nil { ReplySlot.threadReleased(self) }
        replyCapability = nil
        queueNext = nil
        nextDead = nil
    }

    deinit { charge.release() }
}
