// Boot self-tests, run when the command line contains "test". Each line states what was
// measured; a check mark is printed only after the check passed.

import AArch64

struct SelfTestRun {
    let prefix: StaticString
    private(set) var passed = 0
    private(set) var failed = 0

    init(prefix: StaticString) { self.prefix = prefix }

    mutating func check(_ condition: Bool, _ description: FormattedText) {
        var line = TextLine()
        line.write(prefix)
        line.write(condition ? ": \u{2713} " : ": \u{2717} FAILED: ")
        description.line.forEachByte { line.write(byte: $0) }
        Console.write(line)
        if condition { passed += 1 } else { failed += 1 }
    }
}

func runBootSelfTests(tree: DeviceTree, platform: Platform, entryLevel: UInt, loadAddress: UInt) {
    var run = SelfTestRun(prefix: "Boot Test")

    let probe = aarch64_read_relocation_probe()
    run.check(probe == KernelImage.start && KernelImage.physicalStart.value == UInt64(loadAddress),
              "Relocated for the linear map (pointer in .data reads \(hex: probe), image at \(hex: KernelImage.start), loaded at \(hex: loadAddress))")

    run.check(CPU.exceptionLevel == 1 && entryLevel >= 1,
              "Running at EL\(CPU.exceptionLevel) after entry at EL\(entryLevel)")

    run.check(interruptMaskAtEntry & 0x3C0 == 0x3C0,
              "Interrupts masked from entry until the interrupt controller is ready (DAIF \(hex: interruptMaskAtEntry, digits: 3) at kernel_main)")

    run.check(CPU.identity.partName != nil, "CPU identified as \(CPU.identity) (MIDR \(hex: CPU.identity.mainID, digits: 8))")

    let trapsBefore = Exceptions.selfTestTraps
    aarch64_brk_self_test()
    let trapsAfter = Exceptions.selfTestTraps
    run.check(aarch64_read_vbar() == Exceptions.vectorTableAddress && trapsAfter == trapsBefore + 1,
              "Exception vectors at \(hex: aarch64_read_vbar()): BRK trapped and resumed (\(trapsAfter - trapsBefore) trap)")

    var regions = 0
    var imageInRAM = false
    var treeInRAM = false
    let imageStart = KernelImage.physicalStart
    let imageLast = PhysicalAddress(imageStart.value + KernelImage.size - 1)
    let treeStart = PhysicalAddress(UInt64(UInt(bitPattern: tree.blob.baseAddress!)) - PhysicalWindow.offset)
    let treeLast = PhysicalAddress(treeStart.value + UInt64(tree.totalSize) - 1)
    try? tree.forEachMemoryRegion { region in
        regions += 1
        if region.contains(imageStart) && region.contains(imageLast) { imageInRAM = true }
        if region.contains(treeStart) && region.contains(treeLast) { treeInRAM = true }
    }
    run.check(regions > 0 && imageInRAM && treeInRAM,
              "Kernel image and device tree lie inside the \(regions) RAM region(s) the tree describes")

    var formatted = TextLine()
    formatted.writeHex(0x9000000)
    formatted.write(" ")
    formatted.writeDecimal(signed: -1024)
    formatted.write(" ")
    formatted.writeByteSize(3 << 30)
    run.check(formatted.equals("0x0000000009000000 -1024 3 GiB"),
              "Console formatting of hex, decimal and sizes")

    run.check(memoryCopiesAtEveryAlignment(),
              "memcpy and memmove at every alignment of source and destination (8 x 8 x 14 lengths) move exactly their bytes")
    run.check(exceptionFrameMatchesLayouts(),
              "Exception frame: \(ExceptionFrame.size) bytes, each ExceptionFrame accessor at its Layouts.h offset, the SVC class and call numbers vectors.S tests")
    run.check(switchContextMatchesLayouts(),
              "Switch context: SwitchContext is \(MemoryLayout<SwitchContext>.size) bytes, link register and SP at their Layouts.h offsets")
    run.check(messageHeaderMatchesLayouts(),
              "IPC message header: the Layouts.h offsets context.S uses match IPCMessageLayout")

    let cpus = min(max(platform.cpuCount, 1), PerCPU.maximumCPUs)
    run.check(perCPUBlocksMatch(cpuCount: cpus),
              "Per-CPU blocks: \(PerCPU.storage?.count ?? 0) for the \(platform.cpuCount) CPU(s) in the device tree, \(PerCPU.storage?.stride ?? 0) bytes apart; TPIDR_EL1 holds the boot CPU's")

    if let version = PSCI.version {
        run.check(version.major >= 1 || version.minor >= 2, "PSCI \(version.major).\(version.minor) answers through the device tree's conduit")
    } else {
        run.check(false, "PSCI answers through the device tree's conduit")
    }

    log("Boot Test: \(run.passed) passed, \(run.failed) failed")
}

