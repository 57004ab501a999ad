// SwiftKernel's boot sequence, entered from boot.S on the primary CPU at EL1 with the MMU off.
// It runs in two halves: kernelMain at the physical load address discovers the machine, starts
// the frame allocator and builds the kernel's page tables; kernelMainHigh continues in the linear
// map with the MMU on, starts the heap and runs the rest. The self-tests and benchmarks the
// command line asks for live in kernel/selftests; the boot log's descriptions of the machine in
// BootReport.swift.
//
// Design principles (docs/ARCHITECTURE.md explains each):
//  1. Minimal kernel: IPC, memory, scheduling and interrupts; everything else is a user process.
//  2. Discover, never assume: every device and memory range comes from the device tree.
//  3. Bad input is an error, never a crash: device trees, ELF files and user pointers are checked.
//  4. Portable logic lives in kernel/core and is tested on the host; the arch layer stays thin.
//  5. Simple, measured mechanisms: clear algorithms first, with their cost counted by `make bench`.
//  6. Built for several cores: shared state sits behind a lock or in per-CPU storage.

import AArch64

let kernelVersion: StaticString = "0.1.0"
/// The loader's device tree may sit anywhere; more than this is not a device tree we trust.
let maximumDeviceTreeSize = 2 << 20

/// DAIF as kernel_main found it; the boot self-test checks every interrupt was masked. Written
/// once at boot.
nonisolated(unsafe) var interruptMaskAtEntry: UInt64 = 0

@_cdecl("kernel_main")
func kernelMain(_ deviceTreeAddress: UInt, _ entryLevel: UInt, _ loadAddress: UInt) -> Never {
    interruptMaskAtEntry = CPU.interruptMask
    PerCPU.clearCurrent()
    Exceptions.install()

    // Until the device tree names a console there is nowhere to report a problem, so a missing
    // or corrupt tree, or one without a PL011 where it says, stops the CPU quietly in a low-power
    // wait (a debugger shows why: see docs/ARCHITECTURE.md). Once there is a console, every later
    // problem with the tree is reported before the machine stops.
    guard let tree = openDeviceTree(at: deviceTreeAddress),
          let consoleRegisters = Platform.consoleRegisters(in: tree) else { CPU.halt() }
    let console = PL011(registers: consoleRegisters.start)
    guard console.identifies else { CPU.halt() }
    Console.device = console
    console.start()
    PSCI.conduit = Platform.findPSCIConduit(in: tree)
    Panic.powerOffOnPanic = BootArguments(UEFIBoot.bootArguments(in: tree)).contains("test")

    log("SwiftKernel v\(kernelVersion) - ARM64 Microkernel")
    log("Boot: CPU primary core active (\(CPU.identity), MPIDR \(hex: CPU.affinity.multiprocessorID), entered at EL\(entryLevel))")
    log("Boot: Device tree parsed successfully (version \(tree.version), \(tree.totalSize) bytes at \(hex: deviceTreeAddress))")
    UEFIBoot.report()
    let image = PhysicalRange(start: KernelImage.physicalStart, size: KernelImage.size)
    let treeRange = PhysicalRange(start: PhysicalAddress(UInt64(deviceTreeAddress)), size: UInt64(tree.totalSize))
    let platform: Platform
    do throws(PlatformDefect) {
        platform = try UEFIBoot.amended(Platform.discover(in: tree))
        try platform.checkRequirements(in: tree, kernelImage: image, deviceTree: treeRange)
    } catch {
        stopBooting(error)
    }
    reportMemory(tree)
    log("Boot: Console PL011 at \(consoleRegisters.start)")

    log("Initializing memory management...")
    startFrameAllocator(tree: tree, platform: platform)
    let roots: KernelAddressSpace.Roots
    do {
        roots = try KernelAddressSpace.build(tree: tree, platform: platform)
    } catch {
        // The tables map what the tree describes: RAM and the device windows.
        stopBooting("cannot map the memory and devices it describes (\(error))")
    }
    KernelTableFrames.invalidateEarlyTables()
    dcache_invalidate_range(KernelImage.startOfData, KernelImage.end - KernelImage.startOfData)
    log("MMU: MAIR \(hex: MMU.memoryAttributes), TCR \(hex: MMU.translationControl(lowerHalfEnabled: false)), SCTLR \(hex: MMU.systemControl)")
    log("MMU: 4 KiB granule, 4 levels, 48-bit virtual and \(MMU.physicalAddressBits)-bit physical addresses, \(MMU.hasSixteenBitASIDs ? "16" : "8")-bit ASIDs")
    identityRoot = roots.identity
    MMU.enterLinearMap(kernelRoot: roots.kernel, identityRoot: roots.identity, deviceTree: deviceTreeAddress,
                       entryLevel: entryLevel, loadAddress: loadAddress)
}

