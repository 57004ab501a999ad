// A user address space: TTBR0 translation tables tagged with an ASID, and the regions mapped
// into it (program segments, the stack, anonymous memory). Every page is a frame of purpose
// `.user` that the address space owns and frees when the region is unmapped or the space is
// destroyed, so a process's memory always returns to the allocator.

/// Address-space identifiers: 8-bit on every CPU here, 16-bit where available; 0 is never used.
enum ASIDs {
    /// One bit per ASID, set while an address space has it (ASID 0 is reserved). Under `lock`.
    nonisolated(unsafe) static var inUse = InlineArray<4, UInt64>(repeating: 1)
    /// `inUse`. A leaf in the lock order (LockOrder.asids).
    static let lock = SpinLock(.asids)

    static func allocate() -> UInt16? {
        lock.withLock {
            for word in 0..<4 where inUse[word] != .max {
                let bit = (~inUse[word]).trailingZeroBitCount
                inUse[word] |= 1 << UInt64(bit)
                return UInt16(word * 64 + bit)
            }
            return nil
        }
    }

    static func free(_ asid: UInt16) {
        lock.withLock { inUse[Int(asid) / 64] &= ~(1 << UInt64(asid % 64)) }
    }
}

/// TTBR0 when no user address space is live: a table with no valid entry, tagged ASID 0.
enum NoAddressSpace {
    /// Written once at boot by `start`, before any other core runs.
    nonisolated(unsafe) static var root = PhysicalAddress(0)

    static func start() -> Bool {
        var frames = KernelTableFrames()
        guard let table = try? PageTable(half: .lower, memory: LinearMap(), frames: &frames) else { return false }
        root = table.root
        MMU.enableLowerHalf(emptyRoot: root)
        return true
    }

    static var base: TranslationBase { TranslationBase(value: root.value) }

    static func activate() { base.activate() }
}

final class AddressSpace {
    struct Region {
        var start: UInt64
        var size: UInt64
        /// Set for a mapping of a memory object: its frames belong to the object, not the region.
        var shared: MemoryObject?
    }

    static let maximumRegions = 64

    var table: PageTable<LinearMap>
    let asid: UInt16
    let regions: UnsafeMutablePointer<Region>
    var regionCount = 0
    var nextMapAddress = UserSpace.mapBase
    private(set) var mappedBytes: UInt64 = 0

    private init(table: PageTable<LinearMap>, asid: UInt16) {
        self.table = table
        self.asid = asid
        regions = UnsafeMutablePointer<Region>.allocate(capacity: Self.maximumRegions)
        regions.initialize(repeating: Region(start: 0, size: 0, shared: nil), count: Self.maximumRegions)
    }

    static func create() -> AddressSpace? {
        guard let asid = ASIDs.allocate() else { return nil }
        var frames = KernelTableFrames()
        guard let table = try? PageTable(half: .lower, memory: LinearMap(), frames: &frames) else {
            ASIDs.free(asid)
            return nil
        }
        return AddressSpace(table: table, asid: asid)
    }

    /// What TTBR0_EL1 holds while this space is live.
    var translationBase: TranslationBase { TranslationBase(root: table.root, asid: asid) }

    private var maintenance: UserTranslationMaintenance { UserTranslationMaintenance(asid: asid) }

    /// Maps `[start, start + size)` (page-aligned) to fresh zeroed frames. All or nothing.
    func mapZeroed(at start: UInt64, size: UInt64, permissions: MappingPermissions) throws(KernelError) {
        guard size > 0, start & (pageSize - 1) == 0, size & (pageSize - 1) == 0,
              UserMemory.isUserRange(UserAddress(start), size) else { throw .invalidArgument }
        guard regionCount < Self.maximumRegions else { throw .outOfMemory }
        for index in 0..<regionCount {
            let region = regions[index]
            if start < region.start + region.size && region.start < start + size { throw .invalidArgument }
        }
        var frames = KernelTableFrames()
        var offset: UInt64 = 0
        while offset < size {
            guard let frame = try? PhysicalFrames.allocate(.user) else {
                releasePages(start, offset)
                throw .outOfMemory
            }
            let page = PhysicalWindow.pointer(to: frame.address)
            for word in 0..<Int(pageSize / 8) { page.storeBytes(of: UInt64(0), toByteOffset: word * 8, as: UInt64.self) }
            do throws(PageTableError) {
                try table.map(VirtualAddress(start + offset), to: frame.address, size: pageSize,
                              permissions: permissions.union(.user), type: .normal, global: false,
                              frames: &frames, maintenance: maintenance)
            } catch {
                try? PhysicalFrames.free(frame)
                releasePages(start, offset)
                throw error == .writableAndExecutable ? .invalidArgument : .outOfMemory
            }
            offset += pageSize
        }
        regions[regionCount] = Region(start: start, size: size, shared: nil)
        regionCount += 1
        mappedBytes += size
    }

