// Reader for "newc" cpio archives (the initial ramdisk format): 110-byte headers of ASCII hex
// fields, a NUL-terminated name, data, each padded to 4 bytes, ending at "TRAILER!!!". The whole
// archive is validated once at init; every read is bounds-checked and nothing allocates.

public enum CPIOError: Error, Equatable {
    case truncated
    case badMagic
    case badHeaderField
    case unterminatedName
    case missingTrailer
}

public struct CPIOFile {
    /// The name without its terminating NUL (and as stored, possibly with a leading "./").
    public let name: UnsafeRawBufferPointer
    public let data: UnsafeRawBufferPointer
    public let mode: UInt32

    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }

    /// `name` with a leading "./" removed: archives made with `find . | cpio` carry one.
    static func withoutDotSlash(_ name: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        if name.count >= 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: "/") {
            return UnsafeRawBufferPointer(rebasing: name[2...])
        }
        return name
    }

    public func nameEquals(_ other: StaticString) -> Bool {
        nameEquals(UnsafeRawBufferPointer(start: other.utf8Start, count: other.utf8CodeUnitCount))
    }

    public func nameEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        Self.sameBytes(Self.withoutDotSlash(name), Self.withoutDotSlash(other))
    }

    /// Whether two names hold the same bytes. Inlined: a directory's lookup tests every entry's
    /// length with it.
    @inline(__always)
    static func sameBytes(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        guard left.count == right.count else { return false }
        for index in 0..<left.count where left[index] != right[index] { return false }
        return true
    }
}

public struct CPIOArchive: Sequence {
    static let headerSize = 110
    let bytes: UnsafeRawBufferPointer
    public private(set) var fileCount = 0

    public init(_ bytes: UnsafeRawBufferPointer) throws(CPIOError) {
        self.bytes = bytes
        var offset = 0
        while true {
            let (entry, next) = try Self.entry(in: bytes, at: offset)
            if entry.nameEquals("TRAILER!!!") { return }
            fileCount += 1
            offset = next
        }
    }

    static func align4(_ value: Int) -> Int { (value + 3) & ~3 }

    /// One 8-digit hex field of the header at `offset`, read as one word and decoded eight digits
    /// at a time (a ramdisk search parses three fields per file it passes, and a spawn searches).
    /// The caller has checked that the header lies within `bytes`.
    static func field(_ bytes: UnsafeRawBufferPointer, _ offset: Int) throws(CPIOError) -> UInt32 {
        // Little-endian: the first digit, the most significant, is the lowest byte.
        let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        guard let value = hexValue(word) else { throw .badHeaderField }
        return value
    }

    /// The value of eight ASCII hex digits (either case) packed in `word`, first digit in the
    /// lowest byte; nil if any byte is not one.
    static func hexValue(_ word: UInt64) -> UInt32? {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high = ones &* 0x80
        // For bytes below 0x80, the top bit of each byte of `atLeast(x, n)` says whether it is at
        // least n: adding 0x80 - n carries into the top bit exactly then, and never past the byte.
        @inline(__always) func atLeast(_ x: UInt64, _ n: UInt64) -> UInt64 { (x &+ ones &* (0x80 - n)) & high }
        guard word & high == 0 else { return nil }
        let isDigit = atLeast(word, 0x30) & ~atLeast(word, 0x3A)
        let upper = word & ~(ones &* 0x20)
        let isLetter = atLeast(upper, 0x41) & ~atLeast(upper, 0x47)
        guard isDigit | isLetter == high else { return nil }
        // A digit's value is its low four bits; a letter (bit 6 set) adds 9 to them.
        let nibbles = (word & (ones &* 0x0F)) &+ ((word >> 6) & ones) &* 9
        // Pairs of digits into bytes, bytes into halfwords, halfwords into the word, the earlier
        // of each pair the more significant.
        let bytePairs = (nibbles << 4 | nibbles >> 8) & 0x00FF_00FF_00FF_00FF
        let halfwords = (bytePairs << 8 | bytePairs >> 16) & 0x0000_FFFF_0000_FFFF
        return UInt32(truncatingIfNeeded: halfwords << 16 | halfwords >> 32)
    }

    /// The entry at `offset` and the offset of the next one.
    static func entry(in bytes: UnsafeRawBufferPointer, at offset: Int) throws(CPIOError) -> (CPIOFile, Int) {
        guard offset <= bytes.count, bytes.count - offset >= headerSize else {
            throw offset >= bytes.count ? .missingTrailer : .truncated
        }
        let magic: StaticString = "070701"
        for index in 0..<6 where bytes[offset + index] != magic.utf8Start[index] { throw .badMagic }
        let mode = try field(bytes, offset + 14)
        let fileSize = Int(try field(bytes, offset + 54))
        let nameSize = Int(try field(bytes, offset + 94))
        let nameStart = offset + headerSize
        guard nameSize >= 1, nameSize <= bytes.count - nameStart else { throw .truncated }
        guard bytes[nameStart + nameSize - 1] == 0 else { throw .unterminatedName }
        let dataStart = align4(nameStart + nameSize)
        guard dataStart <= bytes.count, fileSize <= bytes.count - dataStart else { throw .truncated }
        let file = CPIOFile(name: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(nameStart + nameSize - 1)]),
                            data: UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + fileSize)]),
                            mode: mode)
        return (file, align4(dataStart + fileSize))
    }

    public func file(named name: StaticString) -> CPIOFile? {
        file(named: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    public func file(named name: UnsafeRawBufferPointer) -> CPIOFile? {
        for file in self where file.isRegularFile && file.nameEquals(name) { return file }
        return nil
    }

    public struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        public mutating func next() -> CPIOFile? {
            // Validated at init, so every entry up to the trailer parses.
            guard let (file, next) = try? CPIOArchive.entry(in: bytes, at: offset), !file.nameEquals("TRAILER!!!") else {
                return nil
            }
            offset = next
            return file
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: bytes) }
}

/// The regular files of an archive by name, read once: a lookup compares names only, where a
/// search of the archive parses every header it passes. For a loader that looks up programs
/// again and again (a spawn each time). Its table lives in storage the caller provides
/// (`storageBytes`, 8-byte aligned), so that making one allocates nothing and cannot fail; the
/// storage and the archive's bytes must stay while it is used.
public struct CPIODirectory {
    struct Entry {
        /// Without a leading "./".
        let name: UnsafeRawBufferPointer
        let data: UnsafeRawBufferPointer
    }

    let entries: UnsafeMutableBufferPointer<Entry>

    /// The bytes of storage a directory of `archive` takes.
    public static func storageBytes(for archive: CPIOArchive) -> Int {
        max(archive.fileCount, 1) * MemoryLayout<Entry>.stride
    }

    public init(_ archive: CPIOArchive, storage: UnsafeMutableRawPointer) {
        let table = storage.bindMemory(to: Entry.self, capacity: max(archive.fileCount, 1))
        var count = 0
        for file in archive where file.isRegularFile && count < archive.fileCount {
            (table + count).initialize(to: Entry(name: CPIOFile.withoutDotSlash(file.name), data: file.data))
            count += 1
        }
        entries = UnsafeMutableBufferPointer(start: table, count: count)
    }

    /// The storage it was made in.
    public var storage: UnsafeMutableRawPointer? { entries.baseAddress.map { UnsafeMutableRawPointer($0) } }

    /// The bytes of the first regular file named `name` (with or without a leading "./").
    public func file(named name: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let wanted = CPIOFile.withoutDotSlash(name)
        for entry in entries where CPIOFile.sameBytes(entry.name, wanted) { return entry.data }
        return nil
    }
}
