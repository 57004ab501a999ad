// The physical frame allocator. Each RAM region (a zone) has a hierarchical bitmap: level 0 has
// one bit per frame (1 = free), each level above one bit per word of the level below (1 = that
// word has a free frame), up to a single top word. Finding a free frame descends the levels, so
// it costs O(log64 n): four steps for 16 GiB. Beside the bitmap, a record per frame says who owns
// it and how long its allocation is, which lets `free` reject double frees, frames that were never
// handed out and pointers into the middle of an allocation, and keeps statistics by purpose.
// All metadata lives in RAM the allocator manages itself, reached through `PhysicalMemory`.
//
// Single frames freed are kept, up to `FrameAllocator.cacheCapacity`, in a stack beside the zone
// table instead of going back to the bitmap, and single-frame requests take from it first: most
// frames a kernel frees are single pages (page tables, a memory object's pages, slabs) that are
// asked for again soon, and the stack makes both a push or a pop and a record write, with no
// bitmap search or update. A cached frame is free in every other sense (its record says so, the
// statistics count it free, freeing it again is a double free); its bitmap bit stays clear, so
// the search never finds it, and a contiguous request that finds no run puts the stack back into
// the bitmap and searches again.

public enum FramePurpose: UInt8, CaseIterable {
    case free = 0
    /// Firmware and device-tree reservations (/memreserve/, /reserved-memory).
    case reserved
    case kernelImage
    /// Device tree blob and initial ramdisk handed over by the loader.
    case bootData
    /// This allocator's own bitmaps and frame records.
    case allocatorMetadata
    case pageTables
    /// Kernel heap slabs.
    case heap
    /// Kernel heap blocks too large or too aligned for a slab.
    case heapPages
    case kernelStack
    case user
    /// Anything else a kernel subsystem asks for (buffers, tests).
    case general

    public var name: StaticString {
        switch self {
        case .free: return "free"
        case .reserved: return "reserved"
        case .kernelImage: return "kernel image"
        case .bootData: return "boot data"
        case .allocatorMetadata: return "allocator metadata"
        case .pageTables: return "page tables"
        case .heap: return "heap slabs"
        case .heapPages: return "heap pages"
        case .kernelStack: return "kernel stacks"
        case .user: return "user memory"
        case .general: return "general"
        }
    }

    /// Purposes that describe memory handed over at boot rather than allocated.
    var isBootReservation: Bool {
        switch self {
        case .reserved, .kernelImage, .bootData, .allocatorMetadata: return true
        default: return false
        }
    }
}

public enum FrameAllocatorError: Error, Equatable {
    /// No free run of the requested size and alignment.
    case outOfMemory
    /// The frame is in no RAM region this allocator manages.
    case outsideRAM(PageFrame)
    /// The frame is already free.
    case doubleFree(PageFrame)
    /// The frame was reserved at boot and never handed out.
    case notAllocated(PageFrame)
    /// The frame is inside an allocation but not its first frame.
    case notAllocationStart(PageFrame)
    /// A count of zero, an alignment that is not a power of two, or `.free` as a purpose.
    case invalidRequest
    /// More RAM regions or reservations than a `MemoryMap` holds.
    case tooManyRanges
    /// No free run of RAM is large enough for the allocator's own metadata.
    case noRoomForMetadata
}

/// RAM and reserved ranges, collected at boot before the allocator exists (so without a heap).
public struct MemoryMap {
    public static let maximumRegions = 16
    public static let maximumReservations = 32

    var regions = InlineArray<16, PhysicalRange>(repeating: PhysicalRange(start: PhysicalAddress(0), size: 0))
    public private(set) var regionCount = 0
    var reservations = InlineArray<32, PhysicalRange>(repeating: PhysicalRange(start: PhysicalAddress(0), size: 0))
    var reservationPurposes = InlineArray<32, FramePurpose>(repeating: .reserved)
    public private(set) var reservationCount = 0

    public init() {}