/// support/CRuntime.swift's copies, which the kernel and every program use: for each alignment of
/// source and destination and lengths around the word size and the shifting copy's threshold,
/// the destination gets exactly the source's bytes and nothing around them changes.
func memoryCopiesAtEveryAlignment() -> Bool {
    let size = 192
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    defer {
        source.deallocate()
        target.deallocate()
    }
    for index in 0..<size { source.storeBytes(of: UInt8(truncatingIfNeeded: index &* 7 &+ 1), toByteOffset: index, as: UInt8.self) }
    let lengths = [0, 1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65, 100, 150]
    for from in 0..<8 {
        for to in 0..<8 {
            for length in lengths {
                for move in [false, true] {
                    target.initializeMemory(as: UInt8.self, repeating: 0xEE, count: size)
                    if move {
                        _ = memmove(target + 16 + to, source + 16 + from, length)
                    } else {
                        (target + 16 + to).copyMemory(from: source + 16 + from, byteCount: length)
                    }
                    for index in 0..<size {
                        let copied = index - 16 - to
                        let expected = copied >= 0 && copied < length
                            ? source.load(fromByteOffset: 16 + from + copied, as: UInt8.self) : 0xEE
                        if target.load(fromByteOffset: index, as: UInt8.self) != expected { return false }
                    }
                }
            }
        }
    }
    return true
}

/// Every ExceptionFrame accessor reads the word Layouts.h gives vectors.S: in a scratch frame whose
/// words hold their own byte offsets, each accessor must report its header offset.
func exceptionFrameMatchesLayouts() -> Bool {
    let wordCount = ExceptionFrame.size / MemoryLayout<UInt64>.size
    let scratch = UnsafeMutablePointer<UInt64>.allocate(capacity: wordCount)
    defer { scratch.deallocate() }
    for index in 0..<wordCount { scratch[index] = UInt64(index * MemoryLayout<UInt64>.size) }
    let frame = ExceptionFrame(base: scratch)
    let registersMatch = (0...30).allSatisfy { frame.register($0) == UInt64(Int(EXCEPTION_FRAME_REGISTERS) + 8 * $0) }
    // The registers are the frame's first words: a thread's `userRegisters` is its frame's base.
    return ExceptionFrame.size == Int(EXCEPTION_FRAME_SIZE) && EXCEPTION_FRAME_REGISTERS == 0 && registersMatch
        && frame.stackPointerEL0 == UInt64(EXCEPTION_FRAME_SP_EL0)
        && frame.exceptionLinkRegister == UInt64(EXCEPTION_FRAME_ELR)
        && frame.savedProgramStatus == UInt64(EXCEPTION_FRAME_SPSR)
        && frame.syndrome.value == UInt64(EXCEPTION_FRAME_ESR)
        && frame.faultAddress == UInt64(EXCEPTION_FRAME_FAR)
        && ExceptionSyndrome(UInt64(ESR_EXCEPTION_CLASS_SVC64) << UInt64(ESR_EXCEPTION_CLASS_SHIFT)).exceptionClass
            == .supervisorCall
        && UInt64(SYSTEM_CALLS_WAITING_IN_FRAME) == SystemCalls.frameWaitCalls
        && UInt64(SYSTEM_CALL_CALL_REGISTERS) == SystemCallNumber.callRegisters.rawValue
        && UInt64(ESR_SVC64_IMMEDIATE_ZERO)
            == UInt64(ESR_EXCEPTION_CLASS_SVC64) << UInt64(ESR_EXCEPTION_CLASS_SHIFT) | 1 << 25
        && SystemCallNumber.replyReceiveRegisters.rawValue == SystemCallNumber.callRegisters.rawValue + 1
}

/// SwitchContext's word count is a literal generic argument, so only this run-time check ties it
/// to SWITCH_CONTEXT_WORDS; the two slots Swift writes must land where switch_context loads them.
func switchContextMatchesLayouts() -> Bool {
    var context = SwitchContext()
    context.linkRegister = 0x3030
    context.stackPointer = 0x5050
    return MemoryLayout<SwitchContext>.size == Int(SWITCH_CONTEXT_SIZE)
        && withUnsafeBytes(of: context) { bytes in
            bytes.load(fromByteOffset: Int(SWITCH_CONTEXT_X30), as: UInt64.self) == 0x3030
                && bytes.load(fromByteOffset: Int(SWITCH_CONTEXT_SP), as: UInt64.self) == 0x5050
        }
}

