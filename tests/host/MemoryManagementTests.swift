import Testing
import PropertyBased
@testable import KernelCore

/// Simulated physical RAM: 4 KiB pages allocated on first touch, so a 16 GiB machine costs only
/// the pages the allocator's metadata and the tables actually use.
private final class SparseRAM: PhysicalMemory {
    var pages: [UInt64: UnsafeMutableRawPointer] = [:]
    /// Accesses so far: a walk's cost.
    var accesses = 0

    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        accesses += 1
        let page = address.value >> 12
        if pages[page] == nil {
            let storage = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
            storage.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            pages[page] = storage
        }
        return pages[page]! + Int(address.value & 0xFFF)
    }

    deinit { for page in pages.values { page.deallocate() } }
}

private struct RAM: PhysicalMemory {
    let storage: SparseRAM
    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer { storage.pointer(to: address) }
}

private func range(_ start: UInt64, _ size: UInt64) -> PhysicalRange { PhysicalRange(start: PhysicalAddress(start), size: size) }

private func allocator(ram: [PhysicalRange], reserved: [(PhysicalRange, FramePurpose)] = []) throws -> FrameAllocator<RAM> {
    var map = MemoryMap()
    for region in ram { try map.addRAM(region) }
    for (region, purpose) in reserved { try map.reserve(region, for: purpose) }
    return try FrameAllocator(memory: RAM(storage: SparseRAM()), map: map)
}

@Suite struct FrameAllocatorTests {
    static let base: UInt64 = 0x4000_0000

    @Test(arguments: [UInt64(128) << 20, UInt64(1) << 30, UInt64(16) << 30])
    func totalsAndMetadata(size: UInt64) throws {
        let frames = try allocator(ram: [range(Self.base, size)],
                                   reserved: [(range(Self.base + 0x20_0000, 0x4_0000), .kernelImage)])
        let statistics = frames.statistics
        #expect(statistics.totalFrames == size / 4096)
        #expect(statistics.frames(for: .kernelImage) == 64)
        let metadata = statistics.frames(for: .allocatorMetadata)
        // One bitmap bit and one 8-byte record per frame, plus the summary levels: about 0.2%.
        #expect(metadata >= size / 4096 * 8 / 4096 && metadata <= size / 4096 * 9 / 4096 + 2)
        #expect(statistics.freeFrames == statistics.totalFrames - 64 - metadata)
    }

    /// RAM at physical 0 (as on some boards): frame 0 is left out, for neither the allocator's
    /// records nor any frame handed out, since before the MMU address 0 is no pointer.
    @Test func frameZeroIsNeverUsed() throws {
        var frames = try allocator(ram: [range(0, 16 << 20)])
        #expect(frames.zoneTable == 4096)
        #expect(frames.statistics.totalFrames == 4095)
        var lowest = UInt64.max
        while let frame = try? frames.allocate(.general) { lowest = min(lowest, frame.address.value) }
        #expect(lowest > frames.zoneTable && lowest != .max)
        #expect(try allocator(ram: [range(0, 0x800), range(Self.base, 1 << 20)]).statistics.totalFrames == 256)
    }

    @Test func unalignedRegionEdgesAreTrimmedAndRegionsCombine() throws {
        let frames = try allocator(ram: [range(Self.base + 0x800, 0x10_0000), range(0x1_0000_0000, 0x8000_0000)])
        #expect(frames.statistics.totalFrames == 255 + 0x8_0000)
        #expect(frames.zoneCountForTesting == 2)
    }

    @Test func reservedFramesAreNeverHandedOut() throws {
        let image = range(Self.base + 0x20_0000, 0x10_0000)
        let tree = range(Self.base + 0x800_0000, 0x10_0000)
        var frames = try allocator(ram: [range(Self.base, 256 << 20)], reserved: [(image, .kernelImage), (tree, .bootData)])
        var seen = Set<UInt64>()
        while let frame = try? frames.allocate(.general) {
            #expect(!image.contains(frame.address) && !tree.contains(frame.address))
            #expect(seen.insert(frame.number).inserted)
        }
        #expect(frames.statistics.freeFrames == 0)
        #expect(UInt64(seen.count) == frames.statistics.frames(for: .general))
        #expect(throws: FrameAllocatorError.outOfMemory) { try frames.allocate(.general) }
    }

    @Test func contiguousAlignedRuns() throws {
        var frames = try allocator(ram: [range(Self.base + 0x1000, 64 << 20)])
        var runs: [PageFrame] = []
        for _ in 0..<8 {
            let first = try frames.allocate(count: 512, alignment: 512, .pageTables)
            #expect(first.number % 512 == 0)
            for other in runs { #expect(first.number >= other.number + 512 || first.number + 512 <= other.number) }
            runs.append(first)
        }
        #expect(frames.statistics.frames(for: .pageTables) == 8 * 512)
        #expect(frames.allocation(containing: PageFrame(number: runs[0].number + 100))?.first == runs[0])
        #expect(frames.allocation(containing: PageFrame(number: runs[0].number + 100))?.count == 512)
        #expect(throws: FrameAllocatorError.notAllocationStart(PageFrame(number: runs[0].number + 1))) {
            try frames.free(PageFrame(number: runs[0].number + 1))
        }
        for run in runs { try frames.free(run) }
        #expect(frames.statistics.frames(for: .pageTables) == 0)
    }