    public mutating func addRAM(_ range: PhysicalRange) throws(FrameAllocatorError) {
        guard regionCount < Self.maximumRegions else { throw .tooManyRanges }
        // Frame 0 is never used: before the MMU the kernel reaches RAM (its page tables, the
        // allocator's records) at physical addresses, and address 0 is no pointer.
        var usable = range
        if usable.start.value < pageSize {
            let cut = min(pageSize - usable.start.value, usable.size)
            usable = PhysicalRange(start: PhysicalAddress(pageSize), size: usable.size - cut)
        }
        guard usable.size > 0 else { return }
        regions[regionCount] = usable
        regionCount += 1
    }

    public mutating func reserve(_ range: PhysicalRange, for purpose: FramePurpose) throws(FrameAllocatorError) {
        guard purpose != .free else { throw .invalidRequest }
        guard reservationCount < Self.maximumReservations else { throw .tooManyRanges }
        reservations[reservationCount] = range
        reservationPurposes[reservationCount] = purpose
        reservationCount += 1
    }

    public func region(_ index: Int) -> PhysicalRange { regions[index] }

    public func reservation(_ index: Int) -> (range: PhysicalRange, purpose: FramePurpose) {
        (reservations[index], reservationPurposes[index])
    }

    /// Whether any reservation overlaps `[start, end)`; returns the end of the first one that does.
    func firstReservationEnd(overlapping start: UInt64, _ end: UInt64) -> UInt64? {
        for index in 0..<reservationCount {
            let range = reservations[index]
            let reservedEnd = range.start.value &+ range.size
            if start < reservedEnd && end > range.start.value { return reservedEnd }
        }
        return nil
    }
}

public struct FrameStatistics: Equatable {
    public var totalFrames: UInt64 = 0
    public var freeFrames: UInt64 = 0
    var perPurpose = InlineArray<16, UInt64>(repeating: 0)

    public var usedFrames: UInt64 { totalFrames - freeFrames }

    public func frames(for purpose: FramePurpose) -> UInt64 { perPurpose[Int(purpose.rawValue)] }

    public static func == (lhs: FrameStatistics, rhs: FrameStatistics) -> Bool {
        guard lhs.totalFrames == rhs.totalFrames, lhs.freeFrames == rhs.freeFrames else { return false }
        for purpose in FramePurpose.allCases where lhs.frames(for: purpose) != rhs.frames(for: purpose) { return false }
        return true
    }
}

/// Per-frame record, 8 bytes: [7:0] purpose, [8] first frame of an allocation,
/// [63:32] for the first frame the allocation's length in frames, for the others the distance
/// back to the first frame.
struct FrameRecord {
    var raw: UInt64

    static let headFlag: UInt64 = 1 << 8

    init(raw: UInt64) { self.raw = raw }
    init(purpose: FramePurpose, isHead: Bool, value: UInt32) {
        raw = UInt64(purpose.rawValue) | (isHead ? Self.headFlag : 0) | UInt64(value) << 32
    }

    var purpose: FramePurpose { FramePurpose(rawValue: UInt8(truncatingIfNeeded: raw)) ?? .reserved }
    var isHead: Bool { raw & Self.headFlag != 0 }
    var value: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) }
}

/// One RAM region's bookkeeping. Only scalars, so that reading a zone copies a few words: the
/// bitmap levels are laid out back to back from `bitmapAddress`, level 0 first, and their
/// offsets are computed rather than stored.
struct Zone {
    var baseFrame: UInt64 = 0
    var frameCount: UInt64 = 0
    var freeCount: UInt64 = 0
    var bitmapAddress: UInt64 = 0
    var recordsAddress: UInt64 = 0
    var levelCount = 0

    init() {}

    init(baseFrame: UInt64, frameCount: UInt64) {
        self.baseFrame = baseFrame
        self.frameCount = frameCount
        levelCount = 1
        while Self.words(frames: frameCount, level: levelCount - 1) > 1 { levelCount += 1 }
    }

    func contains(_ frame: UInt64) -> Bool { frame >= baseFrame && frame - baseFrame < frameCount }

