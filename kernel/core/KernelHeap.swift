// The kernel heap behind every Swift allocation (posix_memalign/free). Small blocks come from
// slabs: single pages carved into objects of one size class (16 B to 2 KiB), with a 64-byte
// header holding the free list and an allocation bitmap. Larger or more strictly aligned blocks
// get whole pages. Pages come from, and go back to, a `HeapBackend` (the frame allocator through
// the linear map in the kernel, host memory in tests), so the heap grows on demand and shrinks
// when slabs empty. Every free is checked against the bitmap or the page owner: a double free,
// a pointer the heap never returned, or a damaged slab header is an error, not corruption.

public enum HeapPageKind: Equatable, Sendable {
    case slab
    case large
}

/// Where the heap's pages come from.
public protocol HeapBackend {
    /// `count` contiguous pages aligned to `alignment` pages, or nil when memory is exhausted.
    mutating func allocatePages(count: Int, alignment: Int, kind: HeapPageKind) -> UnsafeMutableRawPointer?
    mutating func freePages(_ start: UnsafeMutableRawPointer)
    /// The page run this backend handed the heap that contains `pointer`.
    func pages(containing pointer: UnsafeMutableRawPointer) -> (start: UnsafeMutableRawPointer, count: Int, kind: HeapPageKind)?
}

public enum HeapError: Error, Equatable {
    /// The pointer is not inside memory the heap owns.
    case notHeapPointer
    /// The pointer is inside heap memory but not at the start of a block.
    case notBlockStart
    case doubleFree
    /// A slab header or a freed block's poison was overwritten.
    case corrupted
}

public struct HeapStatistics: Equatable {
    public var allocations: UInt64 = 0
    public var frees: UInt64 = 0
    public var failedAllocations: UInt64 = 0
    /// Bytes of blocks handed out and not yet freed, rounded to their size class or page run.
    public var bytesInUse: UInt64 = 0
    public var slabPages: UInt64 = 0
    public var largePages: UInt64 = 0

    public var blocksInUse: UInt64 { allocations - frees }
    public var pagesHeld: UInt64 { slabPages + largePages }
}

public struct KernelHeap<Backend: HeapBackend> {
    /// The slab classes: objects of 16 bytes doubling to 2 KiB (`classSize`); anything larger is a
    /// page allocation. Sizes and capacities are computed with shifts, not read from tables: they
    /// are on every allocation and free.
    static var classCount: Int { 8 }
    @inline(__always)
    static func classSize(_ classIndex: Int) -> Int { 16 &<< classIndex }
    /// One page per slab, for every class: the heap then never needs contiguous frames for small
    /// blocks, so any free frame lets it grow (KernelMemory counts on that when it admits an object).
    static var pagesPerSlab: Int { 1 }
    public static var largestSlabObject: Int { 2048 }
    static var headerSize: Int { 64 }
    static var slabMagic: UInt32 { 0x534C_4142 }
    static var noObject: UInt16 { 0xFFFF }
    static var poison: UInt8 { 0xA5 }

    public private(set) var backend: Backend
    /// Heads of each class's list of slabs with at least one free object (0 = empty list).
    var partialSlabs = InlineArray<8, UInt>(repeating: 0)
    public private(set) var statistics = HeapStatistics()
    /// Fill freed blocks with a pattern and check it on reuse (debug builds).
    public let poisoning: Bool
    /// Set when a slab's free list or a freed block's poison was found damaged: a kernel bug
    /// (a write after free or out of bounds) that the owner should report.
    public private(set) var detectedCorruption = false

    public init(backend: Backend, poisoning: Bool) {
        self.backend = backend
        self.poisoning = poisoning
    }

    // MARK: Slab header layout (64 bytes at the start of the slab)
    //   0 magic u32 | 4 class u8 | 6 capacity u16 | 8 inUse u16 | 10 freeHead u16
    //  16 next slab | 24 previous slab | 32..63 allocation bitmap (256 bits)

    struct Slab {
        let base: UnsafeMutableRawPointer

