// Secondary CPUs: every CPU the device tree describes besides the boot CPU is started with PSCI
// CPU_ON and given its own stack, per-CPU block, exception vectors, GIC interface, timer tick,
// run queues and idle thread. Once the boot CPU starts user space, each prepares its own
// registers for user space and joins the scheduler (docs/ARCHITECTURE.md, "Multiprocessing").

import AArch64
import _Volatile

enum SecondaryCPUs {
    /// Each secondary CPU's stack (16 KiB), whole frames reached through the linear map.
    static let stackPages = 4
    /// How long the boot CPU waits for a started CPU to check in, measured with the counter.
    static let checkInMilliseconds: UInt64 = 100

    /// One CPU's start record (include/Layouts.h), in frames the boot CPU took for them.
    struct Record {
        let base: UnsafeMutableRawPointer

        private func register(_ offset: Int32) -> VolatileMappedRegister<UInt64> {
            VolatileMappedRegister<UInt64>(unsafeBitPattern: UInt(bitPattern: base + Int(offset)))
        }
        func read(_ offset: Int32) -> UInt64 { register(offset).load() }
        func write(_ offset: Int32, _ value: UInt64) { register(offset).store(value) }

        /// The ONLINE word's value once the boot CPU has given up on the CPU.
        static let abandoned = UInt64.max

        /// Claims the ONLINE word, 0 until then, for `value`: the CPU checking in (its MPIDR) or
        /// the boot CPU giving up on it (`abandoned`). Whichever comes first decides; false for
        /// the other. Both run with caches on when they do.
        func claimOnline(_ value: UInt64) -> Bool {
            aarch64_compare_and_swap_u64((base + Int(SECONDARY_START_ONLINE)).assumingMemoryBound(to: UInt64.self), 0, value)
        }

        /// Whether the CPU checked in (and was not given up on first).
        var isOnline: Bool {
            let value = read(SECONDARY_START_ONLINE)
            return value != 0 && value != Self.abandoned
        }
    }

    /// `latecpu=N` in test mode: CPU N waits twice the check-in time before it checks in, for
    /// the boot scenario of a CPU that comes too late. Written once, before any other CPU runs.
    nonisolated(unsafe) static var lateForTest = 0

    /// The start records, one per per-CPU block (index 0, the boot CPU's, unused), `stride` bytes
    /// apart so that no two CPUs write the same cache line. Written once by `start` on the boot
    /// CPU; afterwards each secondary CPU writes only its own record's ONLINE word.
    nonisolated(unsafe) static var records: UnsafeMutableRawPointer?
    nonisolated(unsafe) static var stride = 0
    nonisolated(unsafe) static var recordCount = 0

    static func record(_ index: Int) -> Record? {
        guard let records, index > 0, index < recordCount else { return nil }
        return Record(base: records + index * stride)
    }