    /// Words in `level`: one bit per frame at level 0, one bit per word of the level below above it.
    static func words(frames: UInt64, level: Int) -> Int {
        let bitsPerWord = UInt64(6 * (level + 1))
        return Int((frames + (UInt64(1) << bitsPerWord) - 1) >> bitsPerWord)
    }

    func levelWords(_ level: Int) -> Int { Self.words(frames: frameCount, level: level) }

    func levelAddress(_ level: Int) -> UInt64 {
        var address = bitmapAddress
        for below in 0..<level { address += UInt64(levelWords(below)) * 8 }
        return address
    }

    var bitmapBytes: UInt64 { levelAddress(levelCount) - bitmapAddress }

    /// Metadata bytes for `frames` frames: every bitmap level plus the frame records.
    static func metadataBytes(frames: UInt64) -> UInt64 {
        var zone = Zone(baseFrame: 0, frameCount: frames)
        zone.bitmapAddress = 0
        return zone.bitmapBytes + frames * 8
    }
}

public struct FrameAllocator<Memory: PhysicalMemory> {
    public static var maximumZones: Int { MemoryMap.maximumRegions }

    let memory: Memory
    /// Physical address of the zone table, the first part of the metadata block. Zones live in
    /// RAM rather than in this struct so that the struct stays a few words and is never copied
    /// wholesale on the allocation path.
    var zoneTable: UInt64 = 0
    var zoneCount = 0
    public private(set) var statistics = FrameStatistics()
    /// The cache of free single frames: `cacheCount` entries from `cacheAddress`, each a frame
    /// number shifted left by 4 with its zone's index in the low bits.
    var cacheAddress: UInt64 = 0
    var cacheCount = 0
    /// Enough for a process's worth of page tables and small objects; 512 bytes of metadata.
    public static var cacheCapacity: Int { 64 }
    public var cachedFramesForTesting: Int { cacheCount }

    func zone(_ index: Int) -> Zone {
        memory.pointer(to: PhysicalAddress(zoneTable + UInt64(index * MemoryLayout<Zone>.stride))).load(as: Zone.self)
    }

    func setZone(_ index: Int, _ zone: Zone) {
        memory.pointer(to: PhysicalAddress(zoneTable + UInt64(index * MemoryLayout<Zone>.stride))).storeAligned(zone)
    }

    /// An allocator with no memory: every request fails with `.outOfMemory` until it is replaced.
    public init(memory: Memory) {
        self.memory = memory
    }

    /// Takes every page-aligned frame of every RAM region in `map`, minus its reservations.
    /// The allocator's metadata is placed in the first free run large enough to hold it.
    public init(memory: Memory, map: MemoryMap) throws(FrameAllocatorError) {
        self.memory = memory
        var zones = InlineArray<16, Zone>(repeating: Zone())
        var count = 0
        var metadataBytes: UInt64 = 0
        for index in 0..<map.regionCount {
            let region = map.region(index)
            guard let start = alignUp(region.start.value, to: pageSize) else { continue }
            let end = alignDown(region.start.value &+ region.size, to: pageSize)
            guard end > start, region.start.value &+ region.size >= region.start.value else { continue }
            let zone = Zone(baseFrame: start >> pageShift, frameCount: (end - start) >> pageShift)
            zones[count] = zone
            count += 1
            metadataBytes += Zone.metadataBytes(frames: zone.frameCount)
        }
        let tableBytes = UInt64(count * MemoryLayout<Zone>.stride + 7) & ~7
        metadataBytes += tableBytes + UInt64(Self.cacheCapacity * 8)
        let metadataPages = (metadataBytes + pageSize - 1) >> pageShift
        guard let metadataStart = Self.findFreeRun(pages: metadataPages, zones: zones, zoneCount: count, map: map) else {
            throw .noRoomForMetadata
        }

        zoneTable = metadataStart
        zoneCount = count
        cacheAddress = metadataStart + tableBytes
        var cursor = cacheAddress + UInt64(Self.cacheCapacity * 8)
        for index in 0..<count {
            var zone = zones[index]
            zone.bitmapAddress = cursor
            cursor += zone.bitmapBytes
            zone.recordsAddress = cursor
            cursor += zone.frameCount * 8
            setZone(index, zone)
            statistics.totalFrames += zone.frameCount
        }

        for index in 0..<count {
            initializeZone(index, map: map)
        }
        for page in 0..<metadataPages {
            let frame = (metadataStart >> pageShift) + page
            if let zoneIndex = zoneIndex(of: frame) {
                takeFrame(frame, zone: zoneIndex, record: FrameRecord(purpose: .allocatorMetadata, isHead: page == 0, value: page == 0 ? UInt32(metadataPages) : UInt32(page)))
            }
        }
    }