/// The boot identity map, released once the kernel runs in the linear map. Written once at boot.
nonisolated(unsafe) var identityRoot = PhysicalAddress(0)

@_cdecl("kernel_main_high")
func kernelMainHigh(_ deviceTreeAddress: UInt, _ entryLevel: UInt, _ loadAddress: UInt) -> Never {
    Exceptions.install()
    GenericTimer.closeToUserSpace()
    MMU.disableLowerHalf()
    KernelAddressSpace.releaseIdentityMap(identityRoot)
    let deviceTreeVirtual = UInt(PhysicalWindow.virtualAddress(of: PhysicalAddress(UInt64(deviceTreeAddress))))
    guard let tree = openDeviceTree(at: deviceTreeVirtual), let platform = try? UEFIBoot.amended(Platform.discover(in: tree)) else {
        kernelPanic("device tree unreadable through the linear map")
    }
    PerCPU.start(cpuCount: platform.cpuCount)
    log("MMU: on; kernel runs in the linear map at \(hex: PhysicalWindow.linearMapBase) + physical (image at \(hex: KernelImage.start))")
    log("Memory: Kernel heap ready (slabs of 16 to 2048 bytes, page runs above; grows on demand)")

    let arguments = BootArguments(platform.bootArguments)
    let testMode = arguments.contains("test")
    if testMode { runMemorySelfTests() }
    reportMemoryUsage()
    log("Memory: Memory management system initialized")

    reportDevices(platform)
    startInterrupts(platform, arguments: arguments)
    if testMode { runInterruptSelfTests() }
    if testMode, let late = arguments.number(of: "latecpu") { SecondaryCPUs.lateForTest = Int(min(late, 64)) }
    SecondaryCPUs.start(tree: tree, platform: platform)
    log("Boot: Kernel image at \(hex: KernelImage.start) - \(hex: KernelImage.end) (\(size: KernelImage.size)), loaded at \(hex: loadAddress)")
    log("Boot: Exception vector table at \(hex: Exceptions.vectorTableAddress)")
    if let text = platform.bootArguments, text.count > 0 { log("Boot: Command line: \(text)") }

    FaultInjection.start(arguments)
    let benchmarks = benchmarkSelection(arguments)
    let benchMode = benchmarks != nil
    if benchmarks == .operations { runBenchmarks() }
    if testMode {
        runBootSelfTests(tree: tree, platform: platform, entryLevel: entryLevel, loadAddress: loadAddress)
        runRequestedFault(arguments)
        RequestedPanic.start(arguments)
    }
    var startFlags: StartFlags = []
    if testMode { startFlags.formUnion(.testing(serviceKills: arguments.number(of: "soak") ?? 0)) }
    if let benchmarks { startFlags.formUnion(.benchmarking(benchmarks)) }
    if arguments.contains("fuzz") || arguments.value(of: "fuzz") != nil {
        startFlags.formUnion(.fuzzing(FuzzerRequest(flags: arguments.number(of: "fuzzflags") ?? 0,
                                                    calls: arguments.number(of: "fuzz") ?? 100_000,
                                                    seed: arguments.number(of: "seed") ?? 1)))
    }
    startUserSpace(platform, startFlags: startFlags, powerOffAfterInit: testMode || benchMode)
}

/// The benchmarks the command line asks for: `bench` (the kernel's, then user space's
/// operations), `bench=cores` or `bench=scaling` (user space's multi-core figures only).
func benchmarkSelection(_ arguments: BootArguments) -> BenchmarkSelection? {
    if arguments.contains("bench") { return .operations }
    guard let name = arguments.value(of: "bench") else { return nil }
    if name == DeviceTreeBytes("cores") { return .crossCore }
    if name == DeviceTreeBytes("scaling") { return .scaling }
    log("Boot: bench=\(name) is not a benchmark selection (cores, scaling); running bench")
    return .operations
}

