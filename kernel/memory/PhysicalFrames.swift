// The kernel's single frame allocator, behind a lock: every page of RAM the device tree describes,
// minus what the image, the loader's data and the firmware already use.

import AArch64

enum PhysicalFrames {
    /// Empty until early boot replaces it; only touched under `lock`. Not optional: testing an
    /// optional this large for nil would copy it on every call.
    nonisolated(unsafe) static var allocator = FrameAllocator(memory: LinearMap())
    /// `allocator`. In the lock order after Heap.lock (LockOrder.physicalFrames); nothing is
    /// taken under it but the console's.
    static let lock = SpinLock(.physicalFrames)

    /// Free frames set aside for pages of on-demand memory objects not yet touched
    /// (KernelMemory.promiseFrames): requests made for processes leave them alone, as they leave
    /// the reserve, so that taking one (`takePromised`) cannot fail. Under `lock`.
    nonisolated(unsafe) static var promised: UInt64 = 0

    static func start(map: MemoryMap) throws(FrameAllocatorError) {
        let created = try FrameAllocator(memory: LinearMap(), map: map)
        lock.withLock { allocator = created }
    }

    static func allocate(_ purpose: FramePurpose) throws(FrameAllocatorError) -> PageFrame {
        try lock.withLock { () throws(FrameAllocatorError) -> PageFrame in try allocator.allocate(purpose) }
    }

    /// A frame for `purpose`, but only while more than `reserve` frames are free: requests made for
    /// processes leave the reserve to the kernel (KernelMemory).
    static func allocate(_ purpose: FramePurpose, keepingFree reserve: UInt64) throws(FrameAllocatorError) -> PageFrame {
        try lock.withLock { () throws(FrameAllocatorError) -> PageFrame in
            guard allocator.statistics.freeFrames > reserve &+ promised else { throw .outOfMemory }
            return try allocator.allocate(purpose)
        }
    }

    /// Sets `count` free frames aside for later `takePromised` calls, if more than `reserve` stay
    /// free beside them and the frames already set aside; whether it did.
    static func promise(_ count: UInt64, keepingFree reserve: UInt64) -> Bool {
        lock.withLock {
            guard allocator.statistics.freeFrames >= reserve &+ promised &+ count else { return false }
            promised &+= count
            return true
        }
    }

    /// Gives back `count` frames set aside and never taken.
    static func withdrawPromise(_ count: UInt64) {
        lock.withLock {
            guard promised >= count else { kernelPanic("more frames withdrawn than were set aside") }
            promised &-= count
        }
    }

    /// One of the frames set aside, for `purpose`. Every frame set aside is free unless the
    /// kernel's own allocations went through the reserve and beyond it; nil then.
    static func takePromised(_ purpose: FramePurpose) -> PageFrame? {
        lock.withLock {
            guard promised > 0, let frame = try? allocator.allocate(purpose) else { return nil }
            promised &-= 1
            return frame
        }
    }

    static func allocate(count: Int, alignment: Int, _ purpose: FramePurpose) throws(FrameAllocatorError) -> PageFrame {
        try lock.withLock { () throws(FrameAllocatorError) -> PageFrame in
            try allocator.allocate(count: count, alignment: alignment, purpose)
        }
    }

    /// `count` contiguous frames, but only while more than `reserve` frames stay free after.
    static func allocate(count: Int, alignment: Int, _ purpose: FramePurpose,
                         keepingFree reserve: UInt64) throws(FrameAllocatorError) -> PageFrame {
        try lock.withLock { () throws(FrameAllocatorError) -> PageFrame in
            guard allocator.statistics.freeFrames >= reserve &+ promised &+ UInt64(count) else { throw .outOfMemory }
            return try allocator.allocate(count: count, alignment: alignment, purpose)
        }
    }

    static func free(_ frame: PageFrame) throws(FrameAllocatorError) {
        try lock.withLock { () throws(FrameAllocatorError) in try allocator.free(frame) }
    }

    static func allocation(containing frame: PageFrame) -> (first: PageFrame, count: Int, purpose: FramePurpose)? {
        lock.withLock { allocator.allocation(containing: frame) }
    }

    static var freeFrames: UInt64 {
        lock.withLock { allocator.statistics.freeFrames }
    }

    static var promisedFrames: UInt64 { lock.withLock { promised } }

    /// Free frames not set aside for pages on demand: what requests made for processes may take.
    static var unpromisedFrames: UInt64 { lock.withLock { unpromisedLocked } }

    /// `unpromisedFrames` and all frames, read together (`memoryStatistics`).
    static var unpromisedAndTotalFrames: (free: UInt64, total: UInt64) {
        lock.withLock { (unpromisedLocked, allocator.statistics.totalFrames) }
    }

    /// Under `lock`. None, not a wrapped count, should the kernel's own allocations have gone past
    /// the reserve into the frames set aside.
    private static var unpromisedLocked: UInt64 {
        allocator.statistics.freeFrames > promised ? allocator.statistics.freeFrames - promised : 0
    }

    static var statistics: FrameStatistics {
        lock.withLock { allocator.statistics }
    }
}

/// Translation tables for the kernel's own address spaces come from the frame allocator. Tables
/// written while the MMU is still off are remembered, so their cache lines can be invalidated
/// before the MMU (and with it the data cache) is turned on.
struct KernelTableFrames: TableFrameSource {
    // Written only at boot, while the MMU is off and no other core runs.
    nonisolated(unsafe) static var earlyTables = InlineArray<64, UInt64>(repeating: 0)
    nonisolated(unsafe) static var earlyTableCount = 0

    mutating func allocateTable() -> PhysicalAddress? {
        guard let frame = try? PhysicalFrames.allocate(.pageTables) else { return nil }
        if !PhysicalWindow.isLinearMapActive {
            guard Self.earlyTableCount < 64 else {
                try? PhysicalFrames.free(frame)
                return nil
            }
            Self.earlyTables[Self.earlyTableCount] = frame.address.value
            Self.earlyTableCount += 1
        }
        return frame.address
    }

    mutating func freeTable(_ table: PhysicalAddress) {
        do {
            try PhysicalFrames.free(PageFrame(containing: table))
        } catch {
            kernelPanic("page table frame \(table) could not be freed")
        }
    }

    /// DC IVAC over every table written with the caches off, and over the frame allocator's
    /// metadata (one run of frames from its zone table on), written with them off too: a loader
    /// that ran with caches on (UEFI firmware) may have left lines of that memory in the cache.
    static func invalidateEarlyTables() {
        for index in 0..<earlyTableCount { dcache_invalidate_range(earlyTables[index], pageSize) }
        let metadata = PhysicalFrames.lock.withLock {
            (PhysicalFrames.allocator.zoneTable, PhysicalFrames.allocator.statistics.frames(for: .allocatorMetadata))
        }
        dcache_invalidate_range(metadata.0, metadata.1 * pageSize)
    }
}
