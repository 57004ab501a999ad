// Spin locks and the order they are taken in. Shared state that more than one CPU can reach sits
// behind one of these; docs/ARCHITECTURE.md ("Per-CPU state and locks") says what each protects.

import Synchronization

/// Every spin lock of the kernel, in the one order a CPU may take them: while holding a lock, a
/// CPU takes only locks that come later here. The four leaves (`kernelStacks` to `deadlines`)
/// never nest with each other or with anything but the console. A DEBUG=1 build checks this on
/// every acquisition.
enum LockOrder: UInt32 {
    /// BigKernelLock: threads, processes and IPC objects once more than one CPU runs threads.
    /// First: a CPU takes it on entry from user space, before anything else. Unlike the others
    /// it stays held across a thread switch (BigKernelLock.swift).
    case bigKernel
    /// Processes.lock: the process table and the process and thread IDs. A process is made and
    /// freed under it, which takes the heap's lock.
    case processTable
    /// KernelAddressSpace.lock: the kernel's translation tables; new tables take frames.
    case kernelAddressSpace
    /// DeviceAccess.lock: which interrupt lines are bound to which notifications. Binding and
    /// unbinding register handlers (the interrupt table's lock) and may grow or shrink the list
    /// (the heap's).
    case deviceBindings
    /// Heap.lock: the kernel heap; slabs and page runs take and give back frames.
    case heap
    /// PhysicalFrames.lock: the frame allocator.
    case physicalFrames
    /// KernelStacks.lock: which kernel stack slots are in use. A leaf.
    case kernelStacks
    /// ASIDs.lock: which address-space identifiers are in use. A leaf.
    case asids
    /// Interrupts.lock: the interrupt handlers and enabling lines at the controller. A leaf.
    case interruptTable
    /// Clock.lock: the deadline queue and this CPU's timer compare value. A leaf.
    case deadlines
    /// Console.lock: the console. Last, so that a panic can report under any other lock.
    case console
}

/// A test-and-test-and-set lock for short critical sections, held with IRQs masked: the kernel
/// takes interrupts while its boot and idle code runs, and an interrupt (or the switch it leads
/// to) must never find a lock held by the code it interrupted on the same CPU.
struct SpinLock: ~Copyable, @unchecked Sendable {
    private let held = Atomic<Bool>(false)
    #if KERNEL_DEBUG
    private let order: LockOrder
    #endif

    /// `order`: the lock's place in the lock order.
    init(_ order: LockOrder) {
        #if KERNEL_DEBUG
        self.order = order
        #endif
    }

    func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        let interruptMask = CPU.maskInterrupts()
        #if KERNEL_DEBUG
        order.willTake()
        #endif
        while true {
            if !held.load(ordering: .relaxed),
               held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
                break
            }
        }
        defer {
            held.store(false, ordering: .releasing)
            #if KERNEL_DEBUG
            order.released()
            #endif
            CPU.restoreInterruptMask(interruptMask)
        }
        return try body()
    }
}

#if KERNEL_DEBUG
/// The lock-order check: each CPU's block records the locks it holds.
extension LockOrder {
    var bit: UInt32 { 1 << rawValue }

    private static let leaves: UInt32 =
        kernelStacks.bit | asids.bit | interruptTable.bit | deadlines.bit

    var name: StaticString {
        switch self {
        case .bigKernel: return "BigKernelLock"
        case .processTable: return "Processes.lock"
        case .kernelAddressSpace: return "KernelAddressSpace.lock"
        case .heap: return "Heap.lock"
        case .deviceBindings: return "DeviceAccess.lock"
        case .physicalFrames: return "PhysicalFrames.lock"
        case .kernelStacks: return "KernelStacks.lock"
        case .asids: return "ASIDs.lock"
        case .interruptTable: return "Interrupts.lock"
        case .deadlines: return "Clock.lock"
        case .console: return "Console.lock"
        }
    }

    /// Panics if this CPU already holds this lock, a later one, or a leaf (unless this is the
    /// console's). Not checked before the CPU has its block, nor while a panic is reported.
    func willTake() {
        guard PerCPU.isStarted, !Panic.started.load(ordering: .relaxed) else { return }
        let held = PerCPU.current.locksHeld
        if held & bit != 0 {
            kernelPanic("\(name) taken twice on CPU \(PerCPU.current.index)")
        }
        if held >> rawValue != 0 || (held & Self.leaves != 0 && self != .console) {
            kernelPanic("\(name) taken out of order on CPU \(PerCPU.current.index) (locks held: \(hex: held, digits: 3))")
        }
        PerCPU.current.locksHeld = held | bit
    }

    func released() {
        guard PerCPU.isStarted else { return }
        PerCPU.current.locksHeld &= ~bit
    }
}
#endif
