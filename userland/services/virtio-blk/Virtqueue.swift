// A split virtqueue (virtio 1.x, section 2.7) from the driver's side: the descriptor table, the
// available ring the driver fills and the used ring the device fills, all in memory the device can
// read and write at any moment. Nothing the device writes is trusted: chains, the free list and the
// set of heads in flight live in this struct, and every index read from shared memory is checked
// before use. Ring layouts are little-endian, as are AArch64 and the host tests.
import VirtioMemory

/// Memory for one queue: where the driver sees it and the address the device uses for its start.
public struct VirtqueueMemory {
    public var base: UnsafeMutableRawPointer
    public var deviceAddress: UInt64
    public var size: Int

    public init(base: UnsafeMutableRawPointer, deviceAddress: UInt64, size: Int) {
        self.base = base
        self.deviceAddress = deviceAddress
        self.size = size
    }
}

/// One buffer of a chain, given by its device-visible address.
public struct VirtqueueBuffer: Equatable {
    public var deviceAddress: UInt64
    public var length: UInt32
    /// The device writes into this buffer (otherwise it only reads it).
    public var deviceWrites: Bool

    public init(deviceAddress: UInt64, length: UInt32, deviceWrites: Bool) {
        self.deviceAddress = deviceAddress
        self.length = length
        self.deviceWrites = deviceWrites
    }
}

/// Ways a device can break the used ring's rules. Each one stops the queue until `reset()`.
public enum VirtqueueFault: Equatable {
    /// The used index moved past every chain the device was given.
    case usedIndexJumped
    /// A used entry names a descriptor beyond the table.
    case idOutOfRange
    /// A used entry names a descriptor that is not the head of a chain the device holds.
    case notInFlight
    /// A used entry claims more bytes written than the chain lets the device write.
    case writtenTooLong
}

public enum VirtqueueEvent: Equatable {
    case completed(head: UInt16, written: UInt32)
    case deviceFault(VirtqueueFault)
}

/// Heads of chains, oldest submission first, without allocating.
public struct VirtqueueHeads: RandomAccessCollection {
    private var heads = InlineArray<256, UInt16>(repeating: 0)
    public private(set) var count = 0

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> UInt16 { heads[position] }

    mutating func append(_ head: UInt16) {
        guard count < heads.count else { return }
        heads[count] = head
        count += 1
    }
}

public struct SplitVirtqueue {
    /// The largest queue this driver keeps books for; a device offering more gets this many.
    /// The inline storage of `records` and `VirtqueueHeads` is sized by the same number.
    public static let maximumSize = 256

    // Byte layout (section 2.7): 16-byte descriptors; the available ring's flags, index, ring and
    // used_event; the used ring's flags, index, 8-byte elements and avail_event.
    private static let descriptorSize = 16
    private static let ringHeaderSize = 4
    private static let usedElementSize = 8
    private static let descriptorNext: UInt16 = 1
    private static let descriptorWrite: UInt16 = 2
    private static let usedNoNotify: UInt16 = 1
    /// The used ring starts on its own cache line, so the device's writes to it never share a line
    /// with the driver's writes to the available ring (the spec asks only for 4-byte alignment).
    private static let usedRingAlignment = 64

    private enum Role: Equatable {
        case free
        /// A descriptor after the head of a chain.
        case link
        /// The head of a chain in the available ring whose index the device has not been shown.
        case headSubmitted
        /// The head of a chain the device holds.
        case headInFlight
    }

    /// The driver's own record of a descriptor: what shared memory says is never read back.
    private struct Record {
        var role = Role.free
        /// The next descriptor of its chain, or of the free list.
        var next: UInt16 = 0
        // For heads only:
        var chainLength: UInt16 = 0
        var writableBytes: UInt32 = 0
        /// Neighbours in the list of chains submitted and not completed, oldest first.
        var older: UInt16 = 0
        var newer: UInt16 = 0
    }

    public let size: UInt16
    private let memory: VirtqueueMemory
    private let availableOffset: Int
    private let usedOffset: Int
    private var records = InlineArray<256, Record>(repeating: Record())
    private var freeHead: UInt16 = 0
    public private(set) var freeCount = 0
    /// Next free slot of the available ring, and the index the device has been shown.
    private var nextAvailableIndex: UInt16 = 0
    private var publishedAvailableIndex: UInt16 = 0
    /// The used index up to which completions have been taken.
    private var lastUsedIndex: UInt16 = 0
    /// Chains submitted and not completed, oldest and newest (valid when `chainCount` > 0).
    private var chainCount = 0
    private var oldestChain: UInt16 = 0
    private var newestChain: UInt16 = 0
    /// Chains the device has been shown and not yet returned.
    public private(set) var chainsInFlight = 0
    /// The rule the device broke; the queue takes nothing more until `reset()`.
    public private(set) var fault: VirtqueueFault?

