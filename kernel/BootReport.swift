// What the boot log says about the machine: the memory the device tree describes, the devices
// found, the memory in use once the heap is up, and a device tree the kernel cannot run on. Apart
// from main.swift so that the boot sequence reads on its own.

/// The tree named a console but the kernel cannot run on the rest of it: one line saying what is
/// wrong, then the machine stops as after a panic (bad input is not a kernel bug, so no
/// backtrace). Boot tests recognise the line by its "Boot: device tree: ...; stopping" form.
func stopBooting(_ defect: PlatformDefect) -> Never {
    stopBooting("\(defect)")
}

func stopBooting(_ reason: FormattedText) -> Never {
    var line = TextLine()
    line.write("Boot: device tree: ")
    reason.line.forEachByte { line.write(byte: $0) }
    line.write("; stopping")
    Console.write(line)
    Panic.stop()
}

func reportMemory(_ tree: DeviceTree) {
    do {
        try tree.forEachMemoryRegion { region in
            let end = region.end ?? PhysicalAddress(UInt64.max)
            log("Boot: Memory region: \(region.start) - \(end) (\(megabytes: region.size) MB)")
        }
        try tree.forEachReservedRegion { region in
            log("Boot: Reserved memory: \(region.start) (\(size: region.size))")
        }
    } catch {
        log("Boot: memory description in the device tree is malformed; ignoring it")
    }
}

func reportMemoryUsage() {
    let frames = PhysicalFrames.statistics
    var line = TextLine()
    line.write("Memory: ")
    line.writeDecimal(frames.usedFrames)
    line.write(" of ")
    line.writeDecimal(frames.totalFrames)
    line.write(" frames in use (")
    var first = true
    for purpose in FramePurpose.allCases where purpose != .free && frames.frames(for: purpose) > 0 {
        if !first { line.write(", ") }
        first = false
        line.write(purpose.name)
        line.write(" ")
        line.writeDecimal(frames.frames(for: purpose))
    }
    line.write(")")
    Console.write(line)
    let heap = Heap.statistics.counters
    log("Memory: heap \(heap.blocksInUse) blocks, \(size: heap.bytesInUse) in use, \(heap.pagesHeld) pages held")
}

func reportDevices(_ platform: Platform) {
    if let gic = platform.interruptController {
        switch gic.kind {
        case .gicV2:
            log("Boot: Interrupt controller GICv2, distributor \(gic.distributor.start), CPU interface \(gic.cpuInterfaceOrRedistributor.start)")
        case .gicV3:
            log("Boot: Interrupt controller GICv3, distributor \(gic.distributor.start), redistributors \(gic.cpuInterfaceOrRedistributor.start)")
        }
    } else {
        log("Boot: No interrupt controller in the device tree")
    }
    if let timer = platform.timer {
        log("Boot: Generic timer at \(GenericTimer.frequency) Hz, EL1 physical timer interrupt \(timer.physicalInterrupt)")
    }
    switch platform.psciConduit {
    case .hvc, .smc:
        if let version = PSCI.version {
            log("Boot: PSCI \(version.major).\(version.minor) via \(platform.psciConduit == .hvc ? "hvc" : "smc")")
        } else {
            log("Boot: PSCI present but not answering")
        }
    case nil:
        log("Boot: No PSCI in the device tree; power-off unavailable")
    }
    if platform.virtioMMIOCount > 0 { log("Boot: \(platform.virtioMMIOCount) virtio-mmio transports") }
    if let ramdisk = platform.initialRamdisk {
        log("Boot: Initial ramdisk at \(ramdisk.start) (\(size: ramdisk.size))")
    }
}
