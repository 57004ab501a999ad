// A user address space: TTBR0 translation tables tagged with an ASID, and the regions mapped
// into it (program segments, the stack, anonymous memory). Every page is a frame of purpose
// `.user` that the address space owns and frees when the region is unmapped or the space is
// destroyed, so a process's memory always returns to the allocator.

/// Address-space identifiers: 8-bit on every CPU here, 16-bit where available; 0 is never used.
enum ASIDs {
    /// One bit per ASID, set while an address space has it (ASID 0 is reserved). Under `lock`.
    nonisolated(unsafe) static var inUse: InlineArray<4, UInt64> = [1, 0, 0, 0]
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

    /// The address space holding each ASID in use, not counted (a space clears its entry as it
    /// is destroyed): for a fault inside a user-memory copy, whose space is the one TTBR0 holds,
    /// not always the running thread's. Written and read under the big kernel lock.
    nonisolated(unsafe) static var owners = InlineArray<256, UInt>(repeating: 0)

    /// The address space live in TTBR0 on this CPU, if one is.
    static var liveSpace: AddressSpace? {
        let owner = owners[Int(TranslationBase.live.asid) & 255]
        guard owner != 0, let pointer = UnsafeRawPointer(bitPattern: owner) else { return nil }
        return Unmanaged<AddressSpace>.fromOpaque(pointer).takeUnretainedValue()
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
        enum Kind {
            /// Program segments and the initial stack, placed by the kernel: `unmap` leaves them.
            case program
            /// Zeroed memory from `map`.
            case anonymous
            /// A mapping of a memory object: its frames belong to the object, not the region.
            case shared(MemoryObject)
            /// A memory object placed by the process's builder (`processMap`): part of the
            /// program, so `unmap` leaves it; its frames are the object's.
            case placed(MemoryObject)

            /// Whether the frames belong to a memory object rather than to the region.
            var isObject: Bool {
                switch self {
                case .shared, .placed: return true
                case .program, .anonymous: return false
                }
            }

            /// A mapping of an on-demand object, whose leaf tables are pinned while it lasts.
            var isOnDemand: Bool {
                switch self {
                case .shared(let object), .placed(let object): return object.onDemand
                case .program, .anonymous: return false
                }
            }
        }
        var start: UInt64
        var size: UInt64
        var kind: Kind
        var writable: Bool
        /// For a memory object's mapping, the object's page mapped at `start`: a placed region
        /// may map a range of the object's pages (a program segment out of the ramdisk).
        var firstPage: UInt32 = 0

        var end: UInt64 { start + size }
    }

    static let maximumRegions = 64

    var table: PageTable<LinearMap>
    let asid: UInt16
    /// Pays for the pages and translation tables: the process's account.
    let account: MemoryAccount
    /// The first `regionCount` are initialized, the rest raw memory: a space starts with none
    /// to initialize (and a spawn with no 64 records to write).
    let regions: UnsafeMutablePointer<Region>
    var regionCount = 0
    var nextMapAddress = UserSpace.mapBase
    private(set) var mappedBytes: UInt64 = 0

    private init(table: PageTable<LinearMap>, asid: UInt16, account: MemoryAccount) {
        self.table = table
        self.asid = asid
        self.account = account
        regions = UnsafeMutablePointer<Region>.allocate(capacity: Self.maximumRegions)
    }

    /// An empty address space whose tables and pages `account` pays for.
    static func create(account: MemoryAccount) -> AddressSpace? {
        guard let asid = ASIDs.allocate() else { return nil }
        var frames = UserTableFrames(account: account)
        guard let table = try? PageTable(half: .lower, memory: LinearMap(), frames: &frames) else {
            ASIDs.free(asid)
            return nil
        }
        let space = AddressSpace(table: table, asid: asid, account: account)
        ASIDs.owners[Int(asid)] = UInt(bitPattern: Unmanaged.passUnretained(space).toOpaque())
        return space
    }

    /// What TTBR0_EL1 holds while this space is live.
    var translationBase: TranslationBase { TranslationBase(root: table.root, asid: asid) }

    private var maintenance: UserTranslationMaintenance { UserTranslationMaintenance(asid: asid) }

