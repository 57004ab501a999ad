// VMSAv8-64 stage 1 translation tables, 4 KiB granule, four levels, 48-bit virtual addresses
// (Arm ARM D8 "The AArch64 Virtual Memory System Architecture"). Map, unmap, change protection
// and translate, using 1 GiB and 2 MiB blocks where alignment allows, splitting blocks when a
// change covers part of one, and freeing tables that become empty. Portable: tables are reached
// through `PhysicalMemory`, come from a `TableFrameSource`, and TLB maintenance is delegated to a
// `TranslationMaintenance`, so host tests run all of it against simulated RAM.
//
// Each table descriptor keeps, in bits [11:2] (ignored by the walker), how many valid entries
// its child table holds; so unmap knows in O(1) when a table has emptied.
//
// `unmapPresent` clears a range however large by walking only the tables that exist: an absent
// table skips its whole span (512 GiB, 1 GiB or 2 MiB), so its cost follows what is mapped, not
// the size of the range.

/// Memory types; the raw value is the MAIR_EL1 attribute index the arch layer programs.
public enum MemoryType: UInt8, Equatable, Sendable {
    /// Device-nGnRnE: no gathering, reordering or early acknowledgement.
    case deviceStrict = 0
    /// Device-nGnRE: the usual choice for MMIO.
    case device = 1
    case normalNonCacheable = 2
    /// Normal, inner and outer write-back, read/write-allocate.
    case normal = 3
}

public enum PageTableError: Error, Equatable {
    case misaligned
    /// The address is not in the half of the address space this table translates.
    case addressOutOfRange(VirtualAddress)
    case alreadyMapped(VirtualAddress)
    case notMapped(VirtualAddress)
    /// Writable and executable at once is never allowed (W^X).
    case writableAndExecutable
    case outOfMemory
}

/// Where translation tables come from and go back to.
public protocol TableFrameSource {
    mutating func allocateTable() -> PhysicalAddress?
    mutating func freeTable(_ table: PhysicalAddress)
}

/// The architecture's ordering and TLB operations.
public protocol TranslationMaintenance {
    /// Makes table writes visible to the table walker (DSB ISHST).
    func publishTableWrites()
    /// Invalidates every cached translation, including walk-cache entries, for `address`
    /// (TLBI VAE1IS / VAE1IS with ASID), and waits for completion (DSB ISH).
    func invalidate(_ address: VirtualAddress)
    /// Invalidates every cached translation this table hierarchy can have supplied (TLBI
    /// ASIDE1IS for one user address space, VMALLE1IS for the kernel's), and waits for it.
    func invalidateAll()
}

/// A leaf translation, as `translate` reports it.
public struct Translation: Equatable {
    public var physical: PhysicalAddress
    public var permissions: MappingPermissions
    public var memoryType: MemoryType
    /// 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    public var level: Int
    public var isGlobal: Bool
}

/// Descriptor fields (Arm ARM D8.3) and the child count kept in ignored table-descriptor bits.
enum DescriptorBits {
    static let valid: UInt64 = 1 << 0
    static let tableOrPage: UInt64 = 1 << 1
    static let attributeIndexShift: UInt64 = 2
    static let userAccessible: UInt64 = 1 << 6 // AP[1]
    static let readOnly: UInt64 = 1 << 7 // AP[2]
    static let innerShareable: UInt64 = 0b11 << 8
    static let accessFlag: UInt64 = 1 << 10
    static let notGlobal: UInt64 = 1 << 11
    static let privilegedExecuteNever: UInt64 = 1 << 53
    static let userExecuteNever: UInt64 = 1 << 54
    static let outputAddress: UInt64 = 0x0000_FFFF_FFFF_F000
    static let childCountShift: UInt64 = 2
    static let childCountMask: UInt64 = 0x3FF << 2
}

/// A translation table hierarchy rooted at one level-0 table.
public struct PageTable<Memory: PhysicalMemory> {
    public enum Half: Sendable {
        /// TTBR0: addresses with bits [63:48] clear (user space).
        case lower
        /// TTBR1: addresses with bits [63:48] set (the kernel).
        case upper
    }

    public let root: PhysicalAddress
    public let half: Half
    let memory: Memory

    static var entriesPerTable: Int { 512 }
    static var levelShift: (UInt64, UInt64, UInt64, UInt64) { (39, 30, 21, 12) }

    /// Takes a fresh, zeroed root table from `frames`.
    public init<Frames: TableFrameSource>(half: Half, memory: Memory, frames: inout Frames) throws(PageTableError) {
        guard let root = frames.allocateTable() else { throw .outOfMemory }
        self.init(root: root, half: half, memory: memory)
        zeroTable(root)
    }

