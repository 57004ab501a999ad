// Memory-management self-tests, run in test mode once the MMU and heap are up. Each line is
// printed after the check it names, and says what was measured.

import AArch64

func runMemorySelfTests() {
    var run = SelfTestRun(prefix: "Memory Test")
    let heapBefore = Heap.statistics.counters

    // Heap: blocks of many sizes and alignments, each filled with its own pattern, all verified
    // after every allocation was made, then freed.
    var blocks = InlineArray<48, UInt>(repeating: 0)
    var sizes = InlineArray<48, Int>(repeating: 0)
    var heapOK = true
    for index in 0..<48 {
        let size = 1 + (index * 977) % 9000
        let alignment = 1 << (index % 13)
        var block: UnsafeMutableRawPointer?
        guard posixMemalign(&block, max(alignment, 8), size) == 0, let block else { heapOK = false; break }
        if UInt(bitPattern: block) % UInt(max(alignment, 8)) != 0 { heapOK = false }
        for offset in 0..<size { block.storeBytes(of: UInt8(truncatingIfNeeded: index &* 31 &+ offset), toByteOffset: offset, as: UInt8.self) }
        blocks[index] = UInt(bitPattern: block)
        sizes[index] = size
    }
    for index in 0..<48 where blocks[index] != 0 {
        let block = UnsafeMutableRawPointer(bitPattern: blocks[index])!
        for offset in 0..<sizes[index] where block.load(fromByteOffset: offset, as: UInt8.self) != UInt8(truncatingIfNeeded: index &* 31 &+ offset) {
            heapOK = false
            break
        }
        kernelFree(block)
    }
    // And through the Swift runtime: an array that grows by reallocation.
    var squares: [Int] = []
    for value in 0..<1000 { squares.append(value * value) }
    var sum = 0
    for square in squares { sum += square }
    squares = []
    let heapAfter = Heap.statistics.counters
    run.check(heapOK && sum == 332_833_500 && heapAfter.blocksInUse == heapBefore.blocksInUse,
              "Heap allocation working correctly (48 blocks of 1-8999 bytes, alignments to 4 KiB, patterns verified; Swift array of 1000 elements; all freed)")

    // Frames: single frames and 2 MiB-aligned runs, round trip, counts restored exactly. (The
    // heap keeps one slab per class, so the frame counts are taken after its test.)
    let framesBefore = PhysicalFrames.statistics
    var frameOK = true
    var singles = InlineArray<64, UInt64>(repeating: 0)
    for index in 0..<64 {
        guard let frame = try? PhysicalFrames.allocate(.general) else { frameOK = false; break }
        singles[index] = frame.number
        for other in 0..<index where singles[other] == frame.number { frameOK = false }
    }
    var runs = InlineArray<4, UInt64>(repeating: 0)
    for index in 0..<4 {
        guard let first = try? PhysicalFrames.allocate(count: 512, alignment: 512, .general) else { frameOK = false; break }
        if first.number % 512 != 0 { frameOK = false }
        runs[index] = first.number
    }
    for index in 0..<64 where singles[index] != 0 {
        if (try? PhysicalFrames.free(PageFrame(number: singles[index]))) == nil { frameOK = false }
    }
    for index in 0..<4 where runs[index] != 0 {
        if (try? PhysicalFrames.free(PageFrame(number: runs[index]))) == nil { frameOK = false }
    }
    var doubleFreeCaught = false
    do throws(FrameAllocatorError) {
        try PhysicalFrames.free(PageFrame(number: singles[0]))
    } catch {
        doubleFreeCaught = error == .doubleFree(PageFrame(number: singles[0]))
    }
    var reservedCaught = false
    do throws(FrameAllocatorError) {
        try PhysicalFrames.free(PageFrame(containing: KernelImage.physicalStart))
    } catch {
        reservedCaught = error == .notAllocated(PageFrame(containing: KernelImage.physicalStart))
    }
    run.check(frameOK && doubleFreeCaught && reservedCaught && PhysicalFrames.statistics == framesBefore,
              "Frame allocation working correctly (64 frames and 4 aligned 2 MiB runs allocated and freed; double free and kernel-image free rejected; counts restored)")

    // One frame at two virtual addresses: its linear-map address and a second mapping.
    let alias = VirtualAddress(0xFFFF_8000_0000_0000)
    var aliasOK = false
    if let frame = try? PhysicalFrames.allocate(.general) {
        let linear = PhysicalWindow.virtualAddress(of: frame.address)
        if (try? KernelAddressSpace.map(alias, to: frame.address, size: pageSize, permissions: .readWrite, type: .normal)) != nil {
            UnsafeMutablePointer<UInt64>(bitPattern: UInt(linear))!.pointee = 0x5357_4946_544B_524E
            let seen = UnsafeMutablePointer<UInt64>(bitPattern: UInt(alias.value))!.pointee
            UnsafeMutablePointer<UInt64>(bitPattern: UInt(alias.value))!.pointee = 42
            let back = UnsafeMutablePointer<UInt64>(bitPattern: UInt(linear))!.pointee
            aliasOK = seen == 0x5357_4946_544B_524E && back == 42
            aliasOK = (try? KernelAddressSpace.unmap(alias, size: pageSize)) != nil && aliasOK
        }
        try? PhysicalFrames.free(frame)
    }
    run.check(aliasOK && PhysicalFrames.statistics == framesBefore,
              "Page mapped at two virtual addresses shows the same data (\(hex: alias.value) and the linear map; tables freed on unmap)")

    // Faults: the alias is unmapped again, the boot stack's guard page never was, text is read-only.
    let unmapped = MemoryProbe.load(alias.value)
    run.check(unmapped.fault?.faultKind == .translation(level: 0) && MemoryProbe.lastFaultAddress == alias.value,
              "Access to an unmapped page raises a translation fault (\(unmapped.fault))")
    let guardFault = MemoryProbe.load(KernelImage.bootStackGuard)
    run.check(guardFault.fault?.faultKind == .translation(level: 3),
              "Boot stack guard page at \(hex: KernelImage.bootStackGuard) is unmapped (\(guardFault.fault))")
    let textWrite = MemoryProbe.store(KernelImage.start, 0)
    run.check(textWrite?.faultKind == .permission(level: 3) && textWrite?.isWrite == true,
              "Write to read-only kernel text raises a permission fault (\(textWrite))")

    // W^X across the image, from the page tables themselves.
    let text = KernelAddressSpace.translate(VirtualAddress(KernelImage.start))
    let rodata = KernelAddressSpace.translate(VirtualAddress(KernelImage.endOfText))
    let data = KernelAddressSpace.translate(VirtualAddress(KernelImage.startOfData))
    run.check(text?.permissions == .readExecute && rodata?.permissions == .readOnly && data?.permissions == .readWrite,
              "Kernel text is read-execute, read-only data read-only, data read-write and never executable")

    // Exhaustion is an error to the caller, not a panic.
    var huge: UnsafeMutableRawPointer?
    let hugeResult = posixMemalign(&huge, 16, 1 << 40)
    let tooMany = (try? PhysicalFrames.allocate(count: 1 << 30, alignment: 1, .general)) == nil
    run.check(hugeResult == 12 && huge == nil && tooMany && PhysicalFrames.statistics == framesBefore,
              "Exhaustion is reported: a 1 TiB heap request gets ENOMEM, 4 TiB of frames gets out-of-memory")

    checkObjectPrices(&run)
    checkMapAddressReuse(&run)
    // Under UEFI: none of what the firmware keeps (runtime services, ACPI, reserved) may be free
    // or allocated. (The boot tests check that edk2 and U-Boot keep some RAM, so that this checks
    // something.)
    if let handoff = UEFIBoot.handoff {
        let kept = UEFIBoot.firmwareFramesKept(handoff)
        run.check(kept.allKept && kept.frames <= UEFIBoot.keptFrames,
                  "UEFI memory the firmware keeps is never free or allocated (\(kept.frames) frames in \(kept.descriptors) descriptors: runtime services \(kept.runtimeServices), ACPI \(kept.acpi), reserved \(kept.reserved), other \(kept.other); all reserved)")
    }
    log("Memory Test: \(run.passed) passed, \(run.failed) failed")
}