    /// Maps `[start, start + size)` (page-aligned) to fresh zeroed frames. All or nothing.
    func mapZeroed(at start: UInt64, size: UInt64, permissions: MappingPermissions,
                   kind: Region.Kind = .anonymous) throws(KernelError) {
        try checkFree(start: start, size: size)
        // The pages are charged at once; each mapped one is given back when it is freed, the
        // others here if the mapping fails.
        try KernelMemory.chargeFrames(size / pageSize, to: account)
        var frames = UserTableFrames(account: account)
        var offset: UInt64 = 0
        while offset < size {
            guard let frame = try? KernelMemory.allocatePaidFrame(.user) else {
                account.release(size - offset)
                releasePages(start, offset)
                throw .outOfMemory
            }
            PhysicalWindow.zero(frame)
            do throws(PageTableError) {
                try table.map(VirtualAddress(start + offset), to: frame.address, size: pageSize,
                              permissions: permissions.union(.user), type: .normal, global: false,
                              frames: &frames, maintenance: maintenance)
            } catch {
                KernelMemory.freeFrame(frame, for: account)
                account.release(size - offset - pageSize)
                releasePages(start, offset)
                throw error == .writableAndExecutable ? .invalidArgument : .outOfMemory
            }
            offset += pageSize
            if Interrupts.isTimeToServe(afterPages: offset >> pageShift) { Interrupts.servePending() }
        }
        (regions + regionCount).initialize(to: Region(start: start, size: size, kind: kind, writable: permissions.contains(.write)))
        regionCount += 1
        mappedBytes += size
    }

    /// Whether a new region may take `[start, start + size)`: page-aligned, in user space, clear
    /// of every region, and a region is free.
    private func checkFree(start: UInt64, size: UInt64) throws(KernelError) {
        guard size > 0, start & (pageSize - 1) == 0, size & (pageSize - 1) == 0,
              UserMemory.isUserRange(UserAddress(start), size) else { throw .invalidArgument }
        guard regionCount < Self.maximumRegions else { throw .outOfMemory }
        for index in 0..<regionCount {
            let region = regions[index]
            if start < region.end && region.start < start + size { throw .invalidArgument }
        }
    }

    /// Maps every page of `object` at a fresh address; the object's frames stay its own.
    func mapShared(_ object: MemoryObject, permissions: MappingPermissions) throws(KernelError) -> UserAddress {
        guard regionCount < Self.maximumRegions else { throw .outOfMemory }
        let size = UInt64(object.pageCount) * pageSize
        guard let start = reserveMapAddress(size: size) else { throw .outOfMemory }
        try mapObject(object, pages: 0..<object.pageCount, at: start, permissions: permissions, kind: .shared(object))
        return UserAddress(start)
    }

    /// `processMap`: `pages` of `object` (a range of its page indices, checked by the caller) at
    /// `start`, chosen by the process's builder, as part of the program. Not inside the range
    /// `map` hands out, so the two never meet.
    func place(_ object: MemoryObject, pages: Range<Int>, at start: UInt64,
               permissions: MappingPermissions) throws(KernelError) {
        let size = UInt64(pages.count) * pageSize
        try checkFree(start: start, size: size)
        guard start + size <= UserSpace.mapBase || start >= UserSpace.stackTop - UserSpace.stackSize else {
            throw .invalidArgument
        }
        try mapObject(object, pages: pages, at: start, permissions: permissions, kind: .placed(object))
    }

