// A worker's memory calls: anonymous mappings, memory objects and their mappings, the copies
// into and out of objects without a mapping (`memoryWrite`, `memoryRead`), and unmaps exact and
// inexact. New memory must read as zero; what the worker writes must read back unchanged for as
// long as it stays mapped, through every mapping of the same object and through `memoryRead`.

extension Worker {
    /// Largest anonymous mapping outside the exhaustion episode.
    static let largestMap: UInt64 = 4 << 20
    /// Mappings up to this size are written and checked whole; larger ones only in their first
    /// and last pages.
    static let wholeCheckBytes: UInt64 = 64 << 10

    mutating func mapMemory() {
        var bytes: UInt64
        switch random.below(10) {
        case 0:
            bytes = edgeLength(limit: 1 << 30)
            // 1 GiB is legal, but runs the machine out of memory: that is the exhaustion episode.
            if bytes > Self.largestMap && bytes <= 1 << 30 { bytes = (1 << 30) + 1 }
        case 1: bytes = random.between(1, Self.largestMap)
        default: bytes = random.between(1, Self.wholeCheckBytes)
        }
        let access = randomAccess(executableAllowed: true)
        let valid = bytes >= 1 && bytes <= 1 << 30 && access <= 2
        let outcome = caller.make(SystemCallNumber.map.rawValue, bytes, access, expect: valid ? .successUnlessShort : .failure)
        guard outcome.succeeded else { return }
        adoptMapping(outcome.value1, bytes: bytes, writable: access == 1, object: -1)
    }

    /// 0 (read-only), 1 (writable), 2 (executable) or, now and then, an access no mapping may have.
    mutating func randomAccess(executableAllowed: Bool) -> UInt64 {
        switch random.below(20) {
        case 0..<9: return 0
        case 9..<18: return 1
        case 18: return executableAllowed ? 2 : 3
        default:
            let hostile: InlineArray<4, UInt64> = [3, 4, 1 << 63, UInt64.max]
            return random.oneIn(3) ? random.next() | 4 : hostile[random.below(4)]
        }
    }

    /// A mapping a call just returned: where it is must make sense, it must read as expected
    /// (zero for new memory), and the model takes it (or it is unmapped at once if full).
    mutating func adoptMapping(_ address: UInt64, bytes: UInt64, writable: Bool, object: Int) {
        let size = alignUp(bytes, to: pageSize) ?? bytes
        if address & (pageSize - 1) != 0 || address < UserSpace.mapBase || address + size > UserSpace.stackTop - UserSpace.stackSize
            || overlapsMapping(address, size) {
            Report.violation("mapping of \(bytes) bytes at \(hex: address) is misplaced or overlaps another")
            return
        }
        let pattern = object >= 0 ? model.objects[object].pattern : 0
        checkContents(address, size, pattern, "new mapping")
        var mapping = MappingRecord(address: address, bytes: bytes, writable: writable, object: object, pattern: 0)
        if writable && (object < 0 || random.oneIn(2)) {
            let fresh = random.next() | 1
            fill(address, size, fresh)
            if object >= 0 { model.objects[object].pattern = fresh } else { mapping.pattern = fresh }
        }
        if !model.addMapping(mapping) {
            _ = caller.make(SystemCallNumber.unmap.rawValue, address, bytes, expect: .success)
            model.unmappedAddress = address
        }
    }

    func overlapsMapping(_ address: UInt64, _ size: UInt64) -> Bool {
        for index in 0..<model.mappingCount {
            let other = model.mappings[index]
            let otherSize = alignUp(other.bytes, to: pageSize) ?? other.bytes
            if address < other.address + otherSize && other.address < address + size { return true }
        }
        return false
    }

    /// Calls `body` with each (offset, length) of a mapping of `size` bytes that is written and
    /// checked.
    func forEachCheckedRange(_ size: UInt64, _ body: (UInt64, UInt64) -> Void) {
        if size <= Self.wholeCheckBytes {
            body(0, size)
        } else {
            body(0, pageSize)
            body(size - pageSize, pageSize)
        }
    }