/// The heap bytes and new heap pages making `make()`'s object took, measured while it lives.
func heapGrowth(_ make: () -> AnyObject) -> (bytes: UInt64, pages: UInt64) {
    let before = Heap.statistics.counters
    let object = make()
    let after = Heap.statistics.counters
    _ = object
    return (after.bytesInUse - before.bytesInUse, after.pagesHeld - before.pagesHeld)
}

/// KernelMemory admits an object by its price: what it really takes must never be more, in heap
/// bytes or in new heap pages (a page more than admitted could be the reserve's last).
func checkObjectPrices(_ run: inout SelfTestRun) {
    let account = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)
    let port = heapGrowth { Port() }
    let closedPort = heapGrowth {
        let port = Port()
        port.close()
        return port
    }
    let notification = heapGrowth { Notification() }
    let line = heapGrowth { InterruptLine(identifier: 0) }
    let logReader = heapGrowth { KernelLogReader(notification: Notification(), bits: 1) }
    let largest = heapGrowth {
        MemoryObject.allocate(pages: MemoryObject.maximumPages, charge: try! MemoryCharge(0, to: account))!
    }
    let within = { (measured: (bytes: UInt64, pages: UInt64), price: ObjectCost) in
        measured.bytes <= price.bytes && measured.pages <= price.heapPages
    }
    run.check(within(port, .port) && closedPort.bytes <= ObjectCost.closedPort.bytes && within(notification, .notification) && within(line, .interruptLine)
              && within(logReader, .kernelLogReader)
              && within(largest, .memoryObject(pages: MemoryObject.maximumPages)) && account.used == 0,
              "Object prices cover the heap: port \(port.bytes) of \(ObjectCost.port.bytes) bytes (closed \(closedPort.bytes) of \(ObjectCost.closedPort.bytes)), notification \(notification.bytes), interrupt line \(line.bytes), log reader \(logReader.bytes) of \(ObjectCost.kernelLogReader.bytes), 1 MiB memory object \(largest.bytes) of \(ObjectCost.memoryObject(pages: MemoryObject.maximumPages).bytes)")
}