    /// First page-aligned run of `pages` frames inside one region and outside every reservation.
    static func findFreeRun(pages: UInt64, zones: InlineArray<16, Zone>, zoneCount: Int, map: MemoryMap) -> UInt64? {
        let length = pages << pageShift
        for index in 0..<zoneCount {
            let zone = zones[index]
            var start = zone.baseFrame << pageShift
            let end = (zone.baseFrame + zone.frameCount) << pageShift
            while start + length <= end {
                guard let blockedUntil = map.firstReservationEnd(overlapping: start, start + length) else { return start }
                guard let next = alignUp(blockedUntil, to: pageSize) else { break }
                start = next
            }
        }
        return nil
    }

    /// Marks all of a zone free, then takes out the reserved frames; summary levels are built
    /// bottom-up from level 0.
    private mutating func initializeZone(_ index: Int, map: MemoryMap) {
        var zone = zone(index)
        // One pointer per record: `PhysicalMemory` promises contiguity only within a page.
        for frame in 0..<zone.frameCount {
            memory.pointer(to: PhysicalAddress(zone.recordsAddress + frame * 8)).storeAligned(UInt64(0))
        }
        for level in 0..<zone.levelCount {
            let bits = level == 0 ? zone.frameCount : UInt64(zone.levelWords(level - 1))
            for word in 0..<zone.levelWords(level) {
                let remaining = bits - UInt64(word) * 64
                storeWord(level: level, index: word, zone: zone, remaining >= 64 ? UInt64.max : (UInt64(1) << remaining) - 1)
            }
        }
        zone.freeCount = zone.frameCount
        setZone(index, zone)
        statistics.freeFrames += zone.frameCount

        let zoneEnd = zone.baseFrame + zone.frameCount
        for reservation in 0..<map.reservationCount {
            let (range, purpose) = map.reservation(reservation)
            let first = max(range.start.value >> pageShift, zone.baseFrame)
            let last = min((alignUp(range.start.value &+ range.size, to: pageSize) ?? UInt64.max) >> pageShift, zoneEnd)
            guard first < last else { continue }
            for frame in first..<last where record(of: frame, zone: zone).purpose == .free {
                takeFrame(frame, zone: index, record: FrameRecord(purpose: purpose, isHead: false, value: 0))
            }
        }
    }

    // MARK: Bitmap access

    @inline(__always)
    private func word(level: Int, index: Int, zone: Zone) -> UInt64 {
        word(at: zone.levelAddress(level), index: index)
    }

    @inline(__always)
    private func word(at levelStart: UInt64, index: Int) -> UInt64 {
        memory.pointer(to: PhysicalAddress(levelStart + UInt64(index) * 8)).load(as: UInt64.self)
    }

    @inline(__always)
    private func storeWord(level: Int, index: Int, zone: Zone, _ value: UInt64) {
        memory.pointer(to: PhysicalAddress(zone.levelAddress(level) + UInt64(index) * 8)).storeAligned(value)
    }

    func record(of frame: UInt64, zone: Zone) -> FrameRecord {
        FrameRecord(raw: memory.pointer(to: PhysicalAddress(zone.recordsAddress + (frame - zone.baseFrame) * 8)).load(as: UInt64.self))
    }

