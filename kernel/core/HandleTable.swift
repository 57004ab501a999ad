// Capabilities: a process names kernel objects only through handles in its own table, each with
// rights. A handle is a slot index plus the slot's generation, so a closed handle's number never
// silently reaches the object that later takes its slot. Rights can only shrink when a handle is
// duplicated. The table is fixed-size storage that never allocates after creation.

// `Handle` and `Rights` are ABI types (abi/Types.swift); a handle's value packs the slot index
// in its low 32 bits and the slot's generation above.
extension Handle {
    init(slot: Int, generation: UInt32) { self.init(UInt64(generation) << 32 | UInt64(slot)) }
    var slot: Int { Int(truncatingIfNeeded: value & 0xFFFF_FFFF) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: value >> 32) }
}

public enum HandleError: Error, Equatable {
    case invalidHandle
    case accessDenied
    case tableFull
}

public struct HandleTable<Object> {
    /// 16 bytes, so that finding a slot's entry is one shifted add. Its size equals its stride:
    /// the compiler reads every field of an element with tail padding byte by byte when the
    /// kernel is built with strict alignment (as it is, for its MMU-off start).
    struct Entry {
        var object: Object?
        /// The rights, in 32 bits: every right there is fits (`Rights.all`).
        var rightsBits: UInt32
        /// Bumped when the slot is freed, so old handle numbers stop matching.
        var generation: UInt32

        init(object: Object?, rights: Rights, generation: UInt32) {
            self.object = object
            rightsBits = UInt32(truncatingIfNeeded: rights.rawValue)
            self.generation = generation
        }

        var rights: Rights {
            get { Rights(rawValue: UInt64(rightsBits)) }
            set { rightsBits = UInt32(truncatingIfNeeded: newValue.rawValue) }
        }

        /// Whether an entry is 16 bytes, as the comment above says.
        static var isSixteenBytes: Bool { MemoryLayout<Entry>.size == 16 && MemoryLayout<Entry>.stride == 16 }
    }

    let entries: UnsafeMutablePointer<Entry>
    public let capacity: Int
    public private(set) var count = 0
    /// Slots an insert could still take.
    public var freeSlots: Int { capacity - count }
    /// No slot below this one is free: where `insert` starts looking.
    var firstFreeCandidate = 0

    public init(capacity: Int) {
        self.capacity = capacity
        entries = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        // Generations start at 1, so that no valid handle is 0.
        entries.initialize(repeating: Entry(object: nil, rights: [], generation: 1), count: capacity)
    }

    /// Releases every object and the storage; the table must not be used afterwards. Only the
    /// entries still holding an object are visited (an ended process's table is empty by now):
    /// an empty entry has nothing to release.
    public mutating func destroy() {
        var slot = 0
        while count > 0 && slot < capacity {
            if entries[slot].object != nil {
                entries[slot].object = nil
                count -= 1
            }
            slot += 1
        }
        entries.deallocate()
    }

    public mutating func insert(_ object: Object, rights: Rights) throws(HandleError) -> Handle {
        try insertInline(object, rights: rights)
    }

    /// `insert`, inlined where it is called: for the IPC fast path, which saves the call and the
    /// registers it spills around it. Everywhere else calls `insert`, one copy of it.
    @inline(__always)
    public mutating func insertInline(_ object: Object, rights: Rights) throws(HandleError) -> Handle {
        var slot = firstFreeCandidate
        while slot < capacity {
            if entries[slot].object == nil {
                entries[slot].object = object
                entries[slot].rights = rights
                count += 1
                firstFreeCandidate = slot + 1
                return Handle(slot: slot, generation: entries[slot].generation)
            }
            slot += 1
        }
        firstFreeCandidate = capacity
        throw .tableFull
    }

    func entryIndex(_ handle: Handle) throws(HandleError) -> Int {
        let slot = handle.slot
        guard slot < capacity, entries[slot].object != nil, entries[slot].generation == handle.generation else {
            throw .invalidHandle
        }
        return slot
    }

    /// Where `handle`'s entry lives, if the handle is current and holds every right in
    /// `required`: for reading an entry in place instead of copying its object out.
    func entry(for handle: Handle, requiring required: Rights) -> UnsafeMutablePointer<Entry>? {
        guard let slot = try? entryIndex(handle), entries[slot].rights.isSuperset(of: required) else { return nil }
        return entries + slot
    }

