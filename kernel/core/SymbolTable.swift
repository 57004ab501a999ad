// Reading a symbol table built by tools/symbol-table.py: which function holds an address, its
// name and the file and line where it begins. The panic and fault reports use it, so every read
// is bounds-checked, every loop bounded, and nothing allocates: a damaged or hostile table gives
// "no symbol", never a fault. The blob's layout is described in the tool.

public struct SymbolTable {
    /// The blob's first four bytes, "KSYM".
    public static let magic: UInt32 = 0x4D59_534B
    public static let version: UInt16 = 1
    static let headerSize = 48
    static let entrySize = 16
    /// What ends a ramdisk that carries tables (`splitRamdisk`): "SKSYMTAB".
    static let trailerMagic: UInt64 = 0x4241_544D_5953_4B53
    static let trailerSize = 16
    /// Longest name, path and token written; more is cut off.
    public static let maximumNameLength = 160
    static let maximumTokenLength = 64

    let bytes: UnsafeRawBufferPointer
    /// The link address entries are relative to.
    public let base: UInt64
    public let count: Int
    let fileCount: Int
    let tokenCount: Int
    let entriesOffset: Int
    let filesOffset: Int
    let tokensOffset: Int
    let stringsOffset: Int
    let stringsSize: Int

    /// A function found by `lookup`.
    public struct Symbol: Equatable {
        /// Its link address and size.
        public let start: UInt64
        public let size: UInt64
        /// The looked-up address minus `start`.
        public let offset: UInt64
        let name: Int
        let location: UInt32

        /// The line where the function begins; 0 when the table does not say.
        public var line: Int { Int(location & 0xF_FFFF) }
        var fileIndex: Int? { location >> 20 == 0 ? nil : Int(location >> 20) - 1 }
    }