    private func setRecord(_ record: FrameRecord, of frame: UInt64, zone: Zone) {
        memory.pointer(to: PhysicalAddress(zone.recordsAddress + (frame - zone.baseFrame) * 8)).storeAligned(record.raw)
    }

    /// The zone in place, for reading a field or two without copying all of it.
    @inline(__always)
    private func zonePointer(_ index: Int) -> UnsafeMutablePointer<Zone> {
        memory.pointer(to: PhysicalAddress(zoneTable + UInt64(index * MemoryLayout<Zone>.stride)))
            .assumingMemoryBound(to: Zone.self)
    }

    /// Inlined: called on a mutating path, a call would copy the whole allocator to pass it.
    @inline(__always)
    func zoneIndex(of frame: UInt64) -> Int? {
        for index in 0..<zoneCount {
            let zone = zonePointer(index)
            if frame &- zone.pointee.baseFrame < zone.pointee.frameCount { return index }
        }
        return nil
    }

    /// The record word of `frame` in zone `index`, in place.
    @inline(__always)
    private func recordPointer(of frame: UInt64, zone index: Int) -> UnsafeMutablePointer<UInt64> {
        let zone = zonePointer(index)
        return memory.pointer(to: PhysicalAddress(zone.pointee.recordsAddress + (frame &- zone.pointee.baseFrame) &* 8))
            .assumingMemoryBound(to: UInt64.self)
    }

    // MARK: The cache of free single frames

    @inline(__always)
    private func cacheSlot(_ slot: Int) -> UnsafeMutablePointer<UInt64> {
        memory.pointer(to: PhysicalAddress(cacheAddress + UInt64(slot) * 8)).assumingMemoryBound(to: UInt64.self)
    }

    /// Puts every cached frame back into its zone's bitmap (each is counted free already).
    private mutating func drainCache() {
        while cacheCount > 0 {
            cacheCount -= 1
            let entry = cacheSlot(cacheCount).pointee
            setBits(of: entry >> 4, zone: Int(entry & 15))
        }
    }

    /// Clears the frame's bit (it must be free) and propagates emptiness upwards.
    private mutating func takeFrame(_ frame: UInt64, zone index: Int, record: FrameRecord) {
        var zone = zone(index)
        var bit = Int(frame - zone.baseFrame)
        for level in 0..<zone.levelCount {
            let wordIndex = bit / 64
            let value = word(level: level, index: wordIndex, zone: zone)
            let updated = value & ~(UInt64(1) << UInt64(bit % 64))
            storeWord(level: level, index: wordIndex, zone: zone, updated)
            if updated != 0 { break }
            bit = wordIndex
        }
        let old = self.record(of: frame, zone: zone)
        if old.purpose == .free {
            zone.freeCount -= 1
            setZone(index, zone)
            statistics.freeFrames -= 1
        } else {
            statistics.perPurpose[Int(old.purpose.rawValue)] -= 1
        }
        statistics.perPurpose[Int(record.purpose.rawValue)] += 1
        setRecord(record, of: frame, zone: zone)
    }

    /// Sets the frame's bit and propagates availability upwards; the zone counts one more free.
    private mutating func setBits(of frame: UInt64, zone index: Int) {
        var zone = zone(index)
        var bit = Int(frame - zone.baseFrame)
        for level in 0..<zone.levelCount {
            let wordIndex = bit / 64
            let value = word(level: level, index: wordIndex, zone: zone)
            storeWord(level: level, index: wordIndex, zone: zone, value | UInt64(1) << UInt64(bit % 64))
            if value != 0 { break }
            bit = wordIndex
        }
        zone.freeCount += 1
        setZone(index, zone)
    }

    /// Marks one frame of a run free: its record, the statistics and the bitmap (the cache holds
    /// single frames only, which `free` releases itself).
    private mutating func releaseFrame(_ frame: UInt64, zone index: Int, purpose: FramePurpose) {
        statistics.perPurpose[Int(purpose.rawValue)] -= 1
        statistics.freeFrames += 1
        recordPointer(of: frame, zone: index).pointee = 0
        setBits(of: frame, zone: index)
    }