    private func mapObject(_ object: MemoryObject, pages: Range<Int>, at start: UInt64, permissions: MappingPermissions,
                           kind: Region.Kind) throws(KernelError) {
        let size = UInt64(pages.count) * pageSize
        let first = pages.lowerBound
        var frames = UserTableFrames(account: account)
        do throws(PageTableError) {
            // All or nothing: a failure leaves none of the object's pages mapped.
            if object.onDemand {
                // Its tables now, pinned until the region goes (`removeRegion`), so that a page's
                // first touch needs none (`mapOnDemand`) and cannot fail; and the pages touched
                // already.
                try table.prepareTables(VirtualAddress(start), count: pages.count, frames: &frames, maintenance: maintenance)
                for page in pages where object.frames[page] != MemoryObject.absent {
                    do throws(PageTableError) {
                        try table.map(VirtualAddress(start + UInt64(page - first) * pageSize),
                                      to: PhysicalAddress(object.frames[page]),
                                      size: pageSize, permissions: permissions.union(.user), type: object.memoryType,
                                      global: false, allowBlocks: false, frames: &frames, maintenance: maintenance)
                    } catch {
                        _ = try? table.unmapPresent(VirtualAddress(start), size: size, frames: &frames, maintenance: maintenance) { _, _ in }
                        table.unpinTables(VirtualAddress(start), count: pages.count, frames: &frames, maintenance: maintenance)
                        throw error
                    }
                }
            } else if !pages.isEmpty {
                try table.mapPages(VirtualAddress(start), count: pages.count, frame: { PhysicalAddress(object.frames[first + $0]) },
                                   permissions: permissions.union(.user), type: object.memoryType, global: false,
                                   frames: &frames, maintenance: maintenance)
            }
        } catch {
            throw error == .writableAndExecutable ? .invalidArgument : .outOfMemory
        }
        (regions + regionCount).initialize(to: Region(start: start, size: size, kind: kind, writable: permissions.contains(.write),
                                                      firstPage: UInt32(first)))
        regionCount += 1
        mappedBytes += size
    }

