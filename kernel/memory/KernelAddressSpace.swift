// The kernel's address space (TTBR1): a linear map of all RAM at PhysicalWindow.linearMapBase + P,
// with the kernel image inside it mapped section by section (text read-execute, read-only data
// read-only, data and BSS read-write and never executable, an unmapped guard page below the boot
// stack), and the MMIO of the devices the kernel drives or stops (virtio) as Device-nGnRE. TTBR0 belongs to user
// address spaces; during boot it briefly holds an identity map of the kernel text.

enum KernelAddressSpace {
    /// Built at boot before the MMU is on; from then on touched only under `lock`.
    nonisolated(unsafe) static var table: PageTable<LinearMap>?
    /// `table`. In the lock order after Processes.lock and before Heap.lock
    /// (LockOrder.kernelAddressSpace): new translation tables take PhysicalFrames.lock.
    static let lock = SpinLock(.kernelAddressSpace)

    struct Roots {
        var kernel: PhysicalAddress
        var identity: PhysicalAddress
    }

    /// Builds both hierarchies while the MMU is still off.
    static func build(tree: DeviceTree, platform: Platform) throws(PageTableError) -> Roots {
        var frames = KernelTableFrames()
        let maintenance = KernelTranslationMaintenance()
        var kernel = try PageTable(half: .upper, memory: LinearMap(), frames: &frames)

        let imageStart = KernelImage.start
        let imageEnd = KernelImage.end
        func mapLinear(_ start: UInt64, _ end: UInt64, _ permissions: MappingPermissions, _ type: MemoryType) throws(PageTableError) {
            guard end > start else { return }
            try kernel.map(VirtualAddress(PhysicalWindow.linearMapBase + start), to: PhysicalAddress(start),
                           size: end - start, permissions: permissions, type: type,
                           frames: &frames, maintenance: maintenance)
        }

        var failure: PageTableError?
        do {
            try tree.forEachMemoryRegion { region in
                guard failure == nil, let start = alignUp(region.start.value, to: pageSize) else { return }
                let end = alignDown(region.start.value &+ region.size, to: pageSize)
                do throws(PageTableError) {
                    if start <= imageStart && imageEnd <= end {
                        try mapLinear(start, imageStart, .readWrite, .normal)
                        try mapLinear(imageEnd, end, .readWrite, .normal)
                    } else {
                        try mapLinear(start, end, .readWrite, .normal)
                    }
                } catch {
                    failure = error
                }
            }
        } catch {
            throw .addressOutOfRange(VirtualAddress(0))
        }
        if let failure { throw failure }

        // The image, section by section (W^X); the guard page stays unmapped.
        let guardPage = KernelImage.bootStackGuard
        try mapLinear(imageStart, KernelImage.endOfText, .readExecute, .normal)
        try mapLinear(KernelImage.endOfText, KernelImage.startOfData, .readOnly, .normal)
        try mapLinear(KernelImage.startOfData, guardPage, .readWrite, .normal)
        try mapLinear(guardPage + pageSize, imageEnd, .readWrite, .normal)

        let windows = devices(platform)
        for index in windows.indices where windows[index].size > 0 {
            let device = windows[index]
            let start = alignDown(device.start.value, to: pageSize)
            guard let end = alignUp(device.start.value &+ device.size, to: pageSize) else { continue }
            try mapLinear(start, end, .readWrite, .device)
        }
        // The virtio-mmio transports, which user-space drivers run: the kernel writes to one only
        // to stop the device before memory it was given is freed (DeviceAccess.quiesce). They
        // come in address order, often several to a page (and a broken tree may overlap them);
        // each page is mapped once.
        var mappedUpTo: UInt64 = 0
        for index in 0..<platform.virtioTransports.count {
            let registers = platform.virtioTransports[index].registers
            let start = max(alignDown(registers.start.value, to: pageSize), mappedUpTo)
            guard let end = alignUp(registers.start.value &+ registers.size, to: pageSize), end > start else { continue }
            try mapLinear(start, end, .readWrite, .device)
            mappedUpTo = end
        }

        var identity = try PageTable(half: .lower, memory: LinearMap(), frames: &frames)
        try identity.map(VirtualAddress(imageStart), to: PhysicalAddress(imageStart),
                         size: KernelImage.endOfText - imageStart, permissions: .readExecute, type: .normal,
                         frames: &frames, maintenance: maintenance)
        table = kernel
        return Roots(kernel: kernel.root, identity: identity.root)
    }

    /// MMIO windows the kernel itself drives. Up to four; unused ones have size 0.
    static func devices(_ platform: Platform) -> InlineArray<4, PhysicalRange> {
        var ranges = InlineArray<4, PhysicalRange>(repeating: PhysicalRange(start: PhysicalAddress(0), size: 0))
        if let console = platform.console { ranges[0] = console.registers }
        if let gic = platform.interruptController {
            ranges[1] = gic.distributor
            ranges[2] = gic.cpuInterfaceOrRedistributor
        }
        return ranges
    }

    /// A fresh identity map of the kernel text, for secondary CPUs to turn their MMU on through;
    /// released with `releaseIdentityMap` once they run in the linear map. Nil without memory.
    static func buildIdentityMap() -> PhysicalAddress? {
        var frames = KernelTableFrames()
        let start = KernelImage.physicalStart.value
        let size = KernelImage.endOfText - KernelImage.start
        guard var identity = try? PageTable(half: .lower, memory: LinearMap(), frames: &frames) else { return nil }
        do throws(PageTableError) {
            try identity.map(VirtualAddress(start), to: PhysicalAddress(start), size: size, permissions: .readExecute,
                             type: .normal, frames: &frames, maintenance: KernelTranslationMaintenance())
        } catch {
            identity.freeTables(frames: &frames, includingRoot: true)
            return nil
        }
        return identity.root
    }

    /// After the switch: the boot identity map's tables go back to the allocator.
    static func releaseIdentityMap(_ root: PhysicalAddress) {
        var frames = KernelTableFrames()
        PageTable(root: root, half: .lower, memory: LinearMap()).freeTables(frames: &frames, includingRoot: true)
    }

    static func map(_ virtual: VirtualAddress, to physical: PhysicalAddress, size: UInt64,
                    permissions: MappingPermissions, type: MemoryType) throws(PageTableError) {
        try lock.withLock { () throws(PageTableError) in
            var frames = KernelTableFrames()
            guard table != nil else { throw .outOfMemory }
            try table!.map(virtual, to: physical, size: size, permissions: permissions, type: type,
                           frames: &frames, maintenance: KernelTranslationMaintenance())
        }
    }

    static func unmap(_ virtual: VirtualAddress, size: UInt64) throws(PageTableError) {
        try lock.withLock { () throws(PageTableError) in
            var frames = KernelTableFrames()
            guard table != nil else { throw .notMapped(virtual) }
            try table!.unmap(virtual, size: size, frames: &frames, maintenance: KernelTranslationMaintenance())
        }
    }

    static func translate(_ virtual: VirtualAddress) -> Translation? {
        lock.withLock { table?.translate(virtual) }
    }
}