    /// The first free frame at or after `start` (zone-relative), found through the summary levels.
    /// Each level's start is carried from one level to the next (the levels lie back to back),
    /// not recomputed from the bottom for every word read: this runs on every allocation.
    func nextFree(in zone: Zone, from start: UInt64) -> UInt64? {
        guard start < zone.frameCount else { return nil }
        var level = 0
        var levelStart = zone.bitmapAddress
        var levelWords = zone.levelWords(0)
        var position = Int(start)
        // Climb while the rest of the current word at this level is empty.
        while true {
            let wordIndex = position &>> 6
            guard wordIndex < levelWords else { return nil }
            let masked = word(at: levelStart, index: wordIndex) & (UInt64.max &<< UInt64(position & 63))
            if masked != 0 {
                position = wordIndex &<< 6 | masked.trailingZeroBitCount
                break
            }
            if level + 1 == zone.levelCount { return nil }
            levelStart += UInt64(levelWords) * 8
            level += 1
            levelWords = zone.levelWords(level)
            position = wordIndex + 1
        }
        // Descend to level 0 taking the first free bit of each word.
        while level > 0 {
            level -= 1
            levelStart -= UInt64(zone.levelWords(level)) * 8
            let value = word(at: levelStart, index: position)
            position = position &<< 6 | value.trailingZeroBitCount
        }
        return UInt64(position)
    }

    // MARK: Allocation

    /// One frame.
    public mutating func allocate(_ purpose: FramePurpose) throws(FrameAllocatorError) -> PageFrame {
        guard purpose != .free else { throw .invalidRequest }
        if cacheCount > 0 {
            // A cached frame is counted free, so neither count can wrap.
            cacheCount &-= 1
            let entry = cacheSlot(cacheCount).pointee
            let frame = entry >> 4
            recordPointer(of: frame, zone: Int(entry & 15)).pointee = FrameRecord(purpose: purpose, isHead: true, value: 1).raw
            statistics.freeFrames &-= 1
            statistics.perPurpose[Int(purpose.rawValue)] &+= 1
            return PageFrame(number: frame)
        }
        for index in 0..<zoneCount {
            let zone = zone(index)
            guard zone.freeCount > 0, let offset = nextFree(in: zone, from: 0) else { continue }
            let frame = zone.baseFrame + offset
            takeFrame(frame, zone: index, record: FrameRecord(purpose: purpose, isHead: true, value: 1))
            return PageFrame(number: frame)
        }
        throw .outOfMemory
    }

    /// `count` physically contiguous frames whose first frame number is a multiple of
    /// `alignment` (a power of two, in frames: 512 for a 2 MiB block).
    public mutating func allocate(count: Int, alignment: Int = 1, _ purpose: FramePurpose) throws(FrameAllocatorError) -> PageFrame {
        guard count > 0, count <= Int(UInt32.max), alignment > 0, alignment & (alignment - 1) == 0, purpose != .free else {
            throw .invalidRequest
        }
        if count == 1 && alignment == 1 { return try allocate(purpose) }
        if let first = takeRun(count: UInt64(count), alignment: UInt64(alignment), purpose) { return first }
        // The run may need frames that wait in the cache.
        guard cacheCount > 0 else { throw .outOfMemory }
        drainCache()
        guard let first = takeRun(count: UInt64(count), alignment: UInt64(alignment), purpose) else { throw .outOfMemory }
        return first
    }