    @Test func badFreesAreErrors() throws {
        let image = range(Self.base, 0x1_0000)
        var frames = try allocator(ram: [range(Self.base, 16 << 20)], reserved: [(image, .kernelImage)])
        let before = frames.statistics
        let frame = try frames.allocate(.general)
        try frames.free(frame)
        #expect(throws: FrameAllocatorError.doubleFree(frame)) { try frames.free(frame) }
        #expect(throws: FrameAllocatorError.notAllocated(PageFrame(number: Self.base >> 12))) {
            try frames.free(PageFrame(number: Self.base >> 12))
        }
        #expect(throws: FrameAllocatorError.outsideRAM(PageFrame(number: 1))) { try frames.free(PageFrame(number: 1)) }
        #expect(throws: FrameAllocatorError.invalidRequest) { try frames.allocate(count: 0, .general) }
        #expect(throws: FrameAllocatorError.invalidRequest) { try frames.allocate(count: 2, alignment: 3, .general) }
        #expect(throws: FrameAllocatorError.invalidRequest) { try frames.allocate(.free) }
        #expect(throws: FrameAllocatorError.outOfMemory) { try frames.allocate(count: 1 << 20, .general) }
        #expect(frames.statistics == before)
    }

    /// A freed single frame waits in the cache: it is free in every sense the allocator shows
    /// (statistics, purpose, a second free is a double free), and the next single request gets it.
    @Test func freedSingleFramesComeBackFirstAndCountAsFree() throws {
        var frames = try allocator(ram: [range(Self.base, 16 << 20)])
        let before = frames.statistics
        let first = try frames.allocate(.user)
        let second = try frames.allocate(.pageTables)
        try frames.free(first)
        #expect(frames.cachedFramesForTesting == 1)
        #expect(frames.statistics.freeFrames == before.freeFrames - 1)
        #expect(frames.statistics.frames(for: .user) == 0)
        #expect(frames.purpose(of: first) == .free)
        #expect(frames.allocation(containing: first) == nil)
        #expect(throws: FrameAllocatorError.doubleFree(first)) { try frames.free(first) }
        let again = try frames.allocate(.heap)
        #expect(again == first)
        #expect(frames.cachedFramesForTesting == 0)
        #expect(frames.allocation(containing: again)?.purpose == .heap)
        try frames.free(again)
        try frames.free(second)
        #expect(frames.statistics == before)
    }

    /// Every frame of a small machine taken one by one and freed (the cache fills, the rest goes
    /// back to the bitmap): a request for all of them at once still succeeds, by putting the
    /// cached frames back, and the cache never holds more than its capacity.
    @Test func contiguousRequestsTakeBackCachedFrames() throws {
        var frames = try allocator(ram: [range(Self.base, 2 << 20)])
        let initial = frames.statistics
        var taken: [PageFrame] = []
        while let frame = try? frames.allocate(.user) { taken.append(frame) }
        #expect(UInt64(taken.count) == initial.freeFrames)
        for frame in taken { try frames.free(frame) }
        #expect(frames.cachedFramesForTesting == FrameAllocator<RAM>.cacheCapacity)
        #expect(frames.statistics == initial)
        let run = try frames.allocate(count: taken.count, .general)
        #expect(frames.cachedFramesForTesting == 0)
        #expect(frames.statistics.freeFrames == 0)
        #expect(frames.allocation(containing: PageFrame(number: run.number + UInt64(taken.count) - 1))?.first == run)
        #expect(throws: FrameAllocatorError.outOfMemory) { try frames.allocate(.general) }
        try frames.free(run)
        #expect(frames.statistics == initial)
        // A run freed goes back to the bitmap, not the cache.
        #expect(frames.cachedFramesForTesting == 0)
    }

    @Test func capacityAndMetadataLimits() throws {
        var map = MemoryMap()
        for index in 0..<MemoryMap.maximumRegions { try map.addRAM(range(UInt64(index) << 32, 1 << 20)) }
        #expect(throws: FrameAllocatorError.tooManyRanges) { try map.addRAM(range(0x100_0000_0000, 4096)) }
        var tight = MemoryMap()
        try tight.addRAM(range(Self.base, 64 << 20))
        try tight.reserve(range(Self.base, 64 << 20), for: .reserved)
        #expect(throws: FrameAllocatorError.noRoomForMetadata) { try FrameAllocator(memory: RAM(storage: SparseRAM()), map: tight) }
    }

    /// Random allocations and frees against a model: no frame is handed out twice, every frame
    /// is RAM outside the reservations, counts agree, and freeing everything restores the start.
    @Test func matchesAModel() async throws {
        let operations = Gen.int(in: 0...1000).array(of: 1...400)
        await propertyCheck(count: 60, input: operations) { codes in
            let image = range(Self.base + 0x10_0000, 0x8_0000)
            guard var frames = try? allocator(ram: [range(Self.base, 8 << 20), range(0x2_0000_0000, 4 << 20)],
                                              reserved: [(image, .kernelImage)]) else {
                Issue.record("allocator did not start")
                return
            }
            let initial = frames.statistics
            var live: [(first: UInt64, count: Int)] = []
            var owned = Set<UInt64>()
            for code in codes {
                switch code % 5 {
                case 0, 1:
                    if let frame = try? frames.allocate(.user) {
                        #expect(owned.insert(frame.number).inserted)
                        live.append((frame.number, 1))
                    } else {
                        #expect(frames.statistics.freeFrames == 0)
                    }
                case 2:
                    let count = 1 + code % 40
                    let alignment = 1 << (code % 6)
                    if let first = try? frames.allocate(count: count, alignment: alignment, .user) {
                        #expect(first.number % UInt64(alignment) == 0)
                        for number in first.number..<(first.number + UInt64(count)) { #expect(owned.insert(number).inserted) }
                        live.append((first.number, count))
                    }
                case 3 where !live.isEmpty:
                    let victim = live.remove(at: code % live.count)
                    #expect((try? frames.free(PageFrame(number: victim.first))) != nil)
                    for number in victim.first..<(victim.first + UInt64(victim.count)) { owned.remove(number) }
                default:
                    let stray = PageFrame(number: (Self.base >> 12) + UInt64(code % 2048))
                    if !owned.contains(stray.number) { #expect((try? frames.free(stray)) == nil) }
                }
                for number in owned.prefix(3) {
                    let address = PhysicalAddress(number << 12)
                    #expect(!image.contains(address))
                    #expect(range(Self.base, 8 << 20).contains(address) || range(0x2_0000_0000, 4 << 20).contains(address))
                }
                #expect(frames.statistics.frames(for: .user) == UInt64(owned.count))
                #expect(frames.statistics.freeFrames + frames.statistics.usedFrames == frames.statistics.totalFrames)
            }
            for run in live { try? frames.free(PageFrame(number: run.first)) }
            #expect(frames.statistics == initial)
        }
    }
}

private struct TableFrames: TableFrameSource {
    var allocator: FrameAllocator<RAM>
    var allocated = 0

    mutating func allocateTable() -> PhysicalAddress? {
        guard let frame = try? allocator.allocate(.pageTables) else { return nil }
        allocated += 1
        return frame.address
    }

    mutating func freeTable(_ table: PhysicalAddress) {
        if (try? allocator.free(PageFrame(containing: table))) != nil { allocated -= 1 }
    }
}

private final class Invalidations: TranslationMaintenance {
    var addresses: [UInt64] = []
    var publishes = 0
    func publishTableWrites() { publishes += 1 }
    func invalidate(_ address: VirtualAddress) { addresses.append(address.value) }
    var wholeInvalidations = 0
    func invalidateAll() { wholeInvalidations += 1 }
}

@Suite struct PageTableTests {
    fileprivate static func setUp(limit: UInt64 = 64 << 20) throws -> (PageTable<RAM>, TableFrames, Invalidations) {
        let ram = SparseRAM()
        var map = MemoryMap()
        try map.addRAM(range(0x4000_0000, limit))
        var frames = TableFrames(allocator: try FrameAllocator(memory: RAM(storage: ram), map: map))
        let table = try PageTable(half: .lower, memory: RAM(storage: ram), frames: &frames)
        return (table, frames, Invalidations())
    }

    @Test func pagesAndBlocksTranslate() throws {
        var (table, frames, tlb) = try Self.setUp()
        try table.map(VirtualAddress(0x40_0000), to: PhysicalAddress(0x8000_0000), size: 0x3000,
                      permissions: [.user, .execute], type: .normal, global: false, frames: &frames, maintenance: tlb)
        let page = try #require(table.translate(VirtualAddress(0x40_1234)))
        #expect(page == Translation(physical: PhysicalAddress(0x8000_1234), permissions: [.user, .execute], memoryType: .normal,
                                    level: 3, isGlobal: false))
        try table.map(VirtualAddress(0x4000_0000), to: PhysicalAddress(0x8000_0000), size: 0x4000_0000,
                      permissions: .readWrite, type: .normal, frames: &frames, maintenance: tlb)
        #expect(table.translate(VirtualAddress(0x4123_4567))?.level == 1)
        try table.map(VirtualAddress(0x1_0020_0000), to: PhysicalAddress(0x900_0000 + 0x20_0000), size: 0x40_0000,
                      permissions: .readWrite, type: .device, frames: &frames, maintenance: tlb)
        let block = try #require(table.translate(VirtualAddress(0x1_0030_0010)))
        #expect(block.level == 2 && block.memoryType == .device && block.physical == PhysicalAddress(0x930_0010))
        try table.map(VirtualAddress(0x2_0000_0000), to: PhysicalAddress(0x8000_0000), size: 0x20_0000,
                      permissions: .readOnly, type: .normal, allowBlocks: false, frames: &frames, maintenance: tlb)
        #expect(table.translate(VirtualAddress(0x2_0010_0000))?.level == 3)
        #expect(table.translate(VirtualAddress(0x5000)) == nil)
    }

    @Test func permissionsRoundTrip() throws {
        var (table, frames, tlb) = try Self.setUp()
        let cases: [MappingPermissions] = [[], [.write], [.execute], [.user], [.user, .write], [.user, .execute]]
        for (index, permissions) in cases.enumerated() {
            let address = VirtualAddress(0x10_0000 + UInt64(index) * 0x1000)
            try table.map(address, to: PhysicalAddress(0x4100_0000), size: 0x1000, permissions: permissions, type: .normal,
                          frames: &frames, maintenance: tlb)
            #expect(table.translate(address)?.permissions == permissions)
        }
    }

    @Test func refusalsLeaveNothingBehind() throws {
        var (table, frames, tlb) = try Self.setUp()
        let tablesAtStart = frames.allocated
        #expect(throws: PageTableError.writableAndExecutable) {
            try table.map(VirtualAddress(0x1000), to: PhysicalAddress(0x4000_0000), size: 0x1000, permissions: [.write, .execute],
                          type: .normal, frames: &frames, maintenance: tlb)
        }
        #expect(throws: PageTableError.misaligned) {
            try table.map(VirtualAddress(0x1001), to: PhysicalAddress(0x4000_0000), size: 0x1000, permissions: .readWrite,
                          type: .normal, frames: &frames, maintenance: tlb)
        }
        #expect(throws: PageTableError.addressOutOfRange(VirtualAddress(0xFFFF_0000_0000_0000))) {
            try table.map(VirtualAddress(0xFFFF_0000_0000_0000), to: PhysicalAddress(0), size: 0x1000, permissions: .readWrite,
                          type: .normal, frames: &frames, maintenance: tlb)
        }
        try table.map(VirtualAddress(0x5000), to: PhysicalAddress(0x4000_0000), size: 0x1000, permissions: .readWrite,
                      type: .normal, frames: &frames, maintenance: tlb)
        let tablesWithOnePage = frames.allocated
        // Overlaps the page at 0x5000 in its middle: the first two pages get mapped, then rolled back.
        #expect(throws: PageTableError.alreadyMapped(VirtualAddress(0x5000))) {
            try table.map(VirtualAddress(0x3000), to: PhysicalAddress(0x4000_0000), size: 0x4000, permissions: .readWrite,
                          type: .normal, frames: &frames, maintenance: tlb)
        }
        #expect(table.translate(VirtualAddress(0x3000)) == nil && table.translate(VirtualAddress(0x4000)) == nil)
        #expect(frames.allocated == tablesWithOnePage)
        #expect(throws: PageTableError.notMapped(VirtualAddress(0x9000))) {
            try table.unmap(VirtualAddress(0x9000), size: 0x1000, frames: &frames, maintenance: tlb)
        }
        try table.unmap(VirtualAddress(0x5000), size: 0x1000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == tablesAtStart)
        #expect(tlb.addresses.contains(0x5000))
    }

    @Test func partialUnmapAndProtectSplitBlocks() throws {
        var (table, frames, tlb) = try Self.setUp()
        try table.map(VirtualAddress(0x20_0000), to: PhysicalAddress(0x4020_0000), size: 0x20_0000, permissions: .readWrite,
                      type: .normal, frames: &frames, maintenance: tlb)
        #expect(table.translate(VirtualAddress(0x20_0000))?.level == 2)
        try table.unmap(VirtualAddress(0x21_0000), size: 0x1000, frames: &frames, maintenance: tlb)
        #expect(table.translate(VirtualAddress(0x21_0000)) == nil)
        #expect(table.translate(VirtualAddress(0x21_1000)) == Translation(physical: PhysicalAddress(0x4021_1000), permissions: .readWrite,
                                                                          memoryType: .normal, level: 3, isGlobal: true))
        try table.protect(VirtualAddress(0x22_0000), size: 0x2000, permissions: .readOnly, type: .normalNonCacheable,
                          frames: &frames, maintenance: tlb)
        #expect(table.translate(VirtualAddress(0x22_1000))?.permissions == .readOnly)
        #expect(table.translate(VirtualAddress(0x22_1000))?.memoryType == .normalNonCacheable)
        #expect(table.translate(VirtualAddress(0x22_1000))?.physical == PhysicalAddress(0x4022_1000))
        #expect(table.translate(VirtualAddress(0x22_2000))?.permissions == .readWrite)
        #expect(tlb.addresses.contains(0x22_1000))
    }

    @Test func emptyTablesAreFreed() throws {
        var (table, frames, tlb) = try Self.setUp()
        let start = frames.allocated
        try table.map(VirtualAddress(0x7000_0000_0000), to: PhysicalAddress(0x4000_0000), size: 0x8000, permissions: .readWrite,
                      type: .normal, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == start + 3) // levels 1, 2 and 3
        try table.unmap(VirtualAddress(0x7000_0000_0000), size: 0x8000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == start)
        #expect(table.translate(VirtualAddress(0x7000_0000_0000)) == nil)
    }

    @Test func exhaustionIsAnErrorAndRollsBack() throws {
        var (table, frames, tlb) = try Self.setUp(limit: 64 << 10) // 16 frames in all
        let before = frames.allocated
        #expect(throws: PageTableError.outOfMemory) {
            for index in 0..<64 {
                try table.map(VirtualAddress(UInt64(index) << 39 | 0x1000), to: PhysicalAddress(0x4000_0000), size: 0x1000,
                              permissions: .readOnly, type: .normal, frames: &frames, maintenance: tlb)
            }
        }
        #expect(frames.allocated > before)
        table.freeTables(frames: &frames, includingRoot: false)
        #expect(frames.allocated == before)
    }

    /// Pages and blocks scattered over the whole lower half, on both sides of 2 MiB, 1 GiB and
    /// 512 GiB boundaries and at its very top.
    fileprivate static let scattered: [(virtual: UInt64, size: UInt64)] = [
        (0x1000, 0x1000),
        (0x1F_E000, 0x4000),                 // crosses a 2 MiB boundary
        (0x3FFF_F000, 0x2000),               // crosses a 1 GiB boundary
        (0x80_0000_0000 - 0x1000, 0x2000),   // crosses a 512 GiB boundary
        (0x1_0000_0000, 0x20_0000),          // a 2 MiB block
        (0xFFFF_FFFF_E000, 0x2000),          // the last two pages of the lower half
    ]

    fileprivate static func mapScattered(_ table: inout PageTable<RAM>, _ frames: inout TableFrames,
                                         _ tlb: Invalidations) throws {
        for (index, mapping) in scattered.enumerated() {
            try table.map(VirtualAddress(mapping.virtual), to: PhysicalAddress(0x4000_0000 + UInt64(index) << 24),
                          size: mapping.size, permissions: .readWrite, type: .normal, frames: &frames, maintenance: tlb)
        }
    }

    @Test func unmapPresentSkipsAbsentTables() throws {
        let ram = SparseRAM()
        var map = MemoryMap()
        try map.addRAM(range(0x4000_0000, 64 << 20))
        var frames = TableFrames(allocator: try FrameAllocator(memory: RAM(storage: ram), map: map))
        var table = try PageTable(half: .lower, memory: RAM(storage: ram), frames: &frames)
        let tlb = Invalidations()
        let tablesAtStart = frames.allocated
        try Self.mapScattered(&table, &frames, tlb)
        // Everything but the first page and the last: 256 TiB, 2^36 pages, so only a walk that
        // skips absent tables can finish.
        var released: [UInt64: UInt64] = [:]
        ram.accesses = 0
        let removed = try table.unmapPresent(VirtualAddress(0x2000), size: 0x1_0000_0000_0000 - 0x3000, frames: &frames,
                                             maintenance: tlb) { physical, size in released[physical.value] = size }
        #expect(ram.accesses < 20_000)
        #expect(removed == 10) // 4 + 2 + 2 + 1 pages and the 2 MiB block, one leaf
        let releasedBytes: UInt64 = 0x4000 + 0x2000 + 0x2000 + 0x20_0000 + 0x1000
        let blockBase: UInt64 = 0x4000_0000 + 4 << 24
        #expect(released.values.reduce(0, +) == releasedBytes)
        #expect(released[blockBase] == 0x20_0000)
        #expect(table.translate(VirtualAddress(0x1000)) != nil)
        #expect(table.translate(VirtualAddress(0xFFFF_FFFF_F000)) != nil)
        for (mapping) in Self.scattered.dropFirst() {
            #expect(table.translate(VirtualAddress(mapping.virtual)) == nil)
        }
        #expect(table.translate(VirtualAddress(0xFFFF_FFFF_E000)) == nil)
        #expect(tlb.wholeInvalidations == 0) // ten leaves: invalidated one by one
        // The rest, from the top down: nothing mapped is left and every table but the root is free.
        try table.unmapPresent(VirtualAddress(0xFFFF_FFFF_F000), size: 0x1000, frames: &frames, maintenance: tlb) { _, _ in }
        try table.unmapPresent(VirtualAddress(0), size: 0x1_0000_0000_0000, frames: &frames, maintenance: tlb) { _, _ in }
        #expect(table.translate(VirtualAddress(0x1000)) == nil)
        #expect(frames.allocated == tablesAtStart)
        // A second pass over nothing reads the root's 512 entries and nothing else.
        ram.accesses = 0
        #expect(try table.unmapPresent(VirtualAddress(0), size: 0x1_0000_0000_0000, frames: &frames, maintenance: tlb) { _, _ in } == 0)
        #expect(ram.accesses == 512)
    }

    /// `mapPages` maps scattered frames page by page across leaf tables, counts each table's
    /// entries right (unmapping everything frees every table), and is all or nothing: a page
    /// already mapped in the middle leaves nothing of the call behind and the old page as it was.
    @Test func mapPagesMapsScatteredFramesAcrossTablesAllOrNothing() throws {
        var (table, frames, tlb) = try Self.setUp()
        let tablesAtStart = frames.allocated
        // 40 pages from the 500th entry of a leaf table: into the next table.
        let start: UInt64 = 0x40_0000 + 500 * 0x1000
        let frame = { (page: Int) in PhysicalAddress(0x4100_0000 + UInt64((page * 7) % 40) * 0x1000) }
        try table.mapPages(VirtualAddress(start), count: 40, frame: frame, permissions: .readWrite, type: .normal,
                           global: false, frames: &frames, maintenance: tlb)
        for page in 0..<40 {
            #expect(table.translate(VirtualAddress(start + UInt64(page) * 0x1000 + 0x123))?.physical.value
                    == frame(page).value + 0x123)
        }
        #expect(table.translate(VirtualAddress(start - 0x1000)) == nil)
        #expect(table.translate(VirtualAddress(start + 40 * 0x1000)) == nil)
        var visited: [UInt64] = []
        table.forEachPresent(VirtualAddress(0), size: 0x1_0000_0000) { physical, size in
            #expect(size == 0x1000)
            visited.append(physical.value)
        }
        #expect(visited == (0..<40).map { frame($0).value })
        // A page in the way: the call fails naming it, and undoes its own pages.
        let other: UInt64 = 0x80_0000
        try table.map(VirtualAddress(other + 10 * 0x1000), to: PhysicalAddress(0x4200_0000), size: 0x1000,
                      permissions: .readOnly, type: .normal, frames: &frames, maintenance: tlb)
        #expect(throws: PageTableError.alreadyMapped(VirtualAddress(other + 10 * 0x1000))) {
            try table.mapPages(VirtualAddress(other), count: 20, frame: frame, permissions: .readWrite, type: .normal,
                               global: false, frames: &frames, maintenance: tlb)
        }
        for page in 0..<20 where page != 10 { #expect(table.translate(VirtualAddress(other + UInt64(page) * 0x1000)) == nil) }
        #expect(table.translate(VirtualAddress(other + 10 * 0x1000))?.physical.value == 0x4200_0000)
        #expect(throws: PageTableError.writableAndExecutable) {
            try table.mapPages(VirtualAddress(0x100_0000), count: 1, frame: frame, permissions: [.write, .execute],
                               type: .normal, global: false, frames: &frames, maintenance: tlb)
        }
        try table.unmap(VirtualAddress(other + 10 * 0x1000), size: 0x1000, frames: &frames, maintenance: tlb)
        try table.unmap(VirtualAddress(start), size: 40 * 0x1000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == tablesAtStart)
    }

    /// `prepareTables` makes the tables a range of pages needs and maps nothing: pages mapped
    /// there afterwards need no new table, and no removal of pages (its own or a neighbour's in
    /// the same leaf table) frees those tables until `unpinTables`. A block in the way fails it,
    /// and it undoes its own pins and tables.
    @Test func preparedTablesStayUntilUnpinned() throws {
        var (table, frames, tlb) = try Self.setUp()
        let tablesAtStart = frames.allocated
        // 20 pages from the 500th entry of a leaf table: two leaf tables under one level-2 table.
        let start: UInt64 = 0x7FFF_0000_0000 + 500 * 0x1000
        try table.prepareTables(VirtualAddress(start), count: 20, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == tablesAtStart + 4) // levels 1 and 2, and two leaf tables
        var present = 0
        table.forEachPresent(VirtualAddress(0), size: 0x1_0000_0000_0000) { _, _ in present += 1 }
        #expect(present == 0)
        let prepared = frames.allocated
        for page in [0, 11, 19] {
            try table.map(VirtualAddress(start + UInt64(page) * 0x1000), to: PhysicalAddress(0x4100_0000 + UInt64(page) * 0x1000),
                          size: 0x1000, permissions: .readWrite, type: .normal, global: false, allowBlocks: false,
                          frames: &frames, maintenance: tlb)
        }
        #expect(frames.allocated == prepared)
        #expect(table.translate(VirtualAddress(start + 11 * 0x1000 + 8))?.physical.value == 0x4100_B008)
        #expect(try table.unmapPresent(VirtualAddress(start), size: 20 * 0x1000, frames: &frames, maintenance: tlb) { _, _ in } == 3)
        #expect(frames.allocated == prepared)
        // A neighbour in the same leaf table, mapped and removed: the pinned table stays.
        try table.map(VirtualAddress(start - 0x2000), to: PhysicalAddress(0x4200_0000), size: 0x1000, permissions: .readOnly,
                      type: .normal, global: false, frames: &frames, maintenance: tlb)
        try table.unmap(VirtualAddress(start - 0x2000), size: 0x1000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == prepared)
        try table.map(VirtualAddress(start + 5 * 0x1000), to: PhysicalAddress(0x4100_5000), size: 0x1000,
                      permissions: .readWrite, type: .normal, global: false, allowBlocks: false, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == prepared)
        // Unpinned with a page still there, the tables stay for it; without, they go.
        table.unpinTables(VirtualAddress(start), count: 20, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == tablesAtStart + 3)
        #expect(table.translate(VirtualAddress(start + 5 * 0x1000))?.physical.value == 0x4100_5000)
        try table.unmap(VirtualAddress(start + 5 * 0x1000), size: 0x1000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated == tablesAtStart)
        // A 2 MiB block where the second leaf table would go: nothing of the call is left.
        try table.map(VirtualAddress(0x4000_0000), to: PhysicalAddress(0x4020_0000), size: 0x20_0000, permissions: .readOnly,
                      type: .normal, frames: &frames, maintenance: tlb)
        let withBlock = frames.allocated
        #expect(throws: PageTableError.alreadyMapped(VirtualAddress(0x4000_0000))) {
            try table.prepareTables(VirtualAddress(0x3FFF_F000), count: 2, frames: &frames, maintenance: tlb)
        }
        #expect(table.translate(VirtualAddress(0x4000_0000))?.physical.value == 0x4020_0000)
        #expect(frames.allocated == withBlock)
    }

    /// `forEachPresent` reads what a range holds, in order, skipping absent tables and giving the
    /// part of a block inside the range, and changes nothing.
    @Test func forEachPresentVisitsLeavesInOrderAndChangesNothing() throws {
        var (table, frames, tlb) = try Self.setUp()
        try Self.mapScattered(&table, &frames, tlb)
        var all: [(UInt64, UInt64)] = []
        table.forEachPresent(VirtualAddress(0), size: 0x1_0000_0000_0000) { all.append(($0.value, $1)) }
        let mappedBytes = Self.scattered.map(\.size).reduce(0, +)
        #expect(all.map(\.1).reduce(0, +) == mappedBytes)
        var again: [(UInt64, UInt64)] = []
        table.forEachPresent(VirtualAddress(0), size: 0x1_0000_0000_0000) { again.append(($0.value, $1)) }
        #expect(again.map(\.0) == all.map(\.0))
        // The middle 8 KiB of the 2 MiB block at 0x1_0000_0000.
        var part: [(UInt64, UInt64)] = []
        table.forEachPresent(VirtualAddress(0x1_0000_1000), size: 0x2000) { part.append(($0.value, $1)) }
        #expect(part.count == 1 && part[0].1 == 0x2000)
        #expect(part.first?.0 == table.translate(VirtualAddress(0x1_0000_1000))?.physical.value)
        var none = 0
        table.forEachPresent(VirtualAddress(0x1000), size: 0) { _, _ in none += 1 }
        table.forEachPresent(VirtualAddress(0x1800), size: 0x1000) { _, _ in none += 1 }
        #expect(none == 0)
    }

    /// Tearing a hierarchy down frees every table below the root, found through the counts the
    /// table descriptors keep (a table is searched only up to its last valid entry), so those
    /// counts must be right after maps, unmaps and a block split.
    @Test func freeTablesFreesEveryTableOfASparseHierarchy() throws {
        var (table, frames, tlb) = try Self.setUp()
        let tablesAtStart = frames.allocated
        try Self.mapScattered(&table, &frames, tlb)
        // One page out of the 2 MiB block: it is split into a full level-3 table (512 entries).
        try table.unmap(VirtualAddress(0x1_0000_1000), size: 0x1000, frames: &frames, maintenance: tlb)
        #expect(frames.allocated > tablesAtStart + 6)
        table.freeTables(frames: &frames, includingRoot: false)
        #expect(frames.allocated == tablesAtStart)
        for mapping in Self.scattered {
            #expect(table.translate(VirtualAddress(mapping.virtual)) == nil)
        }
    }

    @Test func unmapPresentRefusesWhatUnmapWould() throws {
        var (table, frames, tlb) = try Self.setUp()
        #expect(throws: PageTableError.misaligned) {
            try table.unmapPresent(VirtualAddress(0x1800), size: 0x1000, frames: &frames, maintenance: tlb) { _, _ in }
        }
        #expect(throws: PageTableError.addressOutOfRange(VirtualAddress(0xFFFF_FFFF_F000))) {
            try table.unmapPresent(VirtualAddress(0xFFFF_FFFF_F000), size: 0x2000, frames: &frames, maintenance: tlb) { _, _ in }
        }
        #expect(throws: PageTableError.addressOutOfRange(VirtualAddress(0xFFFF_FFFF_FFFF_F000))) {
            try table.unmapPresent(VirtualAddress(0xFFFF_FFFF_FFFF_F000), size: 0x2000, frames: &frames, maintenance: tlb) { _, _ in }
        }
        #expect(try table.unmapPresent(VirtualAddress(0x1000), size: 0, frames: &frames, maintenance: tlb) { _, _ in } == 0)
    }

    @Test func largeRemovalsInvalidateTheWholeSpaceInBatches() throws {
        var (table, frames, tlb) = try Self.setUp()
        let tablesAtStart = frames.allocated
        let pages: UInt64 = 1500 // three level-3 tables
        try table.map(VirtualAddress(0x40_0000), to: PhysicalAddress(0x4000_0000), size: pages * 4096, permissions: .readWrite,
                      type: .normal, allowBlocks: false, frames: &frames, maintenance: tlb)
        tlb.addresses = []
        var released = Set<UInt64>()
        var invalidationsAtRelease: [Int] = []
        let removed = try table.unmapPresent(VirtualAddress(0), size: 0x4000_0000, frames: &frames, maintenance: tlb) { physical, size in
            #expect(size == 4096)
            released.insert(physical.value)
            invalidationsAtRelease.append(tlb.wholeInvalidations + tlb.addresses.count)
        }
        #expect(removed == Int(pages))
        #expect(released == Set((0..<pages).map { 0x4000_0000 + $0 * 4096 }))
        // The first few one by one; then one whole invalidation per batch, each before its pages are released.
        #expect(tlb.addresses.count == PageTable<RAM>.leavesInvalidatedOneByOne)
        let batches = (Int(pages) - PageTable<RAM>.leavesInvalidatedOneByOne + RemovalBatch.capacity - 1) / RemovalBatch.capacity
        #expect(tlb.wholeInvalidations >= batches && tlb.wholeInvalidations <= batches + 1)
        #expect(invalidationsAtRelease.enumerated().allSatisfy { $0.element >= min($0.offset + 1, 16) + ($0.offset >= 16 ? 1 : 0) })
        #expect(frames.allocated == tablesAtStart)
    }

    @Test func unmapPresentSplitsBlocksAtTheEdges() throws {
        var (table, frames, tlb) = try Self.setUp()
        try table.map(VirtualAddress(0x4000_0000), to: PhysicalAddress(0x8000_0000), size: 0x4000_0000, permissions: .readWrite,
                      type: .normal, frames: &frames, maintenance: tlb)
        var released: UInt64 = 0
        // From the middle of the 1 GiB block to past its end.
        try table.unmapPresent(VirtualAddress(0x7FE0_1000), size: 0x10_0000_0000, frames: &frames, maintenance: tlb) { _, size in
            released += size
        }
        #expect(released == 0x8000_0000 - 0x7FE0_1000)
        #expect(table.translate(VirtualAddress(0x7FE0_0FF8))?.physical == PhysicalAddress(0xBFE0_0FF8))
        #expect(table.translate(VirtualAddress(0x4000_0000))?.level == 2)
        #expect(table.translate(VirtualAddress(0x7FE0_1000)) == nil)
    }

    /// Random map/unmap/protect of page ranges against a model of every page's translation.
    @Test func matchesAModel() async throws {
        let operations = Gen.int(in: 0...1_000_000).array(of: 1...60)
        await propertyCheck(count: 40, input: operations) { codes in
            guard var (table, frames, tlb) = try? Self.setUp(limit: 16 << 20) else { return }
            let tablesAtStart = frames.allocated
            var model: [UInt64: (physical: UInt64, permissions: MappingPermissions)] = [:] // page -> mapping
            let window: UInt64 = 0x40_0000 // 4 MiB of virtual space, two 2 MiB blocks
            for code in codes {
                let pages = UInt64(1 + code % 600)
                let first = UInt64(code / 7) % (window / 4096 - pages + 1)
                let virtual = first * 4096
                let permissions: MappingPermissions = code % 3 == 0 ? .readOnly : (code % 3 == 1 ? .readWrite : .readExecute)
                switch code % 4 {
                case 0, 1:
                    // Some mappings 2 MiB-aligned so the table uses blocks.
                    let aligned = code % 8 == 0 ? (virtual / 0x20_0000) * 0x20_0000 : virtual
                    let size = code % 8 == 0 ? 0x20_0000 : pages * 4096
                    let physical = 0x8000_0000 + aligned
                    let free = (0..<(size / 4096)).allSatisfy { model[aligned / 4096 + $0] == nil }
                    do {
                        try table.map(VirtualAddress(aligned), to: PhysicalAddress(physical), size: size, permissions: permissions,
                                      type: .normal, frames: &frames, maintenance: tlb)
                        #expect(free)
                        for page in 0..<(size / 4096) { model[aligned / 4096 + page] = (physical + page * 4096, permissions) }
                    } catch {
                        #expect(!free)
                    }
                case 2:
                    let mapped = (0..<pages).allSatisfy { model[first + $0] != nil }
                    if mapped && code % 5 != 0 {
                        #expect((try? table.unmap(VirtualAddress(virtual), size: pages * 4096, frames: &frames, maintenance: tlb)) != nil)
                    } else {
                        var released: UInt64 = 0
                        let present = (0..<pages).filter { model[first + $0] != nil }.count
                        #expect((try? table.unmapPresent(VirtualAddress(virtual), size: pages * 4096, frames: &frames,
                                                         maintenance: tlb) { _, size in released += size }) != nil)
                        // Blocks reach past the range only before they are split, so what comes back
                        // is exactly the pages that were there.
                        #expect(released == UInt64(present) * 4096)
                    }
                    for page in 0..<pages { model[first + page] = nil }
                default:
                    let mapped = (0..<pages).allSatisfy { model[first + $0] != nil }
                    if mapped {
                        #expect((try? table.protect(VirtualAddress(virtual), size: pages * 4096, permissions: permissions, type: .normal,
                                                    frames: &frames, maintenance: tlb)) != nil)
                        for page in 0..<pages { model[first + page]?.permissions = permissions }
                    }
                }
            }
            for page in 0..<(window / 4096) {
                let translation = table.translate(VirtualAddress(page * 4096 + 8))
                if let expected = model[page] {
                    #expect(translation?.physical == PhysicalAddress(expected.physical + 8))
                    #expect(translation?.permissions == expected.permissions)
                } else {
                    #expect(translation == nil)
                }
            }
            for page in model.keys.sorted() {
                try? table.unmap(VirtualAddress(page * 4096), size: 4096, frames: &frames, maintenance: tlb)
            }
            #expect(frames.allocated == tablesAtStart)
        }
    }
}

