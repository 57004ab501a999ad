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
        let mine = Self.withoutDotSlash(name)
        let other = Self.withoutDotSlash(other)
        guard mine.count == other.count else { return false }
        for index in 0..<mine.count where mine[index] != other[index] { return false }
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

    /// One 8-digit hex field of the header at `offset`.
    static func field(_ bytes: UnsafeRawBufferPointer, _ offset: Int) throws(CPIOError) -> UInt32 {
        var value: UInt32 = 0
        for index in offset..<(offset + 8) {
            let digit = bytes[index]
            let nibble: UInt8
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = digit - UInt8(ascii: "A") + 10
            default: throw .badHeaderField
            }
            value = value << 4 | UInt32(nibble)
        }
        return value
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
