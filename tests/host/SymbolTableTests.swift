import Foundation
import Testing
import PropertyBased
@testable import KernelCore

/// The symbol tables tools/symbol-table.py made from the kernel (with files and lines) and from
/// the crasher program fixture (names only: its debug information is stripped).
private func symbolFixture(_ name: String) -> [UInt8] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/symbols").appendingPathComponent(name)
    return [UInt8]((try? Data(contentsOf: url)) ?? Data())
}

private func withTable<Result>(_ bytes: [UInt8], _ body: (SymbolTable?) -> Result) -> Result {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
    defer { storage.deallocate() }
    storage.copyBytes(from: bytes)
    return body(SymbolTable(UnsafeRawBufferPointer(rebasing: storage[0..<bytes.count])))
}

/// What a report prints for `address`: `name+0xoffset (file:line)`, or nil.
private func describe(_ table: SymbolTable, _ address: UInt64) -> String? {
    guard let symbol = table.lookup(address) else { return nil }
    var line = TextLine()
    table.describe(symbol, into: &line)
    return String(decoding: (0..<line.count).map { line[$0] }, as: UTF8.self)
}

private func name(_ table: SymbolTable, _ address: UInt64) -> String? {
    guard let symbol = table.lookup(address) else { return nil }
    var line = TextLine()
    table.writeName(of: symbol, into: &line)
    return String(decoding: (0..<line.count).map { line[$0] }, as: UTF8.self)
}

/// A blob in the tool's format, written here so the edge cases are exact: functions at 0x100
/// (0x20 bytes), 0x140 (0x10) and 0x150 (0x30), a gap at 0x120..0x140, and one token.
private func handMadeBlob(base: UInt64 = 0x40_0000) -> [UInt8] {
    var strings: [UInt8] = [0]
    func add(_ bytes: [UInt8]) -> UInt32 {
        let offset = UInt32(strings.count)
        strings += bytes + [0]
        return offset
    }
    let token = add(Array("Scheduler.".utf8))
    let tick = add([0x80] + Array("tick()".utf8))
    let main = add(Array("main".utf8))
    let fault = add(Array("static Process.fault(_:kind:)".utf8))
    let file = add(Array("kernel/process/Process.swift".utf8))
    let entries: [(UInt32, UInt32, UInt32, UInt32)] = [(0x100, 0x20, tick, 0), (0x140, 0x10, main, 0),
                                                       (0x150, 0x30, fault, 1 << 20 | 372)]
    var blob: [UInt8] = []
    func put(_ value: UInt64, _ width: Int) { for index in 0..<width { blob.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) } }
    let entriesOffset = 48, filesOffset = entriesOffset + 16 * entries.count, tokensOffset = filesOffset + 4
    let stringsOffset = tokensOffset + 4
    put(UInt64(SymbolTable.magic), 4); put(1, 2); put(1, 2); put(UInt64(entries.count), 4); put(1, 4)
    put(base, 8)
    for value in [entriesOffset, filesOffset, tokensOffset, stringsOffset, strings.count,
                  stringsOffset + strings.count] { put(UInt64(value), 4) }
    for entry in entries { put(UInt64(entry.0), 4); put(UInt64(entry.1), 4); put(UInt64(entry.2), 4); put(UInt64(entry.3), 4) }
    put(UInt64(file), 4)
    put(UInt64(token), 4)
    return blob + strings
}

@Suite struct SymbolTableTests {
    static let kernel = symbolFixture("kernel.symbols")
    static let crasher = symbolFixture("crasher.symbols")

    @Test func lookupsAtTheEdges() {
        withTable(handMadeBlob()) { table in
            guard let table else { Issue.record("hand-made table refused"); return }
            #expect(name(table, 0x40_0000) == nil, "before the first function")
            #expect(name(table, 0x40_00FF) == nil)
            #expect(describe(table, 0x40_0100) == "Scheduler.tick()+0x0")
            #expect(describe(table, 0x40_011F) == "Scheduler.tick()+0x1f")
            #expect(name(table, 0x40_0120) == nil, "between two functions")
            #expect(name(table, 0x40_013F) == nil)
            #expect(describe(table, 0x40_0140) == "main+0x0")
            #expect(describe(table, 0x40_0158) == "static Process.fault(_:kind:)+0x8 (kernel/process/Process.swift:372)")
            #expect(name(table, 0x40_0180) == nil, "past the end")
            #expect(name(table, 0x3F_FFFF) == nil, "below the base")
            #expect(name(table, 0) == nil)
            #expect(name(table, UInt64.max) == nil)
        }
    }