    /// Wraps an existing hierarchy.
    public init(root: PhysicalAddress, half: Half, memory: Memory) {
        self.root = root
        self.half = half
        self.memory = memory
    }

    // MARK: Descriptor encoding (Arm ARM D8.3)


    static func leafDescriptor(_ physical: PhysicalAddress, level: Int, permissions: MappingPermissions,
                               type: MemoryType, global: Bool) -> UInt64 {
        var descriptor = physical.value & DescriptorBits.outputAddress | DescriptorBits.valid | DescriptorBits.accessFlag
        if level == 3 { descriptor |= DescriptorBits.tableOrPage }
        descriptor |= UInt64(type.rawValue) << DescriptorBits.attributeIndexShift
        if type == .normal || type == .normalNonCacheable { descriptor |= DescriptorBits.innerShareable }
        if !permissions.contains(.write) { descriptor |= DescriptorBits.readOnly }
        if permissions.contains(.user) {
            descriptor |= DescriptorBits.userAccessible | DescriptorBits.privilegedExecuteNever
            if !permissions.contains(.execute) { descriptor |= DescriptorBits.userExecuteNever }
        } else {
            descriptor |= DescriptorBits.userExecuteNever
            if !permissions.contains(.execute) { descriptor |= DescriptorBits.privilegedExecuteNever }
        }
        if !global { descriptor |= DescriptorBits.notGlobal }
        return descriptor
    }

    static func decode(_ descriptor: UInt64, level: Int, address: VirtualAddress) -> Translation {
        let blockSize = UInt64(1) << shift(level)
        var permissions: MappingPermissions = []
        if descriptor & DescriptorBits.readOnly == 0 { permissions.insert(.write) }
        if descriptor & DescriptorBits.userAccessible != 0 {
            permissions.insert(.user)
            if descriptor & DescriptorBits.userExecuteNever == 0 { permissions.insert(.execute) }
        } else if descriptor & DescriptorBits.privilegedExecuteNever == 0 {
            permissions.insert(.execute)
        }
        let type = MemoryType(rawValue: UInt8((descriptor >> DescriptorBits.attributeIndexShift) & 0x7)) ?? .deviceStrict
        let base = descriptor & DescriptorBits.outputAddress & ~(blockSize - 1)
        return Translation(physical: PhysicalAddress(base | (address.value & (blockSize - 1))),
                           permissions: permissions, memoryType: type, level: level,
                           isGlobal: descriptor & DescriptorBits.notGlobal == 0)
    }

    static func shift(_ level: Int) -> UInt64 {
        switch level {
        case 0: return levelShift.0
        case 1: return levelShift.1
        case 2: return levelShift.2
        default: return levelShift.3
        }
    }

    static func index(of address: VirtualAddress, level: Int) -> Int {
        Int((address.value >> shift(level)) & 511)
    }

    static func isTable(_ descriptor: UInt64, level: Int) -> Bool {
        level < 3 && descriptor & (DescriptorBits.valid | DescriptorBits.tableOrPage) == DescriptorBits.valid | DescriptorBits.tableOrPage
    }

    static func isValid(_ descriptor: UInt64) -> Bool { descriptor & DescriptorBits.valid != 0 }

    // MARK: Table memory

    func entryAddress(table: PhysicalAddress, index: Int) -> PhysicalAddress {
        PhysicalAddress(table.value + UInt64(index) * 8)
    }

    func load(_ entry: PhysicalAddress) -> UInt64 {
        memory.pointer(to: entry).load(as: UInt64.self)
    }

    func store(_ entry: PhysicalAddress, _ value: UInt64) {
        memory.pointer(to: entry).storeAligned(value)
    }

    func zeroTable(_ table: PhysicalAddress) {
        memory.zeroPage(table)
    }

    func checkRange(_ address: VirtualAddress) -> Bool {
        let top = address.value >> 48
        switch half {
        case .lower: return top == 0
        case .upper: return top == 0xFFFF
        }
    }

    /// Adds `delta` to the child count kept in the table descriptor at `parentEntry`.
    func adjustChildCount(_ parentEntry: PhysicalAddress?, by delta: Int) {
        guard let parentEntry else { return }
        let descriptor = load(parentEntry)
        let count = Int((descriptor & DescriptorBits.childCountMask) >> DescriptorBits.childCountShift) + delta
        store(parentEntry, descriptor & ~DescriptorBits.childCountMask | UInt64(count) << DescriptorBits.childCountShift)
    }

    func childCount(_ tableDescriptor: UInt64) -> Int {
        Int((tableDescriptor & DescriptorBits.childCountMask) >> DescriptorBits.childCountShift)
    }

    // MARK: Walk