/// Pages for the heap from host memory, recorded so `pages(containing:)` can answer.
private struct HostPages: HeapBackend {
    final class Book {
        var runs: [(start: UnsafeMutableRawPointer, count: Int, kind: HeapPageKind)] = []
        var limit = Int.max
        var pagesInUse = 0
    }
    let book = Book()

    mutating func allocatePages(count: Int, alignment: Int, kind: HeapPageKind) -> UnsafeMutableRawPointer? {
        guard book.pagesInUse + count <= book.limit else { return nil }
        let start = UnsafeMutableRawPointer.allocate(byteCount: count * 4096, alignment: max(alignment, 1) * 4096)
        book.runs.append((start, count, kind))
        book.pagesInUse += count
        return start
    }

    mutating func freePages(_ start: UnsafeMutableRawPointer) {
        guard let index = book.runs.firstIndex(where: { $0.start == start }) else { return }
        book.pagesInUse -= book.runs[index].count
        book.runs.remove(at: index)
        start.deallocate()
    }

    func pages(containing pointer: UnsafeMutableRawPointer) -> (start: UnsafeMutableRawPointer, count: Int, kind: HeapPageKind)? {
        for run in book.runs where pointer >= run.start && pointer < run.start + run.count * 4096 { return run }
        return nil
    }
}