    /// The object behind `handle` if the handle holds every right in `required`.
    public func lookup(_ handle: Handle, requiring required: Rights) throws(HandleError) -> (object: Object, rights: Rights) {
        let slot = try entryIndex(handle)
        guard entries[slot].rights.isSuperset(of: required) else { throw .accessDenied }
        return (entries[slot].object!, entries[slot].rights)
    }

    /// Removes `handle` (which must hold `required`) and gives back its object and rights.
    @discardableResult
    public mutating func remove(_ handle: Handle, requiring required: Rights = []) throws(HandleError) -> (object: Object, rights: Rights) {
        let slot = try entryIndex(handle)
        guard entries[slot].rights.isSuperset(of: required) else { throw .accessDenied }
        let removed = (entries[slot].object!, entries[slot].rights)
        vacate(slot)
        return removed
    }

    /// Takes some handle out of the table and gives back its object and rights; nil when the
    /// table is empty. For emptying a table one handle at a time without allocating.
    public mutating func removeAny() -> (object: Object, rights: Rights)? {
        guard count > 0 else { return nil }
        for slot in 0..<capacity where entries[slot].object != nil {
            let removed = (entries[slot].object!, entries[slot].rights)
            vacate(slot)
            return removed
        }
        return nil
    }

    /// Removes `handle`, if current, releasing its object: `remove` without handing it back.
    public mutating func discard(_ handle: Handle) {
        guard let slot = try? entryIndex(handle) else { return }
        vacate(slot)
    }

    /// `discard` of a handle the caller has just found current (`unretainedObject`), with the
    /// table unchanged since: its slot is vacated without being looked up again.
    public mutating func discard(current handle: Handle) {
        vacate(handle.slot)
    }

    /// Frees a used slot: its object released, its generation moved on.
    private mutating func vacate(_ slot: Int) {
        entries[slot].object = nil
        entries[slot].rights = []
        entries[slot].generation &+= 1
        if entries[slot].generation == 0 { entries[slot].generation = 1 }
        count -= 1
        firstFreeCandidate = min(firstFreeCandidate, slot)
    }

    /// Whether some entry's object and rights satisfy `predicate`.
    public func contains(where predicate: (Object, Rights) -> Bool) -> Bool {
        var slot = 0
        while slot < capacity {
            if let object = entries[slot].object, predicate(object, entries[slot].rights) { return true }
            slot += 1
        }
        return false
    }

    /// A second handle to the same object with `rights`, which must be a subset of the original's;
    /// the original must hold `.duplicate`.
    public mutating func duplicate(_ handle: Handle, rights: Rights) throws(HandleError) -> Handle {
        let (object, existing) = try lookup(handle, requiring: .duplicate)
        guard existing.isSuperset(of: rights) else { throw .accessDenied }
        return try insert(object, rights: rights)
    }
}

extension HandleTable where Object: AnyObject {
    /// The object behind `handle`, if the handle is current and holds every right in `required`,
    /// without counting a reference: for a caller that uses it only while the table holds it
    /// (the IPC fast path). An optional class reference and an optional `Unmanaged` have the
    /// same representation, so the entry is read as the latter, which takes no reference.
    ///
    /// A free entry holds no rights (`init`, `vacate`), so when `required` is not empty the rights
    /// test finds a free slot too, and the object is not tested for nil: one compare fewer on
    /// the fast path.
    @inline(__always)
    public func unretainedObject(for handle: Handle, requiring required: Rights) -> Unmanaged<Object>? {
        if required.isEmpty {
            guard let entry = entry(for: handle, requiring: required),
                  let offset = MemoryLayout<Entry>.offset(of: \.object) else { return nil }
            return UnsafeRawPointer(entry).load(fromByteOffset: offset, as: Unmanaged<Object>?.self)
        }
        let slot = handle.slot
        guard slot < capacity, entries[slot].generation == handle.generation,
              entries[slot].rights.isSuperset(of: required),
              let offset = MemoryLayout<Entry>.offset(of: \.object) else { return nil }
        return UnsafeRawPointer(entries + slot).load(fromByteOffset: offset, as: Unmanaged<Object>.self)
    }
}