    public static func bytesNeeded(size: UInt16) -> Int {
        usedOffset(size: size) + ringHeaderSize + usedElementSize * Int(size) + 2
    }

    private static func availableOffset(size: UInt16) -> Int { descriptorSize * Int(size) }

    private static func usedOffset(size: UInt16) -> Int {
        let availableEnd = availableOffset(size: size) + ringHeaderSize + 2 * Int(size) + 2
        return (availableEnd + usedRingAlignment - 1) / usedRingAlignment * usedRingAlignment
    }

    /// The size to give a queue the device holds at most `deviceMaximum` descriptors in (its
    /// QueueNumMax, which need not be a power of two), when the driver wants at most `wanted`:
    /// the largest power of two up to both (a split ring's size is one). Nil when that cannot
    /// hold `descriptorsPerRequest`, the most one request takes: a request that never fits
    /// would wait for ever.
    public static func size(deviceMaximum: UInt32, wanted: Int, descriptorsPerRequest: Int) -> UInt16? {
        var size = min(UInt32(clamping: min(wanted, maximumSize)), deviceMaximum)
        while size & (size &- 1) != 0 { size &= size &- 1 }
        guard size >= UInt32(max(descriptorsPerRequest, 1)) else { return nil }
        return UInt16(size)
    }

    /// Lays out an empty queue of `size` descriptors in `memory`. Nil when the size is not a power
    /// of two up to `maximumSize` (ring slots wrap with the 16-bit indices only then), when the
    /// memory is smaller than `bytesNeeded(size:)`, or when its start is not 16-byte aligned on
    /// either side.
    public init?(size: UInt16, memory: VirtqueueMemory) {
        guard size > 0, Int(size) <= Self.maximumSize, size & (size &- 1) == 0,
              memory.size >= Self.bytesNeeded(size: size),
              UInt(bitPattern: memory.base) % 16 == 0, memory.deviceAddress % 16 == 0,
              memory.deviceAddress <= UInt64.max - UInt64(Self.bytesNeeded(size: size))
        else { return nil }
        self.size = size
        self.memory = memory
        availableOffset = Self.availableOffset(size: size)
        usedOffset = Self.usedOffset(size: size)
        _ = reset()
    }

    public var descriptorAreaAddress: UInt64 { memory.deviceAddress }
    public var driverAreaAddress: UInt64 { memory.deviceAddress + UInt64(availableOffset) }
    public var deviceAreaAddress: UInt64 { memory.deviceAddress + UInt64(usedOffset) }

