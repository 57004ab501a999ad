// What the kernel takes from the record the EFI entry leaves (EFIStub.swift) when UEFI firmware
// started it: the command line and initial ramdisk in place of /chosen's, and the firmware's
// memory map, by which only memory UEFI calls free becomes free frames.

import AArch64

enum UEFIBoot {
    /// Frames of RAM the firmware keeps (or does not mention), reserved at boot. Written once.
    nonisolated(unsafe) static var keptFrames: UInt64 = 0

    /// Where the record lies, when the EFI entry started the kernel.
    static var recordAddress: PhysicalAddress? {
        let address = aarch64_read_efi_handoff_address()
        return address == 0 ? nil : PhysicalAddress(address)
    }

    /// The record, through the current physical window; nil unless the EFI entry started the
    /// kernel (or the record is damaged, which `report` stops on).
    static var handoff: UEFIHandoff? {
        guard let address = recordAddress else { return nil }
        let pointer = PhysicalWindow.pointer(to: address)
        guard let size = UEFIHandoff.recordSize(ofHeaderAt: UnsafeRawBufferPointer(start: pointer, count: 16)) else { return nil }
        return UEFIHandoff(bytes: UnsafeRawBufferPointer(start: pointer, count: size))
    }

    /// The command line: the record's under UEFI, else /chosen's.
    static func bootArguments(in tree: DeviceTree) -> DeviceTreeBytes? {
        guard let handoff else { return Platform.bootArguments(in: tree) }
        return DeviceTreeBytes(handoff.commandLine)
    }

    /// Under UEFI, the command line and ramdisk come from the record; the tree has neither.
    static func amended(_ platform: Platform) -> Platform {
        guard let handoff else { return platform }
        var amended = platform
        amended.bootArguments = DeviceTreeBytes(handoff.commandLine)
        amended.initialRamdisk = handoff.initialRamdisk
        return amended
    }

    /// The boot log's line on how the kernel was started, under UEFI.
    static func report() {
        guard let address = recordAddress else { return }
        guard let handoff else { stopBooting("the UEFI boot record at \(address) is damaged") }
        let map = handoff.memoryMap
        log("Boot: started by UEFI firmware (\(DeviceTreeBytes(handoff.vendor))), memory map: \(map.count) entries, \(map.usableBytes >> 20) MiB usable")
    }

    /// Reserves in `map` every part of its RAM the UEFI memory map does not call usable, and the
    /// record itself (the self-test reads it later).
    static func reserveFirmwareMemory(in map: inout MemoryMap) throws(FrameAllocatorError) {
        guard let handoff, let address = recordAddress else { return }
        var kept: UInt64 = 0
        for index in 0..<map.regionCount {
            do throws(FrameAllocatorError) {
                try handoff.memoryMap.forEachUnusableRange(in: map.region(index)) { (range: PhysicalRange) throws(FrameAllocatorError) in
                    try map.reserve(range, for: .reserved)
                    kept += range.size / pageSize
                }
            } catch {
                // Bad input, not a kernel bug: say what, and stop as for a device tree the kernel cannot use.
                log("Boot: the UEFI memory map splits RAM into more pieces kept by the firmware than the \(MemoryMap.maximumReservations) reservations the frame allocator holds; stopping")
                Panic.stop()
            }
        }
        try map.reserve(PhysicalRange(start: address, size: handoff.size), for: .bootData)
        keptFrames = kept
        log("Memory: UEFI memory map: \(handoff.memoryMap.usableBytes / pageSize) frames usable, \(kept) frames of RAM kept by the firmware")
    }

    /// What the memory self-test finds of the firmware's memory in RAM.
    struct KeptMemory {
        /// Descriptors not usable that lie in RAM, and their frames.
        var descriptors = 0
        var frames: UInt64 = 0
        /// Those frames by type: runtime services (code and data), ACPI (reclaimable and NVS),
        /// reserved (type 0), and every other type.
        var runtimeServices: UInt64 = 0
        var acpi: UInt64 = 0
        var reserved: UInt64 = 0
        var other: UInt64 = 0
        /// Whether the allocator holds every one of them at boot's reservation (never free,
        /// never handed out).
        var allKept = true
    }

    /// For the memory self-test: the descriptors of the UEFI map that are not usable and lie in
    /// RAM, their frames by type, and whether the allocator holds every one of those frames at
    /// boot's reservation.
    static func firmwareFramesKept(_ handoff: UEFIHandoff) -> KeptMemory {
        let map = handoff.memoryMap
        var kept = KeptMemory()
        PhysicalFrames.lock.withLock {
            for index in 0..<map.count {
                let entry = map.descriptor(index)
                guard !entry.isUsable else { continue }
                var frames: UInt64 = 0
                var address = entry.range.start.value
                while address - entry.range.start.value < entry.range.size {
                    if let purpose = PhysicalFrames.allocator.purpose(of: PageFrame(containing: PhysicalAddress(address))) {
                        frames += 1
                        // The device tree may sit in memory the firmware keeps; then it is boot data.
                        if purpose != .reserved && purpose != .bootData { kept.allKept = false }
                    }
                    address += pageSize
                }
                guard frames > 0 else { continue }
                kept.descriptors += 1
                kept.frames += frames
                switch entry.type {
                case UEFIMemoryType.runtimeServicesCode, UEFIMemoryType.runtimeServicesData: kept.runtimeServices += frames
                case UEFIMemoryType.acpiReclaim, UEFIMemoryType.acpiNonVolatile: kept.acpi += frames
                case UEFIMemoryType.reserved: kept.reserved += frames
                default: kept.other += frames
                }
            }
        }
        return kept
    }
}
