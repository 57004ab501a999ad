// A thread: its saved kernel context (what switch_context keeps), its user FP/SIMD state, its
// kernel stack and its scheduling state. A user thread's first switch lands in
// thread_enter_user, which "returns" from an exception frame built to enter EL0.

import AArch64

/// Callee-saved registers, frame pointer, link register and stack pointer (context.S layout).
struct SwitchContext {
    var registers = InlineArray<13, UInt64>(repeating: 0)
}

/// What a sender's direct delivery into a thread waiting in `receive` reported.
enum DeliveryOutcome {
    case delivered
    case failed(KernelError)
}

enum ThreadState: Equatable {
    case ready
    case running
    case blocked
    case dead
}

final class Thread {
    let id: UInt64
    /// Nil for the idle thread, which runs only in the kernel.
    let process: Process?
    let context: UnsafeMutablePointer<SwitchContext>
    /// 528 bytes, 16-byte aligned: q0-q31, FPCR, FPSR.
    let floatingPoint: UnsafeMutableRawPointer
    let stack: KernelStacks.Stack?
    var state = ThreadState.ready
    /// TTBR0_EL1 for this thread (its process's tables and ASID); 0 once the process's address
    /// space is gone, or for the idle thread.
    var translationBase: UInt64
    var priority: Int
    var sliceRemaining = 0
    /// Run-queue link.
    var next: Thread?
    /// Set by a deadline while sleeping.
    var sleepExpired = false
    /// Inside a system call: its kernel stack holds frames that must unwind before it can go.
    var inSystemCall = false
    /// Its process ended while it was inside a system call: it wakes, unwinds, and ends on the
    /// way out of the exception instead of returning to user space.
    var killed = false
    /// Reused for every call this thread makes (see IPC.call).
    var replyCapability: ReplyCapability?
    /// Where the payload of a reply to this thread's call waits between the server's memory and
    /// this thread's.
    let messageBuffer = UnsafeMutableRawPointer.allocate(byteCount: IPCMessageLayout.maximumPayload, alignment: 16)
    /// The header of a message this thread sends or delivers, between user memory and the
    /// kernel's message (`IPCMessageLayout` up to the payload).
    let messageHeader = UnsafeMutablePointer<UInt64>.allocate(capacity: IPCMessageLayout.headerWords)
    /// While blocked in `receive`: the user address a sender may deliver a message straight
    /// into (`.none` when not receiving). Its result is then `receiveResult`.
    var receiveAddress = UserAddress.none
    var receiveResult: DeliveryOutcome?
    /// While waiting in `call`: the user address the reply is written to (`.none` when not calling).
    var callAddress = UserAddress.none
    /// This thread's places in ports' waiter lists: the first for `receive`, one per handle for
    /// `waitAny`. Off every list before the thread is released.
    let waitLinks: UnsafeMutablePointer<WaitLink<Thread>>

    /// As many as `waitAny` takes handles.
    static let waitLinkCount = 8
    /// The link a plain `receive` waits with.
    var receiveLink: UnsafeMutablePointer<WaitLink<Thread>> { waitLinks }

    static let floatingPointBytes = 528

    init(id: UInt64, process: Process?, stack: KernelStacks.Stack?, priority: Int) {
        self.id = id
        self.process = process
        self.stack = stack
        self.priority = priority
        translationBase = process?.addressSpace?.translationBase ?? 0
        context = UnsafeMutablePointer<SwitchContext>.allocate(capacity: 1)
        context.initialize(to: SwitchContext())
        floatingPoint = UnsafeMutableRawPointer.allocate(byteCount: Self.floatingPointBytes, alignment: 16)
        for offset in stride(from: 0, to: Self.floatingPointBytes, by: 8) {
            floatingPoint.storeBytes(of: UInt64(0), toByteOffset: offset, as: UInt64.self)
        }
        waitLinks = UnsafeMutablePointer<WaitLink<Thread>>.allocate(capacity: Self.waitLinkCount)
        for index in 0..<Self.waitLinkCount { (waitLinks + index).initialize(to: WaitLink(waiter: self)) }
    }

    /// Builds, at the top of the kernel stack, the exception frame that enters EL0 at `entry`
    /// with SP_EL0 = `userStack`, x0 = `argument` and x1 = `handle`, and points the context at it.
    func prepareUserEntry(entry: UInt64, userStack: UInt64, argument: UInt64, handle: UInt64) {
        guard let stack else { return }
        let frameAddress = stack.top - UInt64(ExceptionFrame.size)
        let frame = UnsafeMutablePointer<UInt64>(bitPattern: UInt(frameAddress))!
        for index in 0..<(ExceptionFrame.size / 8) { frame[index] = 0 }
        frame[0] = argument
        frame[1] = handle
        frame[31] = userStack      // SP_EL0
        frame[32] = entry          // ELR_EL1
        frame[33] = 0              // SPSR: EL0t, interrupts unmasked
        context.pointee.registers[11] = aarch64_address_of_thread_enter_user() // x30
        context.pointee.registers[12] = frameAddress                          // sp
    }

    /// Blocked in a plain `receive`, so a sender may write a message straight into its buffer.
    var isAwaitingDirectMessage: Bool { state == .blocked && receiveAddress != .none && !killed }

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
        if let stack { KernelStacks.free(stack) }
        context.deallocate()
        floatingPoint.deallocate()
        messageBuffer.deallocate()
        messageHeader.deallocate()
        for index in 0..<Self.waitLinkCount { WaitLink.unlink(waitLinks + index) }
        waitLinks.deinitialize(count: Self.waitLinkCount)
        waitLinks.deallocate()
        replyCapability = nil
        next = nil
    }
}
