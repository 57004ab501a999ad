// Per-CPU state: what belongs to one CPU (its running thread and run queues, its tick, its
// interrupt and system call counts, the owner of its FP/SIMD registers) lives in that CPU's
// block, and code reaches its own CPU's block through one accessor, `PerCPU.current`, which reads
// TPIDR_EL1. docs/ARCHITECTURE.md ("Per-CPU state and locks") gives the rules.

import AArch64

/// One CPU's block. Each part is declared beside the code that owns it.
struct PerCPU {
    /// 0 for the boot CPU, then in the order the device tree lists the CPUs.
    let index: Int
    var scheduler = Scheduler.CPUState()
    var clock = Clock.CPUState()
    var interrupts = Interrupts.CPUState()
    var floatingPoint = LazyFloatingPoint.CPUState()
    var exceptions = Exceptions.CPUState()
    /// System calls taken on this CPU, but the IPC fast paths' legs (`systemCallsTaken`).
    var systemCalls: UInt64 = 0
    /// The IPC this CPU did (`IPCStatistics`), the fast paths' legs among it.
    var ipc = IPCStatistics.Counters()
    /// A secondary CPU's own stack (its idle thread's, in the linear map), for panic
    /// backtraces; empty for the boot CPU, whose boot stack lies in the kernel image.
    var ownStack: Range<UInt64> = 0..<0
    #if KERNEL_DEBUG
    /// The locks this CPU holds, one bit per `LockOrder` case, for the lock-order check.
    var locksHeld: UInt32 = 0
    #endif

    init(index: Int) { self.index = index }

    /// Every system call taken on this CPU: an IPC fast path's leg counts as one
    /// (`IPCStatistics.Counters`).
    var systemCallsTaken: UInt64 { systemCalls &+ ipc.fastLegs }

    /// Every thread switch made on this CPU, the fast paths' legs' among them.
    var switchesMade: UInt64 { scheduler.switches &+ ipc.fastLegs }

    static let maximumCPUs = 8

    /// Where the blocks are: one per CPU the device tree describes, up to `maximumCPUs`, each
    /// `stride` bytes from the next. Written once by `start`, before any other core runs.
    struct Storage {
        let base: UnsafeMutableRawPointer
        let count: Int
        let stride: Int
    }
    nonisolated(unsafe) static var storage: Storage?

    /// This CPU's block, in place: `PerCPU.current.scheduler.running`. TPIDR_EL1 holds its address,
    /// so reaching it costs one MRS, shared by the accesses of one function until a call or a
    /// store (see aarch64_per_cpu_block). Never keep its address: after a thread switch the code
    /// may run on another CPU.
    static var current: PerCPU {
        unsafeAddress { UnsafePointer(here) }
        unsafeMutableAddress { here }
    }

    /// This CPU's block, for a path that reads TPIDR_EL1 once and passes the block on (the IPC
    /// fast paths and their switch): valid until that code switches threads, which it does last.
    static var here: UnsafeMutablePointer<PerCPU> {
        @inline(__always) get { aarch64_per_cpu_block().assumingMemoryBound(to: PerCPU.self) }
    }

    /// TPIDR_EL1 is UNKNOWN at reset: it holds 0 until `start` installs a block (the heap must
    /// be up first), so that a use before then faults at address 0.
    static func clearCurrent() { aarch64_write_tpidr_el1(0) }

    /// Whether this CPU has its block yet (TPIDR_EL1 is cleared at entry until it does).
    static var isStarted: Bool { aarch64_read_tpidr_el1() != 0 }

    /// Allocates a block for each of `cpuCount` CPUs (at most `maximumCPUs`) and makes block 0
    /// the calling boot CPU's. Each block starts on a cache writeback granule and fills whole
    /// granules, so that no two CPUs ever write to the same cache line. The blocks live for
    /// good, in whole frames (page-aligned, so aligned to any granule) rather than on the heap.
    static func start(cpuCount: Int) {
        let granule = CPU.cacheWritebackGranule
        let stride = (MemoryLayout<PerCPU>.size + granule - 1) / granule * granule
        let count = min(max(cpuCount, 1), maximumCPUs)
        let frames = (stride * count + Int(pageSize) - 1) / Int(pageSize)
        guard let first = try? PhysicalFrames.allocate(count: frames, alignment: 1, .general) else {
            kernelPanic("no memory for the per-CPU blocks")
        }
        let base = PhysicalWindow.pointer(to: first.address)
        for index in 0..<count {
            (base + index * stride).bindMemory(to: PerCPU.self, capacity: 1).initialize(to: PerCPU(index: index))
        }
        storage = Storage(base: base, count: count, stride: stride)
        aarch64_write_tpidr_el1(UInt64(UInt(bitPattern: block(0))))
    }

    /// CPU `index`'s block, for the code that starts that CPU and the statistics that read every
    /// CPU's; code running on a CPU uses `current`.
    static func block(_ index: Int) -> UnsafeMutablePointer<PerCPU> {
        guard let storage, index < storage.count else { kernelPanic("no per-CPU block for CPU \(index)") }
        return (storage.base + index * storage.stride).assumingMemoryBound(to: PerCPU.self)
    }
}