    /// Starts every other CPU of the device tree, one at a time, and logs each one's outcome and
    /// the total. A CPU that PSCI refuses, or that does not check in within
    /// `checkInMilliseconds`, is reported and left out; the boot carries on without it.
    static func start(tree: DeviceTree, platform: Platform) {
        let described = platform.cpuCount
        guard let storage = PerCPU.storage, storage.count > 1 else {
            log("Boot: CPUs in device tree: \(described) (1 online)")
            return
        }
        guard PSCI.version != nil else {
            log("Boot: CPUs in device tree: \(described) (1 online: no PSCI to start the others)")
            return
        }
        guard let controller = Interrupts.controller, let gic = platform.interruptController, Clock.period > 0 else {
            log("Boot: CPUs in device tree: \(described) (1 online: no interrupts or tick for the others)")
            return
        }
        let kernelRoot = KernelAddressSpace.lock.withLock { KernelAddressSpace.table?.root }
        guard let kernelRoot, let identityRoot = KernelAddressSpace.buildIdentityMap() else {
            log("Boot: CPUs in device tree: \(described) (1 online: no memory to start the others)")
            return
        }
        stride = max(Int(SECONDARY_START_SIZE), CPU.cacheWritebackGranule)
        let frames = (stride * storage.count + Int(pageSize) - 1) / Int(pageSize)
        guard let first = try? PhysicalFrames.allocate(count: frames, alignment: 1, .general) else {
            KernelAddressSpace.releaseIdentityMap(identityRoot)
            log("Boot: CPUs in device tree: \(described) (1 online: no memory to start the others)")
            return
        }
        // The boot CPU's answers to the reschedule and stop interrupts, before any other CPU can
        // send them.
        PerCPU.current.interrupts.sgiAddress = controller.ownSGIAddress
        Interrupts.register(Scheduler.rescheduleInterrupt) { _ in }
        Interrupts.register(Panic.stopInterrupt) { _ in Panic.stopIfAnotherPanicked() }
        records = PhysicalWindow.pointer(to: first.address)
        recordCount = storage.count
        for offset in stride..<(stride * storage.count) where offset % 8 == 0 {
            records!.storeAligned(UInt64(0), toByteOffset: offset)
        }

        // The device tree's CPUs in its order, the boot CPU left out; indices follow that order.
        let bootAffinity = CPU.affinity.affinity
        var targets = InlineArray<8, UInt64>(repeating: 0)
        var targetCount = 0
        var beyondLimit = 0
        Platform.forEachCPU(in: tree) { target in
            guard target != bootAffinity else { return }
            if targetCount + 1 < storage.count {
                targets[targetCount] = target
                targetCount += 1
            } else {
                beyondLimit += 1
            }
        }

        var online = 1
        var abandoned = false
        for position in 0..<targetCount {
            let index = position + 1
            let target = targets[position]
            guard let record = record(index) else { break }
            var redistributor: UInt64 = 0
            if case .v3 = controller {
                guard let block = GICv3.findRedistributor(in: gic.cpuInterfaceOrRedistributor,
                                                           affinity: CPUAffinity(multiprocessorID: target)) else {
                    log("Boot: CPU \(index) did not come online (no GICv3 redistributor for MPIDR \(hex: target))")
                    continue
                }
                redistributor = block.base.value
            }
            guard let stack = try? PhysicalFrames.allocate(count: stackPages, alignment: 1, .kernelStack) else {
                log("Boot: CPU \(index) did not come online (no memory for its stack)")
                continue
            }
            let stackTop = PhysicalWindow.virtualAddress(of: stack.address) + UInt64(stackPages) * pageSize
            PerCPU.block(index).pointee.ownStack = PhysicalWindow.virtualAddress(of: stack.address)..<stackTop
            record.write(SECONDARY_START_TTBR0, identityRoot.value)
            record.write(SECONDARY_START_TTBR1, kernelRoot.value)
            record.write(SECONDARY_START_MAIR, MMU.memoryAttributes)
            record.write(SECONDARY_START_TCR, MMU.translationControl(lowerHalfEnabled: true))
            record.write(SECONDARY_START_SCTLR, MMU.systemControl)
            record.write(SECONDARY_START_STACK, stackTop)
            record.write(SECONDARY_START_PER_CPU, UInt64(UInt(bitPattern: PerCPU.block(index))))
            record.write(SECONDARY_START_OFFSET, PhysicalWindow.offset)
            record.write(SECONDARY_START_RECORD, UInt64(UInt(bitPattern: record.base)))
            record.write(SECONDARY_START_REDISTRIBUTOR, redistributor)
            record.write(SECONDARY_START_INDEX, UInt64(index))
            // The CPU reads the record with its caches off.
            CPU.cleanToPointOfCoherency(UnsafeRawPointer(record.base), size: Int(SECONDARY_START_SIZE))

            let entry = PhysicalAddress(aarch64_address_of_secondary_entry() - PhysicalWindow.offset)
            let context = PhysicalWindow.physicalAddress(of: record.base).value
            let status = PSCI.cpuOn(target: target, entry: entry, context: context) ?? -1
            guard status == 0 else {
                try? PhysicalFrames.free(stack)
                log("Boot: CPU \(index) did not come online (PSCI CPU_ON: \(PSCI.describe(status)))")
                continue
            }
            let deadline = GenericTimer.count + GenericTimer.frequency * checkInMilliseconds / 1000
            while record.read(SECONDARY_START_ONLINE) == 0 && GenericTimer.count < deadline {}
            // Given up on unless it checked in meanwhile; if it comes later, it finds the word
            // taken and turns itself off.
            _ = record.claimOnline(Record.abandoned)
            let reported = record.read(SECONDARY_START_ONLINE)
            guard reported != Record.abandoned else {
                // It may still be on its way: its stack and the identity map stay where they are.
                abandoned = true
                log("Boot: CPU \(index) did not come online (PSCI CPU_ON succeeded, no check-in within \(checkInMilliseconds) ms)")
                continue
            }
            online += 1
            log("Boot: CPU \(index) online (MPIDR \(hex: reported))")
        }
        if !abandoned { KernelAddressSpace.releaseIdentityMap(identityRoot) }
        if beyondLimit > 0 {
            log("Boot: CPUs in device tree: \(described) (\(online) online: at most \(PerCPU.maximumCPUs) are started)")
        } else {
            log("Boot: CPUs in device tree: \(described) (\(online) online)")
        }
    }