/// One block per CPU, each on its own cache writeback granules and knowing its index, and
/// `PerCPU.current` on the boot CPU is block 0.
func perCPUBlocksMatch(cpuCount: Int) -> Bool {
    guard let storage = PerCPU.storage, storage.count == cpuCount else { return false }
    let granule = CPU.cacheWritebackGranule
    let blocksMatch = (0..<storage.count).allSatisfy { index in
        let block = PerCPU.block(index)
        return block.pointee.index == index && UInt(bitPattern: block) % UInt(granule) == 0
    }
    let current = withUnsafeMutablePointer(to: &PerCPU.current) { UInt(bitPattern: $0) }
    return blocksMatch && storage.stride % granule == 0 && storage.stride >= MemoryLayout<PerCPU>.size
        && aarch64_read_tpidr_el1() == UInt64(UInt(bitPattern: PerCPU.block(0))) && current == UInt(bitPattern: PerCPU.block(0))
}

/// read_message_header and write_message_header move the header at the offsets of Layouts.h;
/// the ABI's own description of the message is IPCMessageLayout.
func messageHeaderMatchesLayouts() -> Bool {
    IPCMessageLayout.label == Int(IPC_MESSAGE_LABEL)
        && IPCMessageLayout.length == Int(IPC_MESSAGE_LENGTH)
        && IPCMessageLayout.handleCount == Int(IPC_MESSAGE_HANDLE_COUNT)
        && IPCMessageLayout.sender == Int(IPC_MESSAGE_SENDER)
        && IPCMessageLayout.replyHandle == Int(IPC_MESSAGE_REPLY_HANDLE)
        && IPCMessageLayout.handles == Int(IPC_MESSAGE_HANDLES)
        && IPCMessageLayout.payload == Int(IPC_MESSAGE_PAYLOAD)
}

/// `panicafter=MS` in test mode: a kernel panic from the boot CPU's timer interrupt MS
/// milliseconds after the request, while user space runs on every core; the boot scenario that
/// checks that a panic stops the other CPUs wherever they are. With `panicon=N` (N > 0) the
/// panic comes instead from secondary CPU N's first timer interrupt after that time that finds
/// it idle: a panic on that CPU's own stack, whose backtrace a boot scenario checks.
enum RequestedPanic {
    // Written once at boot (`start`), before the other CPUs run; only read afterwards.
    /// The counter value at which to panic; 0: none requested.
    nonisolated(unsafe) static var deadline: UInt64 = 0
    nonisolated(unsafe) static var milliseconds: UInt64 = 0
    /// The CPU whose tick panics.
    nonisolated(unsafe) static var cpu = 0

    static func start(_ arguments: BootArguments) {
        guard let requested = arguments.number(of: "panicafter") else { return }
        milliseconds = min(requested, 1_000_000_000)  // about 11 days: no overflow in the ticks
        cpu = Int(min(arguments.number(of: "panicon") ?? 0, UInt64(PerCPU.maximumCPUs - 1)))
        deadline = max(Clock.now + Clock.ticks(milliseconds: milliseconds), 1)
    }

    /// From the boot CPU's timer interrupt; also for a `panicon` CPU that is not running
    /// threads, so that a requested panic always comes.
    @inline(__always)
    static func check(_ now: UInt64) {
        guard deadline != 0, now >= deadline, cpu == 0 || Scheduler.onlineCPUs & (1 << UInt64(cpu)) == 0 else { return }
        deadline = 0
        kernelPanic("requested by panicafter=\(milliseconds)")
    }

    /// From a secondary CPU's timer interrupt.
    @inline(__always)
    static func checkOnSecondary() {
        guard deadline != 0, cpu == PerCPU.current.index, Scheduler.isIdle, Clock.now >= deadline else { return }
        deadline = 0
        kernelPanic("requested by panicafter=\(milliseconds) panicon=\(cpu), on CPU \(cpu) while idle")
    }
}

/// `selftest=panic` and `selftest=trap` end the boot in a kernel panic, so that boot tests can
/// check the panic report itself. Never inlined, so that the report names this function. A
/// DEBUG=1 kernel also takes `selftest=lockorder` (the heap's lock while the frame allocator's is
/// held, against the lock order) and `selftest=locktwice` (the heap's lock twice): its lock
/// checks must stop both.
@inline(never)
func runRequestedFault(_ arguments: BootArguments) {
    guard let request = arguments.value(of: "selftest") else { return }
    if request == DeviceTreeBytes("panic") {
        kernelPanic("requested by selftest=panic")
    } else if request == DeviceTreeBytes("trap") {
        aarch64_undefined_instruction()
    }
    #if KERNEL_DEBUG
    if request == DeviceTreeBytes("lockorder") {
        PhysicalFrames.lock.withLock { Heap.lock.withLock {} }
        kernelPanic("selftest=lockorder: the lock order was not checked")
    } else if request == DeviceTreeBytes("locktwice") {
        Heap.lock.withLock { Heap.lock.withLock {} }
        kernelPanic("selftest=locktwice: a lock taken twice was not noticed")
    }
    #endif
}