    /// The entry for `address` at `level`, creating tables on the way when `create` is set.
    /// Returns the entry and the table descriptor pointing at its table (nil at level 0).
    /// Stops early (returning a shallower entry) when it meets a block.
    func walk<Frames: TableFrameSource>(to address: VirtualAddress, level target: Int, create: Bool,
                                        frames: inout Frames, maintenance: some TranslationMaintenance)
        throws(PageTableError) -> (entry: PhysicalAddress, parent: PhysicalAddress?, level: Int)
    {
        var table = root
        var parent: PhysicalAddress?
        for level in 0..<target {
            let entry = entryAddress(table: table, index: Self.index(of: address, level: level))
            let descriptor = load(entry)
            if Self.isTable(descriptor, level: level) {
                parent = entry
                table = PhysicalAddress(descriptor & DescriptorBits.outputAddress)
                continue
            }
            if Self.isValid(descriptor) { return (entry, parent, level) } // a block
            guard create else { return (entry, parent, level) }
            guard let child = frames.allocateTable() else { throw .outOfMemory }
            zeroTable(child)
            maintenance.publishTableWrites()
            store(entry, child.value | DescriptorBits.valid | DescriptorBits.tableOrPage)
            adjustChildCount(parent, by: 1)
            parent = entry
            table = child
        }
        return (entryAddress(table: table, index: Self.index(of: address, level: target)), parent, target)
    }

    // MARK: Operations