    /// Maps every page of `object` at a fresh address; the object's frames stay its own.
    func mapShared(_ object: MemoryObject, permissions: MappingPermissions) throws(KernelError) -> UserAddress {
        guard regionCount < Self.maximumRegions else { throw .outOfMemory }
        let size = UInt64(object.pageCount) * pageSize
        guard let start = reserveMapAddress(size: size) else { throw .outOfMemory }
        var frames = KernelTableFrames()
        for page in 0..<object.pageCount {
            do throws(PageTableError) {
                try table.map(VirtualAddress(start + UInt64(page) * pageSize), to: PhysicalAddress(object.frames[page]),
                              size: pageSize, permissions: permissions.union(.user),
                              type: object.isDevice ? .device : .normal, global: false,
                              frames: &frames, maintenance: maintenance)
            } catch {
                releasePages(start, UInt64(page) * pageSize, freeingFrames: false)
                throw error == .writableAndExecutable ? .invalidArgument : .outOfMemory
            }
        }
        regions[regionCount] = Region(start: start, size: size, shared: object)
        regionCount += 1
        mappedBytes += size
        return UserAddress(start)
    }

    /// Copies `bytes` into the (mapped) page range starting at `address`, through the frames'
    /// linear-map addresses: the kernel writes a program image before it may be writable to it.
    func fill(at address: UInt64, from bytes: UnsafeRawBufferPointer) {
        var done = 0
        while done < bytes.count {
            let target = address + UInt64(done)
            guard let translation = table.translate(VirtualAddress(target)) else { return }
            let inPage = min(Int(pageSize - (target & (pageSize - 1))), bytes.count - done)
            let destination = PhysicalWindow.pointer(to: translation.physical)
            destination.copyMemory(from: bytes.baseAddress! + done, byteCount: inPage)
            done += inPage
        }
    }

    /// Unmaps the region that starts at `start` with exactly `size` bytes and frees its frames.
    func unmapRegion(start: UInt64, size: UInt64) throws(KernelError) {
        for index in 0..<regionCount where regions[index].start == start && regions[index].size == size {
            releasePages(start, size, freeingFrames: regions[index].shared == nil)
            regionCount -= 1
            regions[index] = regions[regionCount]
            regions[regionCount] = Region(start: 0, size: 0, shared: nil)
            mappedBytes -= size
            return
        }
        throw .invalidArgument
    }

    /// A place for `size` bytes of anonymous memory, above everything `map` handed out before.
    func reserveMapAddress(size: UInt64) -> UInt64? {
        let start = nextMapAddress
        let (end, overflow) = start.addingReportingOverflow(size + pageSize) // one unmapped page between
        guard !overflow, end <= UserSpace.stackTop - UserSpace.stackSize else { return nil }
        nextMapAddress = end
        return start
    }

    private func releasePages(_ start: UInt64, _ size: UInt64, freeingFrames: Bool = true) {
        var frames = KernelTableFrames()
        var offset: UInt64 = 0
        while offset < size {
            let address = VirtualAddress(start + offset)
            if let translation = table.translate(address) {
                try? table.unmap(address, size: pageSize, frames: &frames, maintenance: maintenance)
                if freeingFrames { try? PhysicalFrames.free(PageFrame(containing: translation.physical)) }
            }
            offset += pageSize
        }
    }

    /// Frees every page, every table and the ASID. The space must not be live in TTBR0.
    func destroy() {
        while regionCount > 0 {
            let region = regions[regionCount - 1]
            try? unmapRegion(start: region.start, size: region.size)
        }
        var frames = KernelTableFrames()
        table.freeTables(frames: &frames, includingRoot: true)
        maintenance.invalidateAll()
        ASIDs.free(asid)
        regions.deinitialize(count: Self.maximumRegions)
        regions.deallocate()
    }
}