    /// Sends SGI `id` to every CPU that came online but this one (a panic's stop); returns them.
    static func interruptOthers(with id: UInt32) -> UInt64 {
        guard let controller = Interrupts.controller, PerCPU.storage != nil, PerCPU.isStarted else { return 0 }
        let others = onlineMask & ~(1 << UInt64(PerCPU.current.index))
        var remaining = others
        while remaining != 0 {
            let index = remaining.trailingZeroBitCount
            remaining &= remaining - 1
            controller.send(id, toCPUAddressedBy: PerCPU.block(index).pointee.interrupts.sgiAddress)
        }
        return others
    }

    /// The CPUs that came online, one bit per index, the boot CPU's included.
    static var onlineMask: UInt64 {
        var mask: UInt64 = 1
        for index in 1..<max(recordCount, 1) {
            if let record = record(index), record.isOnline { mask |= 1 << UInt64(index) }
        }
        return mask
    }

    /// What each secondary CPU has done, for the end of a test run: its timer ticks, and the
    /// ticks its idle thread ran. A CPU that came online moments ago is given up to
    /// `checkInMilliseconds` for its first tick.
    static func reportTicks() {
        let deadline = GenericTimer.count + GenericTimer.frequency * checkInMilliseconds / 1000
        let online = onlineMask & ~1
        for index in 0..<PerCPU.maximumCPUs where online & (1 << UInt64(index)) != 0 {
            while ticks(of: index) == 0 && GenericTimer.count < deadline {}
        }
        var line = TextLine()
        line.write("Boot: secondary CPUs' timer ticks:")
        for index in 0..<PerCPU.maximumCPUs where online & (1 << UInt64(index)) != 0 {
            line.write(index == online.trailingZeroBitCount ? " CPU " : ", CPU ")
            line.writeDecimal(UInt64(index))
            line.write(" ")
            line.writeDecimal(ticks(of: index))
        }
        if online != 0 { Console.write(line) }
    }

    /// CPU `index`'s tick count, which that CPU writes: one aligned word, read whole (the
    /// barrier makes each call read it again).
    private static func ticks(of index: Int) -> UInt64 {
        aarch64_dsb_ish()
        return PerCPU.block(index).pointee.clock.ticks
    }

    /// A secondary CPU from secondary_entry: MMU on, in the linear map, on its own stack, with
    /// TPIDR_EL1 at its per-CPU block and IRQs masked. Starts its vectors (the table that takes
    /// the big kernel lock), GIC interface, run queues, idle thread and tick, checks in with its
    /// MPIDR, and idles until the boot CPU starts user space; then it readies its own registers
    /// for user space and joins the scheduler.
    static func run(_ record: Record) -> Never {
        Exceptions.install(multiprocessor: true)
        GenericTimer.closeToUserSpace()
        MMU.disableLowerHalf()
        guard let controller = Interrupts.controller else { CPU.halt() }
        let driver = controller.forCPU(redistributor: PhysicalAddress(record.read(SECONDARY_START_REDISTRIBUTOR)))
        driver.startThisCPU()
        for id in [Clock.interrupt, Scheduler.rescheduleInterrupt, Panic.stopInterrupt] {
            driver.setPriority(id, defaultInterruptPriority)
            driver.setEnabled(id, true)
        }
        PerCPU.current.interrupts.sgiAddress = driver.ownSGIAddress
        Scheduler.start()
        Clock.startSecondaryTick()
        aarch64_dsb_ish()
        let index = Int(record.read(SECONDARY_START_INDEX))
        if index == lateForTest {
            let late = GenericTimer.count + 2 * GenericTimer.frequency * checkInMilliseconds / 1000
            while GenericTimer.count < late {}
        }
        guard record.claimOnline(aarch64_read_mpidr()) else {
            // The boot CPU gave up waiting and reported this CPU as not online: it stays out,
            // and what it set up for itself (its idle thread, a few pages) stays unused.
            CPU.maskAllExceptions()
            aarch64_write_timer_control(0)
            log("Boot: CPU \(index) came online after the boot CPU gave up on it; turning it off (PSCI CPU_OFF)")
            PSCI.cpuOff()
            CPU.halt()
        }
        while !Scheduler.multiprocessor {
            CPU.enableInterrupts()
            CPU.waitForInterrupt()
            CPU.disableInterrupts()
        }
        // The user-space registers the boot CPU set for itself in startUserSpace.
        MMU.enableLowerHalf(emptyRoot: NoAddressSpace.root)
        LazyFloatingPoint.start() // the trap armed, as the multiprocessor switches expect
        _ = CPU.enablePrivilegedAccessNever()
        if CPU.userCountersAllowed { CPU.allowUserCounters() }
        BigKernelLock.acquire()
        Scheduler.join()
        BigKernelLock.release()
        Scheduler.idleLoop()
    }
}

@_cdecl("kernel_secondary_main")
func kernelSecondaryMain(_ record: UnsafeMutableRawPointer) -> Never {
    SecondaryCPUs.run(SecondaryCPUs.Record(base: record))
}