    /// The first run of `length` free frames (in the bitmap) aligned to `align`, taken.
    private mutating func takeRun(count length: UInt64, alignment align: UInt64, _ purpose: FramePurpose) -> PageFrame? {
        for index in 0..<zoneCount {
            let zone = zone(index)
            guard zone.freeCount >= length else { continue }
            var candidate: UInt64 = 0
            while let free = nextFree(in: zone, from: candidate) {
                guard let aligned = alignUp(zone.baseFrame + free, to: align) else { break }
                let start = aligned - zone.baseFrame
                guard start + length <= zone.frameCount else { break }
                if let used = firstUsed(in: zone, from: start, count: length) {
                    candidate = used + 1
                    continue
                }
                let first = zone.baseFrame + start
                for offset in 0..<length {
                    let record = offset == 0
                        ? FrameRecord(purpose: purpose, isHead: true, value: UInt32(length))
                        : FrameRecord(purpose: purpose, isHead: false, value: UInt32(offset))
                    takeFrame(first + offset, zone: index, record: record)
                }
                return PageFrame(number: first)
            }
        }
        return nil
    }

    /// The first used frame in `[start, start + count)` (zone-relative), checking whole words.
    private func firstUsed(in zone: Zone, from start: UInt64, count: UInt64) -> UInt64? {
        var position = start
        let end = start + count
        while position < end {
            let wordIndex = Int(position / 64)
            let bitOffset = position % 64
            let span = min(64 - bitOffset, end - position)
            let mask = (span == 64 ? UInt64.max : (UInt64(1) << span) - 1) << bitOffset
            let used = ~word(level: 0, index: wordIndex, zone: zone) & mask
            if used != 0 { return UInt64(wordIndex) * 64 + UInt64(used.trailingZeroBitCount) }
            position += span
        }
        return nil
    }

    /// Frees the allocation that starts at `frame`, however many frames it has.
    public mutating func free(_ frame: PageFrame) throws(FrameAllocatorError) {
        guard let index = zoneIndex(of: frame.number) else { throw .outsideRAM(frame) }
        let record = recordPointer(of: frame.number, zone: index)
        let head = FrameRecord(raw: record.pointee)
        if head.purpose == .free { throw .doubleFree(frame) }
        if head.purpose.isBootReservation { throw .notAllocated(frame) }
        guard head.isHead else { throw .notAllocationStart(frame) }
        if head.value == 1 {
            // Most frames freed are single ones, and may wait in the cache for the next request:
            // `releaseFrame` written out for one, with no loop. The counts cannot wrap: the frame
            // was counted in its purpose, and free frames are fewer than all frames.
            statistics.perPurpose[Int(head.purpose.rawValue)] &-= 1
            statistics.freeFrames &+= 1
            record.pointee = 0
            if cacheCount < Self.cacheCapacity {
                cacheSlot(cacheCount).pointee = frame.number &<< 4 | UInt64(index)
                cacheCount &+= 1
            } else {
                setBits(of: frame.number, zone: index)
            }
            return
        }
        for offset in 0..<UInt64(head.value) {
            releaseFrame(frame.number + offset, zone: index, purpose: head.purpose)
        }
    }

    /// The purpose of `frame`, or nil outside RAM. Inlined, as `allocation(containing:)`.
    @inline(__always)
    public func purpose(of frame: PageFrame) -> FramePurpose? {
        guard let index = zoneIndex(of: frame.number) else { return nil }
        return FrameRecord(raw: recordPointer(of: frame.number, zone: index).pointee).purpose
    }

    /// The first frame, length and purpose of the allocation containing `frame`, or nil if it is
    /// free, reserved at boot or outside RAM. Inlined: called on the kernel's allocator (a
    /// global), a call would copy all of it to pass it; inlined, only the fields it reads are.
    @inline(__always)
    public func allocation(containing frame: PageFrame) -> (first: PageFrame, count: Int, purpose: FramePurpose)? {
        guard let index = zoneIndex(of: frame.number) else { return nil }
        let found = FrameRecord(raw: recordPointer(of: frame.number, zone: index).pointee)
        guard found.purpose != .free, !found.purpose.isBootReservation else { return nil }
        let first = found.isHead ? frame.number : frame.number - UInt64(found.value)
        return (PageFrame(number: first), Int(FrameRecord(raw: recordPointer(of: first, zone: index).pointee).value),
                found.purpose)
    }

    public var zoneCountForTesting: Int { zoneCount }
}