    /// Forgets every chain: zeroes the queue memory and frees all descriptors. Returns the heads of
    /// the chains submitted and not completed, oldest first, so their requests can be issued again.
    /// The device must be reset before (its Status register written with 0 and read back as 0):
    /// a live device would go on reading the rings being cleared.
    public mutating func reset() -> VirtqueueHeads {
        var abandoned = VirtqueueHeads()
        var head = oldestChain
        for _ in 0..<chainCount {
            abandoned.append(head)
            head = records[Int(head)].newer
        }
        memory.base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.bytesNeeded(size: size))
        for index in 0..<Int(size) {
            records[index] = Record(next: UInt16(truncatingIfNeeded: index + 1))
        }
        freeHead = 0
        freeCount = Int(size)
        nextAvailableIndex = 0
        publishedAvailableIndex = 0
        lastUsedIndex = 0
        chainCount = 0
        chainsInFlight = 0
        fault = nil
        return abandoned
    }

    // MARK: Submitting

    /// Writes `buffers` as one chain and puts its head in the available ring; the device sees it
    /// after `publish()`. Nil, with nothing changed, when the chain is empty, needs more descriptors
    /// than are free, lets the device write more than 4 GiB, or the queue has faulted.
    public mutating func submit<Buffers: Collection>(_ buffers: Buffers) -> UInt16?
    where Buffers.Element == VirtqueueBuffer {
        let length = buffers.count
        guard fault == nil, length > 0, length <= freeCount,
              let writable = Self.writableBytes(of: buffers) else { return nil }
        let head = freeHead
        var index = head
        for (position, buffer) in zip(1...length, buffers) {
            let next = records[Int(index)].next
            let isLast = position == length
            writeDescriptor(index, buffer, next: isLast ? nil : next)
            records[Int(index)].role = .link
            if isLast { freeHead = next } else { index = next }
        }
        freeCount -= length
        records[Int(head)].role = .headSubmitted
        records[Int(head)].chainLength = UInt16(length)
        records[Int(head)].writableBytes = writable
        appendChain(head)
        virtio_store16(availableRing(slot: nextAvailableIndex), head)
        nextAvailableIndex &+= 1
        return head
    }

    private static func writableBytes<Buffers: Collection>(of buffers: Buffers) -> UInt32?
    where Buffers.Element == VirtqueueBuffer {
        var total: UInt32 = 0
        for buffer in buffers where buffer.deviceWrites {
            let (sum, overflow) = total.addingReportingOverflow(buffer.length)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    private func writeDescriptor(_ index: UInt16, _ buffer: VirtqueueBuffer, next: UInt16?) {
        let descriptor = memory.base + Self.descriptorSize * Int(index)
        var flags: UInt16 = buffer.deviceWrites ? Self.descriptorWrite : 0
        if next != nil { flags |= Self.descriptorNext }
        virtio_store64(descriptor, buffer.deviceAddress)
        virtio_store32(descriptor + 8, buffer.length)
        virtio_store16(descriptor + 12, flags)
        virtio_store16(descriptor + 14, next ?? 0)
    }

    /// Shows the device every chain submitted since the last call. Returns whether the device wants
    /// to be notified (it has not set VIRTQ_USED_F_NO_NOTIFY); false when there was nothing new.
    public mutating func publish() -> Bool {
        guard fault == nil, nextAvailableIndex != publishedAvailableIndex else { return false }
        // The chains and ring entries must be visible before the index that hands them over.
        virtio_memory_barrier()
        virtio_store16(memory.base + availableOffset + 2, nextAvailableIndex)
        markPublishedChainsInFlight()
        publishedAvailableIndex = nextAvailableIndex
        // The index store must be visible before the flags are read: otherwise the device could
        // set NO_NOTIFY, miss the new index, and wait for a notification that never comes.
        virtio_memory_barrier()
        return virtio_load16(memory.base + usedOffset) & Self.usedNoNotify == 0
    }

    /// Chains submitted since the last publish are the newest ones.
    private mutating func markPublishedChainsInFlight() {
        var head = newestChain
        for _ in 0..<chainCount {
            guard records[Int(head)].role == .headSubmitted else { break }
            records[Int(head)].role = .headInFlight
            chainsInFlight += 1
            head = records[Int(head)].older
        }
    }

    // MARK: Completing

    /// Takes the next entry of the used ring: the head and written length of a completed chain,
    /// whose descriptors are free again; nil when the device has returned nothing new; or the rule
    /// the device broke, returned again on every call until `reset()`.
    public mutating func nextCompletion() -> VirtqueueEvent? {
        if let fault { return .deviceFault(fault) }
        let usedIndex = virtio_load16(memory.base + usedOffset + 2)
        let returned = usedIndex &- lastUsedIndex
        if returned == 0 { return nil }
        guard Int(returned) <= chainsInFlight else { return stop(.usedIndexJumped) }
        // The element must be read after the index that says it is there.
        virtio_memory_barrier()
        let element = memory.base + usedOffset + Self.ringHeaderSize
            + Self.usedElementSize * Int(lastUsedIndex % size)
        let id = virtio_load32(element)
        let written = virtio_load32(element + 4)
        guard id < UInt32(size) else { return stop(.idOutOfRange) }
        let head = UInt16(id)
        guard records[Int(head)].role == .headInFlight else { return stop(.notInFlight) }
        guard written <= records[Int(head)].writableBytes else { return stop(.writtenTooLong) }
        lastUsedIndex &+= 1
        chainsInFlight -= 1
        removeChain(head)
        freeChain(head)
        return .completed(head: head, written: written)
    }

    private mutating func stop(_ fault: VirtqueueFault) -> VirtqueueEvent {
        self.fault = fault
        return .deviceFault(fault)
    }

    /// Returns a chain's descriptors to the free list, following the driver's own links.
    private mutating func freeChain(_ head: UInt16) {
        var index = head
        for _ in 0..<Int(records[Int(head)].chainLength) {
            let next = records[Int(index)].next
            records[Int(index)] = Record(next: freeHead)
            freeHead = index
            freeCount += 1
            index = next
        }
    }

    // MARK: The list of chains, oldest first

    private mutating func appendChain(_ head: UInt16) {
        if chainCount == 0 {
            oldestChain = head
        } else {
            records[Int(newestChain)].newer = head
            records[Int(head)].older = newestChain
        }
        newestChain = head
        chainCount += 1
    }

    private mutating func removeChain(_ head: UInt16) {
        let record = records[Int(head)]
        if head == oldestChain { oldestChain = record.newer } else { records[Int(record.older)].newer = record.newer }
        if head == newestChain { newestChain = record.older } else { records[Int(record.newer)].older = record.older }
        chainCount -= 1
    }

    private func availableRing(slot index: UInt16) -> UnsafeMutableRawPointer {
        memory.base + availableOffset + Self.ringHeaderSize + 2 * Int(index % size)
    }
}