/// Processes from here on: the boot thread becomes the idle thread and init is started from the
/// initial ramdisk. In test and bench modes the machine powers off when init ends.
func startUserSpace(_ platform: Platform, startFlags: StartFlags, powerOffAfterInit: Bool) -> Never {
    // FP/SIMD: user code uses it, the kernel is built without it. It starts trapped for EL0, and
    // each thread's registers move to it lazily on its first use (arch/aarch64/FloatingPoint.swift).
    LazyFloatingPoint.start()
    let privilegedAccessNever = CPU.enablePrivilegedAccessNever()
    // Bench mode only: user programs may read the cycle counter (PMUSERENR_EL0.EN, .CR).
    if startFlags.contains(.runBenchmarks) { CPU.allowUserCounters() }
    guard NoAddressSpace.start() else { kernelPanic("no memory for the empty user translation table") }
    Scheduler.start()
    // Threads run on every CPU that came online (docs/ARCHITECTURE.md, "Multiprocessing").
    if SecondaryCPUs.onlineMask != 1 { Scheduler.startMultiprocessing() }
    var ramdisk: UnsafeRawBufferPointer?
    if let range = platform.initialRamdisk {
        ramdisk = UnsafeRawBufferPointer(start: PhysicalWindow.pointer(to: range.start), count: Int(range.size))
    }
    Processes.start(ramdisk: ramdisk)
    Processes.powerOffWhenInitEnds = powerOffAfterInit
    Clock.deadlineHandler = { token in
        guard let thread = Processes.thread(withID: token) else { return }
        thread.sleepExpired = true
        Scheduler.wake(thread)
    }
    Processes.onInitExit = { reason, code in
        log("Boot: init ended (\(ExitReason(rawValue: reason) == .exited ? "exit" : "fault or kill") code \(code))")
        if Processes.powerOffWhenInitEnds { finishRun() }
        // Otherwise init ends with code 0 only when asked to shut down (its power control port).
        if ExitReason(rawValue: reason) == .exited && code == 0 {
            log("Boot: shutdown, powering off")
            powerOff()
        }
    }
    log("Boot: PAN \(privilegedAccessNever ? "enabled" : "not implemented by this CPU"); user memory is reached only through LDTR/STTR")
    guard let ramdisk else {
        log("Boot: No initial ramdisk; nothing to start")
        if powerOffAfterInit { finishRun() }
        Scheduler.idleLoop()
    }
    do throws(KernelError) {
        // Init's start handle is the authority over the devices user space may drive; every
        // driver's access derives from it.
        let deviceAccess = TransferredHandle(object: DeviceAccess.capability(for: platform),
                                             rights: DeviceAccess.capabilityRights)
        // Masked until the line is out: a tick in between would let init print first.
        try CPU.withInterruptsMasked { () throws(KernelError) in
            let heapBefore = Heap.statistics.counters
            let id = try Processes.spawn(name: UnsafeRawBufferPointer(start: ("init" as StaticString).utf8Start, count: 4),
                                         argument: startFlags.rawValue, parent: nil, memoryLimit: 0,
                                         start: .granted(deviceAccess), ramdisk: ramdiskObject(platform))
            let heapAfter = Heap.statistics.counters
            log("Boot: Started init (process \(id)) from the initial ramdisk (\(size: UInt64(ramdisk.count)))")
            if startFlags.contains(.runTests) {
                // What a process and its first thread really take, against their prices (KernelMemory).
                log("Boot: init's process and thread took \(heapAfter.bytesInUse - heapBefore.bytesInUse) heap bytes (price \(ObjectCost.process.bytes + ObjectCost.thread.bytes)) and \(heapAfter.pagesHeld - heapBefore.pagesHeld) new heap pages (bound \(ObjectCost.process.heapPages + ObjectCost.thread.heapPages))")
            }
        }
    } catch {
        log("Boot: Cannot start init from the initial ramdisk: \(error)")
        if powerOffAfterInit { finishRun() }
    }
    Scheduler.idleLoop()
}

/// The initial ramdisk as a read-only memory object, init's to load programs from (nil if it
/// does not start on a page, where a mapping would show what lies before it). It ends with the
/// programs' archive: the symbol tables after it are the kernel's, for fault reports, and
/// loaders need not map them.
func ramdiskObject(_ platform: Platform) -> TransferredHandle? {
    guard var range = platform.initialRamdisk, range.start.value & (pageSize - 1) == 0, range.size > 0 else {
        log("Boot: the initial ramdisk does not start on a page; init gets no ramdisk object")
        return nil
    }
    if let ramdisk = Processes.initialRamdisk {
        let programs = UInt64(SymbolTable.splitRamdisk(ramdisk).programs.count)
        if programs > 0 { range.size = min(range.size, (programs + pageSize - 1) & ~(pageSize - 1)) }
    }
    // Its programs' text is mapped straight from it (`processMap` of a range): made fetchable
    // here once, as a loader's written instructions are at each mapping. Nothing writes it later.
    CPU.cleanToPointOfUnification(PhysicalWindow.pointer(to: range.start), size: Int(range.size))
    CPU.invalidateInstructionCaches()
    return TransferredHandle(object: MemoryObject(ramdisk: range), rights: [.map, .duplicate, .transfer])
}