/// `map`'s addresses in a fresh address space: forward while there is room; once the top is
/// reached, the lowest gap that fits a mapping and its guard page; nothing when none does.
func checkMapAddressReuse(_ run: inout SelfTestRun) {
    let account = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)
    let framesBefore = PhysicalFrames.statistics
    guard let space = AddressSpace.create(account: account) else {
        run.check(false, "map reuses freed addresses once it reaches the top (no address space)")
        return
    }
    let base = UserSpace.mapBase
    let top = AddressSpace.mapLimit
    func mapped(_ size: UInt64) -> UInt64 {
        guard let start = space.reserveMapAddress(size: size),
              (try? space.mapZeroed(at: start, size: size, permissions: .write)) != nil else { return 0 }
        return start
    }
    let first = mapped(pageSize)
    let second = mapped(pageSize)
    // Room for one more page and its guard at the top, then none.
    space.nextMapAddress = top - 2 * pageSize
    let last = mapped(pageSize)
    let unmapped = (try? space.unmapRegion(start: first, size: pageSize)) != nil
    let again = mapped(pageSize)            // the first's place
    let larger = mapped(2 * pageSize)       // above the second and its guard page
    let tooLarge = space.reserveMapAddress(size: top - base)
    space.destroy()
    let placed = first == base && second == base + 2 * pageSize && last == top - 2 * pageSize && unmapped
        && again == base && larger == base + 4 * pageSize && tooLarge == nil
    run.check(placed && account.used == 0 && PhysicalFrames.statistics == framesBefore,
              "map reuses freed addresses once it reaches the top: the lowest gap that fits a mapping and its guard page (\(hex: again) after an unmap, \(hex: larger) for two pages), none when no gap fits; all freed")
}

extension FormattedText.StringInterpolation {
    mutating func appendInterpolation(_ syndrome: ExceptionSyndrome?) {
        if let syndrome { syndrome.describe(into: &line) } else { line.write("no fault") }
    }
}