    /// The table in `bytes`, or nil if its header is not one (wrong magic or version, or a part
    /// that does not lie inside `bytes`).
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.headerSize, bytes.count <= Int(Int32.max) else { return nil }
        self.bytes = bytes
        guard bytes.littleEndian32(at: 0) == Self.magic, bytes.littleEndian16(at: 4) == Self.version else { return nil }
        tokenCount = Int(bytes.littleEndian16(at: 6))
        count = Int(bytes.littleEndian32(at: 8))
        fileCount = Int(bytes.littleEndian32(at: 12))
        base = bytes.littleEndian64(at: 16)
        entriesOffset = Int(bytes.littleEndian32(at: 24))
        filesOffset = Int(bytes.littleEndian32(at: 28))
        tokensOffset = Int(bytes.littleEndian32(at: 32))
        stringsOffset = Int(bytes.littleEndian32(at: 36))
        stringsSize = Int(bytes.littleEndian32(at: 40))
        let total = Int(bytes.littleEndian32(at: 44))
        // Every count and offset is below 2^32, so these products and sums cannot overflow Int.
        guard tokenCount <= 128, total <= bytes.count,
              Self.fits(entriesOffset, count * Self.entrySize, in: total),
              Self.fits(filesOffset, fileCount * 4, in: total),
              Self.fits(tokensOffset, tokenCount * 4, in: total),
              Self.fits(stringsOffset, stringsSize, in: total) else { return nil }
    }

    /// A ramdisk as the build makes it: the programs' cpio archive, then a cpio archive of their
    /// symbol tables (one file per program, named like it), then a 16-byte trailer, the second
    /// archive's size and "SKSYMTAB". Nil tables when `ramdisk` does not end in the trailer or
    /// the size it gives does not fit: then all of it is programs.
    public static func splitRamdisk(_ ramdisk: UnsafeRawBufferPointer)
        -> (programs: UnsafeRawBufferPointer, tables: UnsafeRawBufferPointer?) {
        guard ramdisk.count >= trailerSize else { return (ramdisk, nil) }
        let trailer = ramdisk.count - trailerSize
        guard ramdisk.littleEndian64(at: trailer + 8) == trailerMagic else { return (ramdisk, nil) }
        let size = ramdisk.littleEndian64(at: trailer)
        guard size <= UInt64(trailer) else { return (ramdisk, nil) }
        let start = trailer - Int(size)
        return (UnsafeRawBufferPointer(rebasing: ramdisk[0..<start]),
                UnsafeRawBufferPointer(rebasing: ramdisk[start..<trailer]))
    }

    static func fits(_ offset: Int, _ length: Int, in total: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= total && length <= total - offset
    }

    func entryField(_ index: Int, _ field: Int) -> UInt32 {
        bytes.littleEndian32(at: entriesOffset + index * Self.entrySize + 4 * field)
    }

    /// The function whose code holds link address `address`, or nil (before the first, between
    /// two, past the last). A binary search: at most 33 steps whatever the table says, and an
    /// unsorted table only gives wrong answers.
    public func lookup(_ address: UInt64) -> Symbol? {
        guard address >= base, address - base <= UInt64(UInt32.max), count > 0 else { return nil }
        let target = UInt32(address - base)
        // The last entry starting at or before `target`.
        var low = 0
        var high = count
        while low < high {
            let middle = low + (high - low) / 2
            if entryField(middle, 0) <= target { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let index = low - 1
        let start = entryField(index, 0)
        let size = entryField(index, 1)
        guard target >= start, UInt64(target - start) < UInt64(size) else { return nil }
        return Symbol(start: base &+ UInt64(start), size: UInt64(size), offset: UInt64(target - start),
                      name: Int(entryField(index, 2)), location: entryField(index, 3))
    }

    /// The function a call returning to `returnAddress` was made from: the one holding the call
    /// instruction just before, which for a call that never returns may be the function before
    /// the one `returnAddress` lies in. The offset is still `returnAddress`'s.
    public func lookup(returnAddress: UInt64) -> Symbol? {
        guard returnAddress > 0, let symbol = lookup(returnAddress - 1) else { return nil }
        return Symbol(start: symbol.start, size: symbol.size, offset: symbol.offset + 1, name: symbol.name,
                      location: symbol.location)
    }

    /// Writes the NUL-terminated string at `offset` of the string area, expanding tokens when
    /// `expanding`; at most `limit` bytes.
    func writeString<Output: TextOutput>(at offset: Int, expanding: Bool, limit: Int, written: inout Int,
                                         into output: inout Output) {
        guard offset >= 0, offset < stringsSize else { return }
        var position = stringsOffset + offset
        let end = stringsOffset + stringsSize
        while position < end && written < limit {
            let byte = bytes[position]
            if byte == 0 { return }
            if expanding && byte >= 0x80 {
                let token = Int(byte) - 0x80
                if token < tokenCount {
                    let tokenOffset = Int(bytes.littleEndian32(at: tokensOffset + 4 * token))
                    // A token's text is plain: it expands only one level.
                    writeString(at: tokenOffset, expanding: false, limit: min(limit, written + Self.maximumTokenLength),
                                written: &written, into: &output)
                } else {
                    output.write(byte: UInt8(ascii: "?"))
                    written += 1
                }
            } else {
                output.write(byte: byte < 0x20 || byte >= 0x7F ? UInt8(ascii: "?") : byte)
                written += 1
            }
            position += 1
        }
    }

    public func writeName<Output: TextOutput>(of symbol: Symbol, into output: inout Output) {
        var written = 0
        writeString(at: symbol.name, expanding: true, limit: Self.maximumNameLength, written: &written, into: &output)
    }

    /// Writes the path of the file the function is in; false (nothing written) if unknown.
    @discardableResult
    public func writeFile<Output: TextOutput>(of symbol: Symbol, into output: inout Output) -> Bool {
        guard let index = symbol.fileIndex, index < fileCount, symbol.line > 0 else { return false }
        var written = 0
        writeString(at: Int(bytes.littleEndian32(at: filesOffset + 4 * index)), expanding: false,
                    limit: Self.maximumNameLength, written: &written, into: &output)
        return written > 0
    }

    /// `name+0xoffset`, then ` (file:line)` where the table has it.
    public func describe<Output: TextOutput>(_ symbol: Symbol, into output: inout Output) {
        writeName(of: symbol, into: &output)
        output.write("+")
        output.writeHex(symbol.offset, digits: 1)
        guard symbol.fileIndex != nil, symbol.line > 0 else { return }
        var file = TextLine()
        guard writeFile(of: symbol, into: &file) else { return }
        output.write(" (")
        file.forEachByte { output.write(byte: $0) }
        output.write(":")
        output.writeDecimal(UInt64(symbol.line))
        output.write(")")
    }
}