    /// The kernel's table, as the build embeds it: every function found at its first and last
    /// byte, names readable, files and lines where the code has them.
    @Test func kernelTable() {
        withTable(Self.kernel) { table in
            guard let table else { Issue.record("kernel table refused"); return }
            #expect(table.base == 0)
            #expect(table.count > 1000)
            #expect(name(table, 0) == "_start")
            var previousEnd: UInt64 = 0
            var withLines = 0
            for index in 0..<table.count {
                let start = UInt64(table.entryField(index, 0)), size = UInt64(table.entryField(index, 1))
                #expect(start >= previousEnd, "sorted, not overlapping")
                previousEnd = start + size
                #expect(table.lookup(start)?.offset == 0)
                #expect(table.lookup(start + size - 1)?.start == start)
                if table.lookup(start)!.line > 0 { withLines += 1 }
            }
            #expect(table.lookup(previousEnd) == nil)
            #expect(withLines > table.count / 4, "most of the kernel's own functions have a file and line")
            let names = (0..<table.count).compactMap { name(table, UInt64(table.entryField($0, 0))) }
            #expect(names.contains("kernelPanic(_:file:line:)"))
            #expect(names.contains("static Panic.backtrace(from:)"))
            #expect(!names.contains { $0.hasPrefix("$e") }, "no mangled names")
            let panicStart = (0..<table.count).first { name(table, UInt64(table.entryField($0, 0))) == "kernelPanic(_:file:line:)" }
            if let panicStart {
                let description = describe(table, UInt64(table.entryField(panicStart, 0)) + 0x18) ?? ""
                #expect(description.hasPrefix("kernelPanic(_:file:line:)+0x18 (kernel/runtime/Panic.swift:"))
            }
        }
    }

    @Test func programTable() {
        withTable(Self.crasher) { table in
            guard let table else { Issue.record("crasher table refused"); return }
            #expect(table.base == 0x40_0000)
            #expect(name(table, 0x40_0000) == "_start")
            #expect(name(table, 0x3F_FFFC) == nil)
        }
    }

    /// A ramdisk as the build makes it: the programs' archive, the tables' archive, the trailer.
    @Test func tablesAfterTheRamdisk() {
        let programs = Array(repeating: UInt8(0x30), count: 1000)
        let tables = Self.crasher
        var ramdisk = programs + tables
        for value in [UInt64(tables.count), 0x4241_544D_5953_4B53] {
            for index in 0..<8 { ramdisk.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
        }
        ramdisk.withUnsafeBytes { bytes in
            let (programPart, tablePart) = SymbolTable.splitRamdisk(bytes)
            #expect(programPart.count == programs.count)
            #expect(tablePart.map { Array($0) } == tables)
            // A size reaching before the start, a missing trailer, or too few bytes: all programs.
            var damaged = Array(bytes)
            damaged[damaged.count - 16 + 7] = 0x10
            damaged.withUnsafeBytes {
                let split = SymbolTable.splitRamdisk($0)
                #expect(split.tables == nil && split.programs.count == damaged.count)
            }
            let cut = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 1)])
            #expect(SymbolTable.splitRamdisk(cut).tables == nil)
            #expect(SymbolTable.splitRamdisk(UnsafeRawBufferPointer(rebasing: bytes[0..<7])).programs.count == 7)
        }
    }

    @Test func truncatedTablesAreRefusedOrSafe() {
        for cut in stride(from: 0, to: Self.kernel.count, by: 97) {
            withTable(Array(Self.kernel.prefix(cut))) { table in
                #expect(table == nil, "a table cut at \(cut) bytes")
            }
        }
        for cut in 0..<handMadeBlob().count {
            withTable(Array(handMadeBlob().prefix(cut))) { #expect($0 == nil) }
        }
    }

    /// Random damage anywhere in a table: lookups and names never read outside it or loop long,
    /// and a name stays within its bound.
    @Test func corruptTablesNeverCrash() async {
        let blob = handMadeBlob()
        let damage = Gen.int(in: 0...(blob.count - 1)).array(of: 1...8)
        await propertyCheck(count: 3000, input: damage, Gen.int(in: 0...255), Gen.uint64(in: 0x3F_FF00...0x40_0200)) { positions, value, address in
            var bytes = blob
            for position in positions { bytes[position] = UInt8(truncatingIfNeeded: value &+ position &* 61) }
            withTable(bytes) { table in
                guard let table else { return }
                if let text = describe(table, address) {
                    #expect(text.utf8.count <= TextLine.capacity)
                }
            }
        }
        let kernelDamage = Gen.int(in: 0...(Self.kernel.count - 1)).array(of: 1...8)
        await propertyCheck(count: 300, input: kernelDamage, Gen.int(in: 0...255), Gen.uint64(in: 0...0x5_0000)) { positions, value, address in
            var bytes = Self.kernel
            for position in positions { bytes[position] = UInt8(truncatingIfNeeded: value &+ position) }
            withTable(bytes) { table in
                guard let table else { return }
                _ = describe(table, address)
            }
        }
    }

    @Test func headersThatLieAreRefused() {
        var blob = handMadeBlob()
        blob[0] ^= 1
        withTable(blob) { #expect($0 == nil, "magic") }
        blob = handMadeBlob()
        blob[8] = 0xFF; blob[9] = 0xFF; blob[10] = 0xFF; blob[11] = 0x0F
        withTable(blob) { #expect($0 == nil, "entries past the end") }
        blob = handMadeBlob()
        blob[36] = 0xF0; blob[39] = 0xFF
        withTable(blob) { #expect($0 == nil, "strings past the end") }
    }
}