    /// A translation fault at `address` in this space, on a page of an on-demand memory object
    /// mapped here: the page (taken and zeroed now if this is its first touch anywhere) is mapped
    /// as the region maps the object, and true says the access may be made again. False for any
    /// other address: the fault is the program's, or the copy's.
    func mapOnDemand(at address: UInt64) -> Bool {
        for index in 0..<regionCount where address >= regions[index].start && address < regions[index].end {
            let region = regions[index]
            let object: MemoryObject
            switch region.kind {
            case .shared(let mapped), .placed(let mapped): object = mapped
            case .program, .anonymous: return false
            }
            guard object.onDemand else { return false }
            let pageStart = address & ~(pageSize - 1)
            // Mapped since the fault was taken (by another CPU's fault on it): made again, it works.
            if table.translate(VirtualAddress(pageStart)) != nil { return true }
            guard let frame = object.page(Int(region.firstPage) + Int((pageStart - region.start) >> pageShift)) else {
                return false
            }
            var frames = UserTableFrames(account: account)
            do throws(PageTableError) {
                try table.map(VirtualAddress(pageStart), to: frame, size: pageSize,
                              permissions: (region.writable ? MappingPermissions.readWrite : .readOnly).union(.user),
                              type: .normal, global: false, allowBlocks: false, frames: &frames, maintenance: maintenance)
            } catch {
                return false
            }
            return true
        }
        return false
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

    /// `unmap`: removes the region that `map` or `memoryMap` returned at `start` with exactly
    /// `size` bytes (rounded up to pages), freeing its frames unless a memory object owns them.
    /// The program's own segments and initial stack are not the caller's to unmap.
    func unmapRegion(start: UInt64, size: UInt64) throws(KernelError) {
        guard let index = regionIndex(start: start, size: size) else { throw .invalidArgument }
        switch regions[index].kind {
        case .program, .placed: throw .invalidArgument
        case .anonymous, .shared: break
        }
        removeRegion(index)
    }

    private func regionIndex(start: UInt64, size: UInt64) -> Int? {
        for index in 0..<regionCount where regions[index].start == start && regions[index].size == size { return index }
        return nil
    }

    private func removeRegion(_ index: Int) {
        let region = regions[index]
        releasePages(region.start, region.size, freeingFrames: !region.kind.isObject)
        if region.kind.isOnDemand {
            var frames = UserTableFrames(account: account)
            table.unpinTables(VirtualAddress(region.start), count: Int(region.size / pageSize), frames: &frames,
                              maintenance: maintenance)
        }
        regionCount -= 1
        // The last record takes the removed one's place; its own slot is raw memory again.
        if index == regionCount {
            (regions + index).deinitialize(count: 1)
        } else {
            (regions + index).moveUpdate(from: regions + regionCount, count: 1)
        }
        mappedBytes -= region.size
    }

    /// Whether `[start, start + size)` lies inside one writable region (a thread's stack must).
    func isWritable(start: UInt64, size: UInt64) -> Bool {
        for index in 0..<regionCount where regions[index].writable {
            let region = regions[index]
            if start >= region.start && start < region.end && size <= region.end - start { return true }
        }
        return false
    }

    /// Makes instructions the kernel wrote into `[start, start + size)` fetchable.
    func synchronizeInstructions(start: UInt64, size: UInt64) {
        var page = alignDown(start, to: pageSize)
        while page < start + size {
            if let translation = table.translate(VirtualAddress(page)) {
                CPU.cleanToPointOfUnification(PhysicalWindow.pointer(to: translation.physical), size: Int(pageSize))
            }
            page += pageSize
        }
        CPU.invalidateInstructionCaches()
    }

    /// A place for `size` bytes of `map` or `memoryMap`, with an unmapped page after it: above
    /// everything handed out before while there is room (one addition), and once the top is
    /// reached the lowest gap between the regions that fits, so that a process that maps and
    /// unmaps for ever never runs out of addresses.
    /// (`size` is at most 1 GiB: the callers' bound.)
    func reserveMapAddress(size: UInt64) -> UInt64? {
        let span = size + pageSize
        let start = nextMapAddress
        let (end, overflow) = start.addingReportingOverflow(span)
        if !overflow && end <= Self.mapLimit {
            nextMapAddress = end
            return start
        }
        guard let start = lowestGap(span: span) else { return nil }
        // The cursor stays past it, so that the forward step never hands out a place it overlaps.
        nextMapAddress = max(nextMapAddress, start + span)
        return start
    }

    /// Where `map`'s addresses end: the initial stack's place.
    static var mapLimit: UInt64 { UserSpace.stackTop - UserSpace.stackSize }

    /// The lowest address from `UserSpace.mapBase` where `span` bytes end by `mapLimit` and meet
    /// no region or a region's guard page. First fit: every region in the way moves the candidate
    /// past it and its guard page, so each pass but the last moves it up, and a pass with no move
    /// ends. Out of line: rarely reached, and kept off `map`'s path.
    @inline(never)
    private func lowestGap(span: UInt64) -> UInt64? {
        let limit = Self.mapLimit
        var candidate = UserSpace.mapBase
        var moved = true
        while moved {
            guard candidate <= limit && span <= limit - candidate else { return nil }
            moved = false
            for index in 0..<regionCount {
                let region = regions[index]
                if region.start < candidate + span && region.end + pageSize > candidate {
                    candidate = region.end + pageSize
                    moved = true
                }
            }
        }
        return candidate
    }

    /// Unmaps what is mapped in `[start, start + size)`, visiting only the tables that exist, and
    /// frees the pages unless a memory object owns them. Regions are mapped page by page, so no
    /// block needs splitting and nothing here can fail.
    private func releasePages(_ start: UInt64, _ size: UInt64, freeingFrames: Bool = true) {
        guard size > 0 else { return }
        var frames = UserTableFrames(account: account)
        var freed: UInt64 = 0
        _ = try? table.unmapPresent(VirtualAddress(start), size: size, frames: &frames, maintenance: maintenance) {
            physical, _ in
            guard freeingFrames else { return }
            KernelMemory.freePaidFrame(PageFrame(containing: physical))
            freed += 1
            if Interrupts.isTimeToServe(afterPages: freed) { Interrupts.servePending() }
        }
        // Given back to the account in one step, as `mapZeroed` charged them.
        account.release(freed * pageSize)
    }

    /// Frees every page, every table and the ASID. The space must not be live in TTBR0 on any
    /// CPU, so no entry needs clearing first: the ASID's translations are dropped once, then the
    /// regions' own frames are freed as the tables are read, then the tables, and last the
    /// memory objects mapped are let go.
    func destroy() {
        maintenance.invalidateAll()
        var freed: UInt64 = 0
        for index in 0..<regionCount where !regions[index].kind.isObject {
            table.forEachPresent(VirtualAddress(regions[index].start), size: regions[index].size) { physical, _ in
                KernelMemory.freePaidFrame(PageFrame(containing: physical))
                freed += 1
                if Interrupts.isTimeToServe(afterPages: freed) { Interrupts.servePending() }
            }
        }
        // Given back to the account in one step, as `releasePages` does.
        account.release(freed * pageSize)
        var frames = UserTableFrames(account: account)
        table.freeTables(frames: &frames, includingRoot: true)
        ASIDs.owners[Int(asid)] = 0
        ASIDs.free(asid)
        regions.deinitialize(count: regionCount)
        regions.deallocate()
        regionCount = 0
        mappedBytes = 0
    }
}