    /// Maps `[virtual, virtual + size)` to `[physical, physical + size)`. Uses the largest block
    /// both addresses are aligned for (1 GiB, 2 MiB, else 4 KiB pages) unless `allowBlocks` is
    /// false. All or nothing: on failure, whatever was mapped is unmapped again.
    public mutating func map<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, to physical: PhysicalAddress, size: UInt64,
        permissions: MappingPermissions, type: MemoryType, global: Bool = true, allowBlocks: Bool = true,
        frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) {
        guard virtual.isPageAligned, physical.isPageAligned, size & (pageSize - 1) == 0, size > 0 else { throw .misaligned }
        guard !(permissions.contains(.write) && permissions.contains(.execute)) else { throw .writableAndExecutable }
        let (last, overflow) = virtual.value.addingReportingOverflow(size - 1)
        guard !overflow, checkRange(virtual), checkRange(VirtualAddress(last)),
              !physical.value.addingReportingOverflow(size).overflow else {
            throw .addressOutOfRange(virtual)
        }
        var offset: UInt64 = 0
        while offset < size {
            let address = VirtualAddress(virtual.value + offset)
            let target = physical.value + offset
            let remaining = size - offset
            var level = 3
            if allowBlocks {
                for candidate in 1...2 {
                    let blockSize = UInt64(1) << Self.shift(candidate)
                    if (address.value | target) & (blockSize - 1) == 0 && remaining >= blockSize {
                        level = candidate
                        break
                    }
                }
            }
            do throws(PageTableError) {
                let (entry, parent, reached) = try walk(to: address, level: level, create: true, frames: &frames, maintenance: maintenance)
                guard reached == level, !Self.isValid(load(entry)) else { throw PageTableError.alreadyMapped(address) }
                store(entry, Self.leafDescriptor(PhysicalAddress(target), level: level, permissions: permissions,
                                                 type: type, global: global))
                adjustChildCount(parent, by: 1)
            } catch {
                // Only what this call mapped lies in `[virtual, virtual + offset)`, all of it whole leaves.
                if offset > 0 { _ = try? unmapPresent(virtual, size: offset, frames: &frames, maintenance: maintenance) { _, _ in } }
                throw error
            }
            offset += UInt64(1) << Self.shift(level)
        }
        maintenance.publishTableWrites()
    }

    /// Maps `count` pages from `virtual` on, page `i` to `frame(i)`, with pages only (no blocks):
    /// a memory object's frames, which need not be contiguous. The walk is made once per leaf
    /// table, and each table's entries are written in one pass with one change to its count, where
    /// `map` would walk again for every page. All or nothing, as `map`.
    public mutating func mapPages<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, count: Int, frame: (Int) -> PhysicalAddress,
        permissions: MappingPermissions, type: MemoryType, global: Bool,
        frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) {
        guard virtual.isPageAligned, count > 0, count <= Int(UInt32.max) else { throw .misaligned }
        guard !(permissions.contains(.write) && permissions.contains(.execute)) else { throw .writableAndExecutable }
        let (last, overflow) = virtual.value.addingReportingOverflow(UInt64(count) * pageSize - 1)
        guard !overflow, checkRange(virtual), checkRange(VirtualAddress(last)) else { throw .addressOutOfRange(virtual) }
        let entriesPerTable = Int(pageSize / 8)
        var page = 0
        while page < count {
            let address = VirtualAddress(virtual.value + UInt64(page) * pageSize)
            do throws(PageTableError) {
                let (entry, parent, reached) = try walk(to: address, level: 3, create: true, frames: &frames, maintenance: maintenance)
                guard reached == 3 else { throw PageTableError.alreadyMapped(address) }
                // The rest of this leaf table, or of the pages.
                let index = Int(address.value >> Self.shift(3)) & (entriesPerTable - 1)
                let run = min(entriesPerTable - index, count - page)
                var written = 0
                defer {
                    adjustChildCount(parent, by: written)
                    page += written
                }
                while written < run {
                    let slot = PhysicalAddress(entry.value + UInt64(written) * 8)
                    guard !Self.isValid(load(slot)) else {
                        throw PageTableError.alreadyMapped(VirtualAddress(address.value + UInt64(written) * pageSize))
                    }
                    store(slot, Self.leafDescriptor(frame(page + written), level: 3, permissions: permissions, type: type,
                                                    global: global))
                    written += 1
                }
            } catch {
                // What this call mapped is `[virtual, virtual + page pages)`, all of it pages.
                if page > 0 {
                    _ = try? unmapPresent(virtual, size: UInt64(page) * pageSize, frames: &frames, maintenance: maintenance) { _, _ in }
                }
                throw error
            }
        }
        maintenance.publishTableWrites()
    }

    /// Makes every table down to the leaf tables that `count` pages from `virtual` on need, and
    /// maps nothing: so that pages mapped there later, one by one, need no table then (pages
    /// taken on demand). Each of those leaf tables is pinned: it counts one entry more than it
    /// holds, so that no removal of its pages or its neighbours' frees it, until `unpinTables`
    /// over the same range. On failure (no memory for a table, or a block in the way) what it
    /// pinned is unpinned again.
    public mutating func prepareTables<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, count: Int, frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) {
        guard virtual.isPageAligned, count > 0, count <= Int(UInt32.max) else { throw .misaligned }
        let (last, overflow) = virtual.value.addingReportingOverflow(UInt64(count) * pageSize - 1)
        guard !overflow, checkRange(virtual), checkRange(VirtualAddress(last)) else { throw .addressOutOfRange(virtual) }
        var address = virtual.value
        while true {
            do throws(PageTableError) {
                let (_, parent, reached) = try walk(to: VirtualAddress(address), level: 3, create: true, frames: &frames,
                                                    maintenance: maintenance)
                guard reached == 3 else { throw PageTableError.alreadyMapped(VirtualAddress(address)) }
                adjustChildCount(parent, by: 1)
            } catch {
                // The leaf tables pinned before this one (a table a failed walk made on the way
                // stays, empty, for the next removal over it or the end of the space).
                if address > virtual.value {
                    unpinTables(virtual, count: Int((address - virtual.value) / pageSize), frames: &frames,
                                maintenance: maintenance)
                }
                throw error
            }
            guard let next = Self.nextLeafTable(after: address, last: last) else { break }
            address = next
        }
        maintenance.publishTableWrites()
    }

    /// Takes the pins `prepareTables` put on the leaf tables of the same range, freeing each that
    /// holds no page then (and the tables above it that empty with it).
    public mutating func unpinTables<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, count: Int, frames: inout Frames, maintenance: some TranslationMaintenance
    ) {
        guard virtual.isPageAligned, count > 0 else { return }
        let last = virtual.value &+ (UInt64(count) * pageSize - 1)
        var address = virtual.value
        while true {
            if let (_, _, reached) = try? walk(to: VirtualAddress(address), level: 3, create: false, frames: &frames,
                                               maintenance: maintenance), reached == 3 {
                releaseEmptyTables(above: VirtualAddress(address), level: 3, frames: &frames, maintenance: maintenance)
            }
            guard let next = Self.nextLeafTable(after: address, last: last) else { break }
            address = next
        }
    }

    /// The first address of the leaf table after the one `address` is in, if `last` lies in it or
    /// beyond.
    private static func nextLeafTable(after address: UInt64, last: UInt64) -> UInt64? {
        let leafSpan = UInt64(1) << shift(2)
        let next = (address & ~(leafSpan - 1)) &+ leafSpan
        return next > address && next <= last ? next : nil
    }

    /// Removes the translations of `[virtual, virtual + size)`, splitting blocks it covers only in
    /// part and freeing tables that become empty. Stops with `.notMapped` at the first hole.
    public mutating func unmap<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, size: UInt64, frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) {
        guard virtual.isPageAligned, size & (pageSize - 1) == 0 else { throw .misaligned }
        guard checkRange(virtual), virtual.value.addingReportingOverflow(size).overflow == false || size == 0 else {
            throw .addressOutOfRange(virtual)
        }
        var offset: UInt64 = 0
        while offset < size {
            let address = VirtualAddress(virtual.value + offset)
            let remaining = size - offset
            let (entry, level) = try leafForChange(at: address, covering: remaining, frames: &frames, maintenance: maintenance)
            store(entry, 0)
            maintenance.publishTableWrites()
            maintenance.invalidate(address)
            releaseEmptyTables(above: address, level: level, frames: &frames, maintenance: maintenance)
            offset += UInt64(1) << Self.shift(level)
        }
    }

    /// Up to this many leaves a removal invalidates one by one (TLBI by address, as `unmap`);
    /// beyond, it invalidates the whole hierarchy once per `RemovalBatch.capacity` entries.
    public static var leavesInvalidatedOneByOne: Int { 16 }

    /// Removes every translation in `[virtual, virtual + size)`, leaving holes as they are:
    /// absent tables are skipped whole, blocks the range covers in part are split, and tables that
    /// empty are freed. Each removed leaf's memory goes to `released` (its physical base and size)
    /// once no TLB can still hold it. Returns how many leaves it removed. Throws only if a block
    /// needs splitting and no table is left (what was removed so far stays removed).
    @discardableResult
    public mutating func unmapPresent<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, size: UInt64, frames: inout Frames, maintenance: some TranslationMaintenance,
        released: (PhysicalAddress, UInt64) -> Void
    ) throws(PageTableError) -> Int {
        guard virtual.isPageAligned, size & (pageSize - 1) == 0 else { throw .misaligned }
        guard size > 0 else { return 0 }
        let (last, overflow) = virtual.value.addingReportingOverflow(size - 1)
        guard !overflow, checkRange(virtual), checkRange(VirtualAddress(last)) else { throw .addressOutOfRange(virtual) }
        var removal = RemovalBatch()
        do throws(PageTableError) {
            try clear(table: root, level: 0, parent: nil, first: virtual.value, last: last, removal: &removal,
                      frames: &frames, maintenance: maintenance, released: released)
        } catch {
            flush(&removal, frames: &frames, maintenance: maintenance, released: released)
            throw error
        }
        flush(&removal, frames: &frames, maintenance: maintenance, released: released)
        return removal.leaves
    }

    /// Clears the entries of `table` (at `level`) that `[first, last]` touches; both lie in the
    /// span `table` translates. `parent` is the descriptor pointing at `table`, nil for the root.
    /// Its loop is `forEachEntry`'s, written out: through the closure, the removal batch and the
    /// frame source it changes went through memory, and a 16 MiB unmap cost 2.6 % more.
    private func clear<Frames: TableFrameSource>(
        table: PhysicalAddress, level: Int, parent: PhysicalAddress?, first: UInt64, last: UInt64,
        removal: inout RemovalBatch, frames: inout Frames, maintenance: some TranslationMaintenance,
        released: (PhysicalAddress, UInt64) -> Void
    ) throws(PageTableError) {
        let span = UInt64(1) << Self.shift(level)
        let lastIndex = Self.index(of: VirtualAddress(last), level: level)
        var index = Self.index(of: VirtualAddress(first), level: level)
        var entryStart = first & ~(span - 1)
        while index <= lastIndex {
            let entryLast = entryStart + (span - 1)
            let entry = entryAddress(table: table, index: index)
            var descriptor = load(entry)
            if level > 0, Self.isValid(descriptor), !Self.isTable(descriptor, level: level),
               first > entryStart || entryLast > last {
                // A block the range covers in part: only its pages inside go.
                try split(entry: entry, level: level, address: VirtualAddress(entryStart), frames: &frames,
                          maintenance: maintenance)
                descriptor = load(entry)
            }
            if Self.isTable(descriptor, level: level) {
                let child = PhysicalAddress(descriptor & DescriptorBits.outputAddress)
                try clear(table: child, level: level + 1, parent: entry, first: max(first, entryStart),
                          last: min(last, entryLast), removal: &removal, frames: &frames, maintenance: maintenance,
                          released: released)
                if childCount(load(entry)) == 0 {
                    store(entry, 0)
                    adjustChildCount(parent, by: -1)
                    remove(table: child, at: VirtualAddress(entryStart), removal: &removal, frames: &frames,
                           maintenance: maintenance, released: released)
                }
            } else if level > 0 && Self.isValid(descriptor) {
                store(entry, 0)
                adjustChildCount(parent, by: -1)
                remove(leaf: PhysicalAddress(descriptor & DescriptorBits.outputAddress & ~(span - 1)), size: span,
                       at: VirtualAddress(entryStart), removal: &removal, frames: &frames, maintenance: maintenance,
                       released: released)
            }
            // An absent entry (or a level-0 block, which cannot exist) skips its whole span.
            if entryLast >= last { break }
            entryStart = entryLast + 1
            index += 1
        }
    }

    /// Each entry of `table` (at `level`) that `[first, last]` touches, in order, with the first
    /// and last virtual address it translates; both ends lie in the span `table` translates.
    @inline(__always)
    private func forEachEntry<Failure: Error>(
        of table: PhysicalAddress, level: Int, first: UInt64, last: UInt64,
        _ body: (_ entry: PhysicalAddress, _ entryStart: UInt64, _ entryLast: UInt64) throws(Failure) -> Void
    ) throws(Failure) {
        let span = UInt64(1) << Self.shift(level)
        let lastIndex = Self.index(of: VirtualAddress(last), level: level)
        var index = Self.index(of: VirtualAddress(first), level: level)
        var entryStart = first & ~(span - 1)
        while index <= lastIndex {
            let entryLast = entryStart + (span - 1)
            try body(entryAddress(table: table, index: index), entryStart, entryLast)
            if entryLast >= last { break }
            entryStart = entryLast + 1
            index += 1
        }
    }

    /// A cleared leaf: invalidated now while the removal is small, else queued for one
    /// invalidation of the whole hierarchy.
    private func remove<Frames: TableFrameSource>(
        leaf physical: PhysicalAddress, size: UInt64, at address: VirtualAddress, removal: inout RemovalBatch,
        frames: inout Frames, maintenance: some TranslationMaintenance, released: (PhysicalAddress, UInt64) -> Void
    ) {
        removal.leaves += 1
        if removal.leaves <= Self.leavesInvalidatedOneByOne {
            maintenance.publishTableWrites()
            maintenance.invalidate(address)
            released(physical, size)
            return
        }
        if removal.isFull { flush(&removal, frames: &frames, maintenance: maintenance, released: released) }
        removal.append(physical.value | UInt64(Self.levelOfSize(size)))
    }

    /// A table emptied and unlinked: freed once no walk cache can still hold it.
    private func remove<Frames: TableFrameSource>(
        table: PhysicalAddress, at address: VirtualAddress, removal: inout RemovalBatch,
        frames: inout Frames, maintenance: some TranslationMaintenance, released: (PhysicalAddress, UInt64) -> Void
    ) {
        if removal.leaves <= Self.leavesInvalidatedOneByOne {
            maintenance.publishTableWrites()
            maintenance.invalidate(address)
            frames.freeTable(table)
            return
        }
        if removal.isFull { flush(&removal, frames: &frames, maintenance: maintenance, released: released) }
        removal.append(table.value | RemovalBatch.tableMark)
    }

    /// Invalidates the hierarchy once, then hands out what was queued.
    private func flush<Frames: TableFrameSource>(
        _ removal: inout RemovalBatch, frames: inout Frames, maintenance: some TranslationMaintenance,
        released: (PhysicalAddress, UInt64) -> Void
    ) {
        guard removal.count > 0 else { return }
        maintenance.publishTableWrites()
        maintenance.invalidateAll()
        for position in 0..<removal.count {
            let item = removal.items[position]
            let physical = PhysicalAddress(item & DescriptorBits.outputAddress)
            if item & RemovalBatch.tableMark != 0 {
                frames.freeTable(physical)
            } else {
                released(physical, UInt64(1) << Self.shift(Int(item & 0x3)))
            }
        }
        removal.count = 0
    }

    static func levelOfSize(_ size: UInt64) -> Int {
        size == UInt64(1) << shift(1) ? 1 : (size == UInt64(1) << shift(2) ? 2 : 3)
    }

    /// Changes permissions and memory type of `[virtual, virtual + size)`, keeping the physical
    /// addresses. A changed memory type goes through break-before-make.
    public mutating func protect<Frames: TableFrameSource>(
        _ virtual: VirtualAddress, size: UInt64, permissions: MappingPermissions, type: MemoryType,
        frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) {
        guard virtual.isPageAligned, size & (pageSize - 1) == 0 else { throw .misaligned }
        guard !(permissions.contains(.write) && permissions.contains(.execute)) else { throw .writableAndExecutable }
        guard checkRange(virtual) else { throw .addressOutOfRange(virtual) }
        var offset: UInt64 = 0
        while offset < size {
            let address = VirtualAddress(virtual.value + offset)
            let (entry, level) = try leafForChange(at: address, covering: size - offset, frames: &frames, maintenance: maintenance)
            let old = load(entry)
            let current = Self.decode(old, level: level, address: address)
            let updated = Self.leafDescriptor(PhysicalAddress(old & DescriptorBits.outputAddress), level: level,
                                              permissions: permissions, type: type, global: current.isGlobal)
            if current.memoryType != type {
                // Break-before-make (Arm ARM D8.16.1): invalidate and flush before the new entry.
                store(entry, 0)
                maintenance.publishTableWrites()
                maintenance.invalidate(address)
            }
            store(entry, updated)
            maintenance.publishTableWrites()
            maintenance.invalidate(address)
            offset += UInt64(1) << Self.shift(level)
        }
    }

    /// The leaf translation of `virtual`, if mapped.
    public func translate(_ virtual: VirtualAddress) -> Translation? {
        guard checkRange(virtual) else { return nil }
        var table = root
        for level in 0...3 {
            let descriptor = load(entryAddress(table: table, index: Self.index(of: virtual, level: level)))
            guard Self.isValid(descriptor) else { return nil }
            if Self.isTable(descriptor, level: level) {
                table = PhysicalAddress(descriptor & DescriptorBits.outputAddress)
                continue
            }
            if level == 0 { return nil } // level-0 blocks do not exist with a 4 KiB granule
            return Self.decode(descriptor, level: level, address: virtual)
        }
        return nil
    }

    /// The leaf entry mapping `address`, after splitting a block that extends outside
    /// `[address, address + length)`.
    private func leafForChange<Frames: TableFrameSource>(
        at address: VirtualAddress, covering length: UInt64, frames: inout Frames, maintenance: some TranslationMaintenance
    ) throws(PageTableError) -> (PhysicalAddress, Int) {
        while true {
            let (entry, _, level) = try walk(to: address, level: 3, create: false, frames: &frames, maintenance: maintenance)
            let descriptor = load(entry)
            guard Self.isValid(descriptor), !(level == 0) else { throw .notMapped(address) }
            let blockSize = UInt64(1) << Self.shift(level)
            if level == 3 || (address.value & (blockSize - 1) == 0 && length >= blockSize) {
                return (entry, level)
            }
            try split(entry: entry, level: level, address: address, frames: &frames, maintenance: maintenance)
        }
    }

    /// Replaces the block at `entry` by a table of the next level mapping the same memory with
    /// the same attributes, using break-before-make.
    private func split<Frames: TableFrameSource>(entry: PhysicalAddress, level: Int, address: VirtualAddress,
                                                 frames: inout Frames, maintenance: some TranslationMaintenance)
        throws(PageTableError)
    {
        let block = load(entry)
        guard let table = frames.allocateTable() else { throw .outOfMemory }
        let childLevel = level + 1
        let childSize = UInt64(1) << Self.shift(childLevel)
        let base = block & DescriptorBits.outputAddress
        // Same attribute bits; only the output address and, at level 3, the page bit differ.
        let attributes = block & ~DescriptorBits.outputAddress & ~DescriptorBits.tableOrPage
        let pointer = memory.pointer(to: table)
        for index in 0..<Self.entriesPerTable {
            var descriptor = (base + UInt64(index) * childSize) | attributes
            if childLevel == 3 { descriptor |= DescriptorBits.tableOrPage }
            pointer.storeAligned(descriptor, toByteOffset: index * 8)
        }
        store(entry, 0)
        maintenance.publishTableWrites()
        maintenance.invalidate(address)
        store(entry, table.value | DescriptorBits.valid | DescriptorBits.tableOrPage | UInt64(Self.entriesPerTable) << DescriptorBits.childCountShift)
        maintenance.publishTableWrites()
    }

    /// After an entry at `level` was cleared, frees its table if empty, and so on upwards.
    private func releaseEmptyTables<Frames: TableFrameSource>(above address: VirtualAddress, level: Int,
                                                              frames: inout Frames, maintenance: some TranslationMaintenance) {
        var currentLevel = level
        while currentLevel > 0 {
            // Find the descriptor that points at the table holding the cleared entry.
            var table = root
            var parentEntry = entryAddress(table: root, index: Self.index(of: address, level: 0))
            for walkLevel in 0..<currentLevel {
                parentEntry = entryAddress(table: table, index: Self.index(of: address, level: walkLevel))
                table = PhysicalAddress(load(parentEntry) & DescriptorBits.outputAddress)
            }
            adjustChildCount(parentEntry, by: -1)
            guard childCount(load(parentEntry)) == 0 else { return }
            store(parentEntry, 0)
            maintenance.publishTableWrites()
            maintenance.invalidate(address)
            frames.freeTable(table)
            currentLevel -= 1
        }
    }

    /// Calls `body` with the physical address and size of each translation in
    /// `[virtual, virtual + size)`, in address order, changing nothing; absent tables are skipped
    /// whole, and a block the range covers in part is given for the part inside. For tearing a
    /// whole space down, where no entry needs clearing before its table is freed.
    public func forEachPresent(_ virtual: VirtualAddress, size: UInt64, _ body: (PhysicalAddress, UInt64) -> Void) {
        guard size > 0, virtual.isPageAligned, size & (pageSize - 1) == 0 else { return }
        let (last, overflow) = virtual.value.addingReportingOverflow(size - 1)
        guard !overflow, checkRange(virtual), checkRange(VirtualAddress(last)) else { return }
        visit(table: root, level: 0, first: virtual.value, last: last, body)
    }

    private func visit(table: PhysicalAddress, level: Int, first: UInt64, last: UInt64,
                       _ body: (PhysicalAddress, UInt64) -> Void) {
        forEachEntry(of: table, level: level, first: first, last: last) { entry, entryStart, entryLast in
            let descriptor = load(entry)
            let from = max(first, entryStart), to = min(last, entryLast)
            if Self.isTable(descriptor, level: level) {
                visit(table: PhysicalAddress(descriptor & DescriptorBits.outputAddress), level: level + 1, first: from,
                      last: to, body)
            } else if level > 0 && Self.isValid(descriptor) {
                let span = entryLast - entryStart + 1
                body(PhysicalAddress((descriptor & DescriptorBits.outputAddress & ~(span - 1)) + (from - entryStart)),
                     to - from + 1)
            }
        }
    }

    /// Frees every table below the root (not the leaves' memory). For tearing down an address
    /// space whose TLB entries the caller invalidates by ASID.
    public func freeTables<Frames: TableFrameSource>(frames: inout Frames, includingRoot: Bool) {
        freeChildren(of: root, level: 0, entries: Self.entriesPerTable, frames: &frames)
        if includingRoot { frames.freeTable(root) } else { zeroTable(root) }
    }

    /// Frees the tables below `table`, which holds `entries` valid entries (the count its
    /// descriptor keeps; unknown for the root, which is searched whole). The search of a table
    /// runs from both ends at once, eight entries a step across empty stretches, and stops when
    /// it has met them all, so a sparse space costs its
    /// entries, not 512 per table, even where they lie at both ends (a program's image low in the
    /// address space and its stack high), as in a process's tables.
    private func freeChildren<Frames: TableFrameSource>(of table: PhysicalAddress, level: Int, entries: Int,
                                                        frames: inout Frames) {
        guard level < 3 else { return }
        var left = entries
        var low = 0
        var high = Self.entriesPerTable
        let words = memory.pointer(to: table).assumingMemoryBound(to: UInt64.self)
        while left > 0 && low < high {
            // Eight at a time from either end while all eight are invalid: most of a sparse table.
            if low & 7 == 0, high - low >= 8, Self.noneValid(words + low) {
                low += 8
            } else {
                if freeChild(words[low], level: level, frames: &frames) { left -= 1 }
                low += 1
            }
            guard left > 0 && low < high else { break }
            if high & 7 == 0, high - low >= 8, Self.noneValid(words + high - 8) {
                high -= 8
            } else {
                high -= 1
                if freeChild(words[high], level: level, frames: &frames) { left -= 1 }
            }
        }
    }

    /// Whether none of the eight descriptors from `words` is valid.
    @inline(__always)
    private static func noneValid(_ words: UnsafeMutablePointer<UInt64>) -> Bool {
        (words[0] | words[1] | words[2] | words[3] | words[4] | words[5] | words[6] | words[7]) & DescriptorBits.valid == 0
    }

    /// For `freeChildren`: whether `descriptor` is valid; a table's own tables are freed, then it.
    @inline(__always)
    private func freeChild<Frames: TableFrameSource>(_ descriptor: UInt64, level: Int, frames: inout Frames) -> Bool {
        guard Self.isValid(descriptor) else { return false }
        if Self.isTable(descriptor, level: level) {
            let child = PhysicalAddress(descriptor & DescriptorBits.outputAddress)
            freeChildren(of: child, level: level + 1, entries: childCount(descriptor), frames: &frames)
            frames.freeTable(child)
        }
        return true
    }
}

/// Leaves and tables a large removal has unlinked but not yet invalidated: page-aligned physical
/// addresses, a leaf's level in bits [1:0], `tableMark` on a table.
struct RemovalBatch {
    static let capacity = 64
    static let tableMark: UInt64 = 1 << 2
    var items = InlineArray<64, UInt64>(repeating: 0)
    var count = 0
    /// Leaves removed so far, invalidated or queued.
    var leaves = 0

    var isFull: Bool { count == Self.capacity }

    mutating func append(_ item: UInt64) {
        items[count] = item
        count += 1
    }
}