        var magic: UInt32 {
            get { base.load(fromByteOffset: 0, as: UInt32.self) }
            nonmutating set { base.storeAligned(newValue, toByteOffset: 0) }
        }
        var classIndex: Int {
            get { Int(base.load(fromByteOffset: 4, as: UInt8.self)) }
            nonmutating set { base.storeBytes(of: UInt8(newValue), toByteOffset: 4, as: UInt8.self) }
        }
        var capacity: Int {
            get { Int(base.load(fromByteOffset: 6, as: UInt16.self)) }
            nonmutating set { base.storeAligned(UInt16(newValue), toByteOffset: 6) }
        }
        var inUse: Int {
            get { Int(base.load(fromByteOffset: 8, as: UInt16.self)) }
            nonmutating set { base.storeAligned(UInt16(newValue), toByteOffset: 8) }
        }
        var freeHead: UInt16 {
            get { base.load(fromByteOffset: 10, as: UInt16.self) }
            nonmutating set { base.storeAligned(newValue, toByteOffset: 10) }
        }
        var next: UInt {
            get { base.load(fromByteOffset: 16, as: UInt.self) }
            nonmutating set { base.storeAligned(newValue, toByteOffset: 16) }
        }
        var previous: UInt {
            get { base.load(fromByteOffset: 24, as: UInt.self) }
            nonmutating set { base.storeAligned(newValue, toByteOffset: 24) }
        }

        func isAllocated(_ index: Int) -> Bool {
            base.load(fromByteOffset: 32 + (index / 64) * 8, as: UInt64.self) & (UInt64(1) << UInt64(index % 64)) != 0
        }

        func setAllocated(_ index: Int, _ allocated: Bool) {
            let offset = 32 + (index / 64) * 8
            var word = base.load(fromByteOffset: offset, as: UInt64.self)
            if allocated { word |= UInt64(1) << UInt64(index % 64) } else { word &= ~(UInt64(1) << UInt64(index % 64)) }
            base.storeAligned(word, toByteOffset: offset)
        }
    }

    /// Objects start after the header, or at the first multiple of their size past it.
    @inline(__always)
    static func firstObjectOffset(_ classIndex: Int) -> Int {
        max(headerSize, classSize(classIndex))
    }

    @inline(__always)
    static func capacity(_ classIndex: Int) -> Int {
        (pagesPerSlab * Int(pageSize) - firstObjectOffset(classIndex)) &>> (4 + classIndex)
    }

    @inline(__always)
    static func object(_ slab: Slab, _ index: Int) -> UnsafeMutableRawPointer {
        slab.base + firstObjectOffset(slab.classIndex) + index &<< (4 + slab.classIndex)
    }

    /// The slab class for a request, or nil when it needs whole pages: the smallest power of two
    /// from 16 that holds it.
    static func classIndex(size: Int, alignment: Int) -> Int? {
        let needed = max(size, alignment, 1)
        guard needed <= largestSlabObject else { return nil }
        // ceil(log2(needed)) - 4, at least 0.
        return max(0, Int.bitWidth - (needed - 1).leadingZeroBitCount - 4)
    }

    // MARK: Allocation

    /// A block of at least `size` bytes aligned to `alignment` (a power of two), or nil when the
    /// request is invalid or memory is exhausted.
    public mutating func allocate(size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        guard size >= 0, alignment > 0, alignment & (alignment - 1) == 0 else {
            statistics.failedAllocations += 1
            return nil
        }
        let block = Self.classIndex(size: size, alignment: alignment).map { allocateObject(classIndex: $0) }
            ?? allocateLarge(size: size, alignment: alignment)
        if block == nil { statistics.failedAllocations += 1 } else { statistics.allocations += 1 }
        return block
    }

    private mutating func allocateObject(classIndex: Int) -> UnsafeMutableRawPointer? {
        if partialSlabs[classIndex] == 0 {
            guard let fresh = newSlab(classIndex: classIndex) else { return nil }
            pushPartial(fresh)
        }
        let slab = Slab(base: UnsafeMutableRawPointer(bitPattern: partialSlabs[classIndex])!)
        let index = Int(slab.freeHead)
        guard slab.magic == Self.slabMagic, index < slab.capacity, !slab.isAllocated(index) else {
            detectedCorruption = true
            return nil
        }
        let object = Self.object(slab, index)
        if poisoning {
            // A freed block holds its free-list link, then poison; anything else was written after free.
            for offset in 2..<Self.classSize(classIndex) where object.load(fromByteOffset: offset, as: UInt8.self) != Self.poison {
                detectedCorruption = true
                return nil
            }
        }
        slab.freeHead = object.load(as: UInt16.self)
        slab.setAllocated(index, true)
        slab.inUse += 1
        if slab.inUse == slab.capacity { removePartial(slab) }
        statistics.bytesInUse += UInt64(Self.classSize(classIndex))
        return object
    }

    private mutating func newSlab(classIndex: Int) -> Slab? {
        let pages = Self.pagesPerSlab
        guard let base = backend.allocatePages(count: pages, alignment: 1, kind: .slab) else { return nil }
        statistics.slabPages += UInt64(pages)
        let slab = Slab(base: base)
        base.zeroWords(bytes: Self.headerSize)
        slab.magic = Self.slabMagic
        slab.classIndex = classIndex
        let capacity = Self.capacity(classIndex)
        slab.capacity = capacity
        for index in 0..<capacity {
            let object = Self.object(slab, index)
            if poisoning { fillPoison(object, size: Self.classSize(classIndex)) }
            object.storeAligned(index + 1 < capacity ? UInt16(index + 1) : Self.noObject)
        }
        slab.freeHead = 0
        return slab
    }

