// Names the function of a user program a fault happened in, for the fault report. The programs'
// symbol tables follow the programs' archive in the initial ramdisk (tools/symbol-table.py
// --bundle) and are never loaded into a process, nor mapped by loaders, so spawning costs nothing
// more. The kernel finds a program's table and file by the process's name and names a function
// only if that function's first bytes in the file are the bytes the process has at its address:
// a process named after a program it does not run gets no name rather than a wrong one.
// Everything read is checked (the archives by CPIOArchive, the table by SymbolTable, the
// process's memory through UserMemory), and the work is bounded by the ramdisk's file count.

enum ProgramSymbols {
    /// How many of a function's first bytes must match.
    static let comparedBytes = 32

    /// Writes `function+0xoffset (file:line)` for `address` in `process`, the process whose
    /// address space is live; false, with nothing written, when it cannot be named.
    static func describe(_ address: UInt64, in process: Process, into line: inout TextLine) -> Bool {
        guard let ramdisk = Processes.initialRamdisk else { return false }
        let (programBytes, tableBytes) = SymbolTable.splitRamdisk(ramdisk)
        guard let tableBytes, let programs = try? CPIOArchive(programBytes), let tables = try? CPIOArchive(tableBytes)
        else { return false }
        var name = process.name
        let nameLength = process.nameLength
        let (found, foundTable) = withUnsafeBytes(of: &name) { bytes in
            let name = UnsafeRawBufferPointer(rebasing: bytes[0..<nameLength])
            return (programs.file(named: name), tables.file(named: name))
        }
        guard let file = found, let tableFile = foundTable, let table = SymbolTable(tableFile.data),
              let symbol = table.lookup(address), matches(symbol, file: file.data) else { return false }
        table.describe(symbol, into: &line)
        return true
    }

    /// Whether the process has the file's bytes at the start of `symbol`.
    static func matches(_ symbol: SymbolTable.Symbol, file: UnsafeRawBufferPointer) -> Bool {
        guard let image = try? ELFImage(file) else { return false }
        for index in 0..<image.segmentCount {
            let segment = image.segment(index)
            let start = segment.virtualAddress.value
            guard symbol.start >= start, symbol.start - start < segment.fileSize else { continue }
            let count = Int(min(UInt64(comparedBytes), symbol.size, segment.fileSize - (symbol.start - start)))
            let fileOffset = Int(segment.fileOffset + (symbol.start - start))
            var running = InlineArray<32, UInt8>(repeating: 0)
            let copied = withUnsafeMutableBytes(of: &running) { buffer -> Bool in
                (try? UserMemory.copyIn(to: buffer.baseAddress!, from: UserAddress(symbol.start), count: UInt64(count))) != nil
            }
            guard copied, count > 0 else { return false }
            for offset in 0..<count where running[offset] != file[fileOffset + offset] { return false }
            return true
        }
        return false
    }
}