private struct AllocationFailed: Error {}

extension KernelHeap {
    /// `allocate`, failing the test when it returns nil.
    mutating func take(_ size: Int, _ alignment: Int) throws -> UnsafeMutableRawPointer {
        guard let block = allocate(size: size, alignment: alignment) else { throw AllocationFailed() }
        return block
    }
}

@Suite struct KernelHeapTests {
    @Test(arguments: [false, true])
    func blocksAreDistinctAlignedAndReturned(poisoning: Bool) throws {
        let backend = HostPages()
        var heap = KernelHeap(backend: backend, poisoning: poisoning)
        var blocks: [(UnsafeMutableRawPointer, Int)] = []
        for (index, size) in [0, 1, 16, 17, 64, 100, 2048, 2049, 4096, 10000, 300].enumerated() {
            for alignment in [1, 16, 256, 4096] {
                let block = try heap.take(size, alignment)
                #expect(UInt(bitPattern: block) % UInt(alignment) == 0)
                #expect((heap.usableSize(of: block) ?? 0) >= size)
                block.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: index * 7 + alignment), count: size)
                blocks.append((block, size))
            }
        }
        for (index, (block, size)) in blocks.enumerated() {
            let expected = UInt8(truncatingIfNeeded: (index / 4) * 7 + [1, 16, 256, 4096][index % 4])
            #expect((0..<size).allSatisfy { block.load(fromByteOffset: $0, as: UInt8.self) == expected })
        }
        #expect(heap.statistics.blocksInUse == UInt64(blocks.count))
        for (block, _) in blocks { try heap.free(block) }
        #expect(heap.statistics.blocksInUse == 0 && heap.statistics.bytesInUse == 0)
        #expect(heap.statistics.largePages == 0)
        #expect(heap.statistics.slabPages <= 1 + 1 + 1 + 1 + 1 + 2 + 4 + 8) // at most one kept slab per class
        #expect(!heap.detectedCorruption)
    }

    @Test func badFreesAreErrors() throws {
        var heap = KernelHeap(backend: HostPages(), poisoning: false)
        let block = try heap.take(64, 8)
        let large = try heap.take(8192, 8)
        #expect(throws: HeapError.notBlockStart) { try heap.free(block + 8) }
        #expect(throws: HeapError.notBlockStart) { try heap.free(large + 4096) }
        var local = 0
        #expect(throws: HeapError.notHeapPointer) { try withUnsafeMutablePointer(to: &local) { try heap.free(UnsafeMutableRawPointer($0)) } }
        let other = try heap.take(64, 8) // keeps the slab alive
        try heap.free(block)
        #expect(throws: HeapError.doubleFree) { try heap.free(block) }
        try heap.free(other)
        try heap.free(large)
    }

    @Test func writeAfterFreeIsDetectedWithPoisoning() throws {
        var heap = KernelHeap(backend: HostPages(), poisoning: true)
        let keep = try heap.take(32, 8)
        let block = try heap.take(32, 8)
        try heap.free(block)
        block.storeBytes(of: UInt64(0x4141_4141_4141_4141), toByteOffset: 8, as: UInt64.self)
        _ = heap.allocate(size: 32, alignment: 8)
        #expect(heap.detectedCorruption)
        _ = keep
    }

    @Test func exhaustionReturnsNilAndTheHeapStaysUsable() throws {
        let backend = HostPages()
        backend.book.limit = 8
        var heap = KernelHeap(backend: backend, poisoning: false)
        var blocks: [UnsafeMutableRawPointer] = []
        while let block = heap.allocate(size: 1000, alignment: 8) { blocks.append(block) }
        #expect(!blocks.isEmpty && heap.statistics.failedAllocations == 1)
        #expect(heap.allocate(size: 1 << 20, alignment: 8) == nil)
        for block in blocks { try heap.free(block) }
        #expect(heap.statistics.blocksInUse == 0)
        #expect(heap.allocate(size: 1000, alignment: 8) != nil)
    }

    /// Sizes and alignments whose page rounding would overflow are refused, and the heap goes on.
    @Test func sizesNearTheLimitAreRefused() throws {
        let backend = HostPages()
        backend.book.limit = 1 << 20
        var heap = KernelHeap(backend: backend, poisoning: false)
        for size in [Int.max, Int.max - 4095, Int.max - 4096, Int.max / 2 + 1] {
            #expect(heap.allocate(size: size, alignment: 8) == nil)
        }
        #expect(heap.statistics.failedAllocations == 4)
        let block = try heap.take(8192, 8)
        try heap.free(block)
        #expect(heap.statistics.blocksInUse == 0 && heap.statistics.largePages == 0)
    }

    /// Random allocations and frees against a model of live blocks and their contents.
    @Test func matchesAModel() async {
        let operations = Gen.int(in: 0...1_000_000).array(of: 1...300)
        await propertyCheck(count: 40, input: operations) { codes in
            let backend = HostPages()
            var heap = KernelHeap(backend: backend, poisoning: codes.count % 2 == 0)
            var live: [(block: UnsafeMutableRawPointer, size: Int, fill: UInt8)] = []
            for code in codes {
                if code % 3 != 0 || live.isEmpty {
                    let size = code % 9000
                    let alignment = 1 << (code % 13)
                    guard let block = heap.allocate(size: size, alignment: alignment) else {
                        Issue.record("allocation of \(size) bytes failed")
                        continue
                    }
                    #expect(UInt(bitPattern: block) % UInt(alignment) == 0)
                    for other in live where size > 0 && other.size > 0 {
                        #expect(block + size <= other.block || other.block + other.size <= block)
                    }
                    let fill = UInt8(truncatingIfNeeded: code)
                    block.initializeMemory(as: UInt8.self, repeating: fill, count: size)
                    live.append((block, size, fill))
                } else {
                    let victim = live.remove(at: code % live.count)
                    #expect((0..<victim.size).allSatisfy { victim.block.load(fromByteOffset: $0, as: UInt8.self) == victim.fill })
                    #expect((try? heap.free(victim.block)) != nil)
                }
                #expect(heap.statistics.blocksInUse == UInt64(live.count))
            }
            for entry in live { try? heap.free(entry.block) }
            #expect(heap.statistics.blocksInUse == 0 && heap.statistics.largePages == 0 && !heap.detectedCorruption)
            #expect(backend.book.pagesInUse == Int(heap.statistics.slabPages))
        }
    }
}