    private mutating func allocateLarge(size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        // Rounded up without adding first: a size near `Int.max` must be refused, not overflow.
        let pages = size / Int(pageSize) + (size % Int(pageSize) == 0 ? 0 : 1)
        let alignmentPages = max(1, alignment / Int(pageSize))
        guard let start = backend.allocatePages(count: max(pages, 1), alignment: alignmentPages, kind: .large) else { return nil }
        statistics.largePages += UInt64(max(pages, 1))
        statistics.bytesInUse += UInt64(max(pages, 1)) * pageSize
        return start
    }

    // MARK: Free

    public mutating func free(_ pointer: UnsafeMutableRawPointer) throws(HeapError) {
        guard let run = backend.pages(containing: pointer) else { throw .notHeapPointer }
        switch run.kind {
        case .large:
            guard run.start == pointer else { throw .notBlockStart }
            backend.freePages(run.start)
            statistics.largePages -= UInt64(run.count)
            statistics.bytesInUse -= UInt64(run.count) * pageSize
        case .slab:
            try freeObject(pointer, slab: Slab(base: run.start), pages: run.count)
        }
        statistics.frees += 1
    }

    private mutating func freeObject(_ pointer: UnsafeMutableRawPointer, slab: Slab, pages: Int) throws(HeapError) {
        guard slab.magic == Self.slabMagic, slab.classIndex < Self.classCount,
              Self.pagesPerSlab == pages, slab.capacity == Self.capacity(slab.classIndex) else {
            throw .corrupted
        }
        let size = Self.classSize(slab.classIndex)
        let offset = pointer - slab.base - Self.firstObjectOffset(slab.classIndex)
        let index = offset &>> (4 + slab.classIndex)
        guard offset >= 0, offset & (size - 1) == 0, index < slab.capacity else { throw .notBlockStart }
        guard slab.isAllocated(index) else { throw .doubleFree }
        slab.setAllocated(index, false)
        if poisoning { fillPoison(pointer, size: size) }
        pointer.storeAligned(slab.freeHead)
        slab.freeHead = UInt16(index)
        let wasFull = slab.inUse == slab.capacity
        slab.inUse -= 1
        statistics.bytesInUse -= UInt64(size)
        if wasFull { pushPartial(slab) }
        // Give an empty slab back unless it is its class's only partial slab, which keeps one
        // slab ready so that alternating allocate/free of one block does not churn pages.
        if slab.inUse == 0 && (slab.previous != 0 || slab.next != 0) {
            removePartial(slab)
            slab.magic = 0
            backend.freePages(slab.base)
            statistics.slabPages -= UInt64(pages)
        }
    }

    private func fillPoison(_ object: UnsafeMutableRawPointer, size: Int) {
        for offset in 0..<size { object.storeBytes(of: Self.poison, toByteOffset: offset, as: UInt8.self) }
    }

    // MARK: Partial lists

    private mutating func pushPartial(_ slab: Slab) {
        let head = partialSlabs[slab.classIndex]
        slab.previous = 0
        slab.next = head
        if head != 0 { Slab(base: UnsafeMutableRawPointer(bitPattern: head)!).previous = UInt(bitPattern: slab.base) }
        partialSlabs[slab.classIndex] = UInt(bitPattern: slab.base)
    }

    private mutating func removePartial(_ slab: Slab) {
        if slab.previous != 0 {
            Slab(base: UnsafeMutableRawPointer(bitPattern: slab.previous)!).next = slab.next
        } else {
            partialSlabs[slab.classIndex] = slab.next
        }
        if slab.next != 0 { Slab(base: UnsafeMutableRawPointer(bitPattern: slab.next)!).previous = slab.previous }
        slab.next = 0
        slab.previous = 0
    }

    /// Size of the block at `pointer` as the heap accounts it (its class size or page run).
    public func usableSize(of pointer: UnsafeMutableRawPointer) -> Int? {
        guard let run = backend.pages(containing: pointer) else { return nil }
        switch run.kind {
        case .large: return run.start == pointer ? run.count * Int(pageSize) : nil
        case .slab:
            let slab = Slab(base: run.start)
            guard slab.magic == Self.slabMagic, slab.classIndex < Self.classCount else { return nil }
            return Self.classSize(slab.classIndex)
        }
    }
}