    func fill(_ address: UInt64, _ size: UInt64, _ pattern: UInt64) {
        forEachCheckedRange(size) { offset, length in
            let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address + offset))!
            for index in 0..<Int(length / 8) { words[index] = pattern ^ (offset / 8 + UInt64(index)) }
        }
    }

    /// Whether the mapping reads as `pattern` wrote it (0: all zero).
    func checkContents(_ address: UInt64, _ size: UInt64, _ pattern: UInt64, _ what: StaticString) {
        var wrong: UInt64 = 0
        var found: UInt64 = 0
        forEachCheckedRange(size) { offset, length in
            let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address + offset))!
            for index in 0..<Int(length / 8) where wrong == 0 {
                let expected = pattern == 0 ? 0 : pattern ^ (offset / 8 + UInt64(index))
                if words[index] != expected {
                    wrong = address + offset + UInt64(index * 8)
                    found = words[index]
                }
            }
        }
        if wrong != 0 {
            Report.violation("\(what) at \(hex: address): word at \(hex: wrong) holds \(hex: found), expected \(pattern == 0 ? "zero" : "the pattern written")")
        }
    }

    mutating func checkMappings() {
        guard model.mappingCount > 0 else { return }
        let mapping = model.mappings[random.below(model.mappingCount)]
        let pattern = mapping.object >= 0 ? model.objects[mapping.object].pattern : mapping.pattern
        checkContents(mapping.address, alignUp(mapping.bytes, to: pageSize) ?? mapping.bytes, pattern, "mapping")
    }

    mutating func unmapMemory() {
        guard model.mappingCount > 0, random.below(5) < 3 else {
            hostileUnmap()
            return
        }
        let index = random.below(model.mappingCount)
        let mapping = model.mappings[index]
        let pages = (alignUp(mapping.bytes, to: pageSize) ?? mapping.bytes) / pageSize
        // Any length that rounds up to the same pages is the same range.
        let bytes = random.oneIn(2) ? mapping.bytes : (pages - 1) * pageSize + random.between(1, pageSize)
        _ = caller.make(SystemCallNumber.unmap.rawValue, mapping.address, bytes, expect: .success)
        model.removeMapping(at: index)
    }

    /// Ranges `map` never returned: a mapping's pages but one, one too many, its inside, its
    /// address off by a byte, an address already unmapped, a region of the worker's own
    /// infrastructure with the wrong length, or an address no mapping ever had.
    mutating func hostileUnmap() {
        var address = invalidAddress()
        var bytes = edgeLength(limit: 1 << 30)
        if model.mappingCount > 0 && random.below(3) != 0 {
            let mapping = model.mappings[random.below(model.mappingCount)]
            let size = alignUp(mapping.bytes, to: pageSize) ?? mapping.bytes
            address = mapping.address
            switch random.below(6) {
            case 0: bytes = size + pageSize
            case 1:
                guard size > pageSize else { bytes = 0; break }
                bytes = size - pageSize
            case 2:
                guard size > pageSize else { bytes = size + 2 * pageSize; break }
                address += pageSize
                bytes = size - pageSize
            case 3:
                address += random.between(1, pageSize - 1)
                bytes = size
            case 4: bytes = 0
            default: bytes = UInt64.max - random.below(pageSize)
            }
        } else if random.oneIn(3) {
            address = messageArea
            bytes = random.oneIn(2) ? pageSize : Self.messageAreaBytes + pageSize
        }
        _ = caller.make(SystemCallNumber.unmap.rawValue, address, bytes, expect: .failure)
    }

    /// Whether memory objects may be created now: with the class left out, not while memory is
    /// nearly out (another worker's exhaustion episode may be under way).
    mutating func mayCreateMemoryObject() -> Bool {
        guard options.flags.contains(.noMemoryObjectsWhenOut) else { return true }
        return caller.make(SystemCallNumber.memoryStatistics.rawValue, expect: .success).value1 >= 4096
    }

    /// The byte at `offset` of an object whose checked ranges hold `pattern` (0: all zero), as
    /// `fill` writes it: word `offset / 8` is `pattern ^ (offset / 8)`, little-endian.
    static func patternByte(_ pattern: UInt64, at offset: UInt64) -> UInt8 {
        pattern == 0 ? 0 : UInt8(truncatingIfNeeded: (pattern ^ (offset / 8)) >> (8 * (offset % 8)))
    }

    /// `memoryWrite` or `memoryRead` of up to 256 bytes in a checked range of an object the
    /// worker holds (or, now and then, past its end, from or to an address no byte may be read or
    /// written at, through a foreign handle). What is written is the object's own pattern at that
    /// offset, so every mapping of it still reads as the model says (and `checkMappings` finds a
    /// byte put anywhere else); what is read must be the pattern.
    mutating func memoryCopy() {
        guard let index = pickHandle(random.below(8) == 0 ? nil : .memory, service: nil) else { return }
        let handle = model.handles[index]
        let object = model.objects[handle.object]
        let size = UInt64(object.pages) * pageSize
        let writing = random.oneIn(2)
        let length = random.oneIn(8) ? 0 : random.between(1, 256)
        // Inside what `fill` writes and `checkContents` reads: all of it up to 64 KiB, else its
        // first or its last page.
        var offset: UInt64 = 0
        if size > 0 {
            let span = size <= Self.wholeCheckBytes ? size : pageSize
            offset = span > length ? random.below(span - length + 1) : 0
            if size > Self.wholeCheckBytes && random.oneIn(2) { offset += size - pageSize }
        }
        var hostileAddress = false
        switch random.below(10) {
        case 0: offset = size - min(size, length) + random.between(1, pageSize) // past its end
        case 1: offset = UInt64.max - random.below(pageSize)
        case 2 where length > 0: hostileAddress = true
        default: break
        }
        let value = random.below(10) == 0 ? foreignHandle() : handle.value
        let right: Rights = writing ? .write : .map
        let (end, overflow) = offset.addingReportingOverflow(length)
        let valid = value == handle.value && object.kind == .memory && handle.rights.contains(right) && !overflow
            && end <= size && !hostileAddress
        var buffer = InlineArray<32, UInt64>(repeating: 0)
        withUnsafeMutableBytes(of: &buffer) { bytes in
            let address = hostileAddress ? invalidAddress() : UInt64(UInt(bitPattern: bytes.baseAddress!))
            if writing {
                for byte in 0..<Int(length) { bytes[byte] = Self.patternByte(object.pattern, at: offset &+ UInt64(byte)) }
            }
            let number = writing ? SystemCallNumber.memoryWrite.rawValue : SystemCallNumber.memoryRead.rawValue
            // On-demand pages are set aside already: a valid copy runs out of memory only if the
            // kernel's own allocations took the reserve.
            let outcome = caller.make(number, value, offset, address, length, expect: valid ? .successUnlessShort : .failure)
            guard outcome.succeeded, valid, !writing else { return }
            for byte in 0..<Int(length) where bytes[byte] != Self.patternByte(object.pattern, at: offset + UInt64(byte)) {
                Report.violation("memoryRead of \(length) bytes at offset \(offset) of an object: byte \(byte) holds \(bytes[byte]), expected the pattern")
                return
            }
        }
    }

    mutating func memoryObject() {
        if random.below(5) < 2 || model.handleCount == 0 {
            guard mayCreateMemoryObject() else { return }
            var bytes: UInt64 = random.oneIn(4) ? random.between(1, 1 << 20) : random.between(1, Self.wholeCheckBytes)
            if random.oneIn(6) { bytes = edgeLength(limit: 1 << 20) }
            let valid = bytes >= 1 && bytes <= 1 << 20
            // A third of them on demand: their pages are taken as the worker touches them.
            let options = random.below(3) == 0 ? MemoryOptions.onDemand.rawValue : 0
            let outcome = caller.make(SystemCallNumber.memoryCreate.rawValue, bytes, 0, options,
                                      expect: valid && model.freeSlots > 0 ? .successUnlessShort : .failure)
            guard outcome.succeeded else { return }
            adopt(outcome.value1, kind: .memory, rights: .newMemory, pages: Int((alignUp(bytes, to: pageSize) ?? 0) / pageSize))
            return
        }
        let access = randomAccess(executableAllowed: false)
        guard let index = pickHandle(random.below(6) == 0 ? nil : .memory, service: nil) else { return }
        let handle = model.handles[index]
        let object = model.objects[handle.object]
        let needed: Rights = access == 1 ? [.map, .write] : .map
        let valid = object.kind == .memory && access <= 1 && handle.rights.isSuperset(of: needed)
        let value = random.below(8) == 0 ? foreignHandle() : handle.value
        let outcome = caller.make(SystemCallNumber.memoryMap.rawValue, value, access,
                                  expect: valid && value == handle.value ? .successUnlessShort : .failure)
        guard outcome.succeeded, value == handle.value else { return }
        adoptMapping(outcome.value1, bytes: UInt64(object.pages) * pageSize, writable: access == 1, object: handle.object)
    }
}