/// GIC from the device tree, the generic timer's tick, and interrupts unmasked.
func startInterrupts(_ platform: Platform, arguments: BootArguments) {
    log("Interrupts: Initializing ARM64 interrupt handling...")
    log("Interrupts: Exception vector table at \(hex: Exceptions.vectorTableAddress)")
    guard let description = platform.interruptController, Interrupts.start(description),
          let controller = Interrupts.controller else {
        log("Interrupts: no usable interrupt controller; running without interrupts")
        return
    }
    log("Interrupts: GICv\(controller.version) with \(Interrupts.lineCount) interrupt identifiers, distributor \(description.distributor.start)")
    let hz = arguments.number(of: "tick") ?? 100
    guard let timer = platform.timer, Clock.start(interrupt: timer.physicalInterrupt, hz: hz) else {
        log("Interrupts: generic timer unavailable (tick=\(hz); 1 to \(Clock.maximumHz) Hz); running without a tick")
        return
    }
    log("Interrupts: Generic timer at \(Clock.frequency) Hz, configured for \(hz)Hz on interrupt \(timer.physicalInterrupt)")
    CPU.enableInterrupts()
    log("Interrupts: ARM64 interrupt handling initialized")
}

/// The end of a test or bench run: its closing line, then power off.
func finishRun() -> Never {
    // Everything processes held is back by now but init's own process and thread, and what
    // processes still alive hold: a leak shows here.
    log("Memory: at the end: \(KernelMemory.root.objects) kernel objects, \(KernelMemory.root.used) bytes charged to processes, \(PhysicalFrames.promisedFrames) frames set aside for pages on demand")
    Processes.reportSurvivors()
    SecondaryCPUs.reportTicks()
    if FaultInjection.oneIn > 0 {
        log("Memory: fault injection: \(FaultInjection.injected) of \(FaultInjection.requests) requests for memory failed on purpose")
    }
    log(Panic.powerOffOnPanic ? "Boot: Test mode complete, powering off" : "bench: done")
    powerOff()
}

func powerOff() -> Never {
    Console.flush()
    PSCI.systemOff()
    log("Boot: PSCI SYSTEM_OFF unavailable; halting")
    CPU.halt()
}

/// The blob at `address`, if its header is sane and its size plausible.
func openDeviceTree(at address: UInt) -> DeviceTree? {
    // The boot protocol requires 8-byte alignment; anything else is not a device tree.
    guard address != 0, address & 7 == 0 else { return nil }
    let header = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: DeviceTree.headerSize)
    guard let size = try? DeviceTree.totalSize(ofHeaderAt: header), size <= maximumDeviceTreeSize else { return nil }
    let blob = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: address), count: size)
    return try? DeviceTree(blob: blob)
}

/// RAM from the device tree, minus the image, the device tree itself, the initial ramdisk and
/// every firmware reservation.
func startFrameAllocator(tree: DeviceTree, platform: Platform) {
    var map = MemoryMap()
    do throws(FrameAllocatorError) {
        var failure: FrameAllocatorError?
        try? tree.forEachMemoryRegion { region in
            do throws(FrameAllocatorError) { try map.addRAM(region) } catch { failure = error }
        }
        try? tree.forEachReservedRegion { region in
            do throws(FrameAllocatorError) { try map.reserve(region, for: .reserved) } catch { failure = error }
        }
        if let failure { throw failure }
        try UEFIBoot.reserveFirmwareMemory(in: &map)
        try map.reserve(PhysicalRange(start: KernelImage.physicalStart, size: KernelImage.size), for: .kernelImage)
        let treeStart = PhysicalAddress(UInt64(UInt(bitPattern: tree.blob.baseAddress!)) - PhysicalWindow.offset)
        try map.reserve(PhysicalRange(start: treeStart, size: UInt64(tree.totalSize)), for: .bootData)
        if let ramdisk = platform.initialRamdisk { try map.reserve(ramdisk, for: .bootData) }
        try PhysicalFrames.start(map: map)
    } catch {
        // Its input is the tree's memory and reservations, checked for form but not for sense.
        stopBooting("its memory map is unusable (\(error))")
    }
    let statistics = PhysicalFrames.statistics
    log("FrameAllocator: \(statistics.totalFrames) frames total, \(statistics.freeFrames) frames free")
    log("Memory: Physical frame allocator ready (\(statistics.freeFrames) free / \(statistics.totalFrames) total frames)")
}
