import Foundation
import Testing
import PropertyBased
@testable import KernelCore

private func fixture(_ path: String) -> [UInt8] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures").appendingPathComponent(path)
    return [UInt8]((try? Data(contentsOf: url)) ?? Data())
}

/// Runs `body` with `bytes` in a buffer that ends exactly where the bytes end.
private func withBuffer<Result>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
    defer { storage.deallocate() }
    storage.copyBytes(from: bytes)
    return body(UnsafeRawBufferPointer(rebasing: storage[0..<bytes.count]))
}

private func parseELF(_ bytes: [UInt8]) -> Result<[ELFSegment], ELFError> {
    withBuffer(bytes) { buffer in
        do throws(ELFError) {
            let image = try ELFImage(buffer)
            return .success((0..<image.segmentCount).map { image.segment($0) })
        } catch {
            return .failure(error)
        }
    }
}

private func elfError(_ bytes: [UInt8]) -> ELFError? {
    if case .failure(let error) = parseELF(bytes) { return error }
    return nil
}

private func little64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}

private func little32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: little64(bytes, offset)) }

private func setLittle(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64, width: Int) {
    for index in 0..<width { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
}

/// Offsets of the PT_LOAD program headers, read independently of the code under test.
private func loadHeaders(_ bytes: [UInt8]) -> [Int] {
    let table = Int(little64(bytes, 32))
    let count = Int(bytes[56]) | Int(bytes[57]) << 8
    return (0..<count).map { table + $0 * 56 }.filter { little32(bytes, $0) == 1 }
}

@Suite struct ELFImageTests {
    static let hello = fixture("elf/hello.elf")

    @Test func realProgramParses() throws {
        let segments = try parseELF(Self.hello).get()
        let headers = loadHeaders(Self.hello)
        #expect(segments.count == headers.count && segments.count >= 3)
        for (segment, header) in zip(segments, headers) {
            let flags = little32(Self.hello, header + 4)
            #expect(segment.fileOffset == little64(Self.hello, header + 8))
            #expect(segment.virtualAddress.value == little64(Self.hello, header + 16))
            #expect(segment.fileSize == little64(Self.hello, header + 32))
            #expect(segment.memorySize == little64(Self.hello, header + 40))
            var expected: MappingPermissions = [.user]
            if flags & 2 != 0 { expected.insert(.write) }
            if flags & 1 != 0 { expected.insert(.execute) }
            #expect(segment.permissions == expected)
        }
        #expect(segments[0].permissions == [.user, .execute] && segments[0].virtualAddress.value == 0x40_0000)
        #expect(segments.contains { $0.permissions == [.user, .write] && $0.memorySize > $0.fileSize }) // data + bss
        let entry = withBuffer(Self.hello) { (try? ELFImage($0))?.entry }
        #expect(entry == VirtualAddress(little64(Self.hello, 24)))
        // The whole pages of the segments, summed here from the headers: what the image takes,
        // and the most a bound on it may be set below and still pass.
        let pages = headers.reduce(UInt64(0)) { total, header in
            let start = little64(Self.hello, header + 16) & ~0xFFF
            let end = (little64(Self.hello, header + 16) + little64(Self.hello, header + 40) + 0xFFF) & ~0xFFF
            return total + (end - start)
        }
        #expect(withBuffer(Self.hello) { (try? ELFImage($0))?.pageBytes } == pages)
        #expect(withBuffer(Self.hello) { (try? ELFImage($0, maximumPageBytes: pages)) != nil })
        let bounded = withBuffer(Self.hello) { buffer -> ELFError? in
            do throws(ELFError) {
                _ = try ELFImage(buffer, maximumPageBytes: pages - 1)
                return nil
            } catch {
                return error
            }
        }
        #expect(bounded == .segmentOutsideUserSpace)
        #expect(elfError(fixture("elf/crasher.elf")) == nil)
    }

    /// Each defect, made in a copy of the real program, is reported as exactly that defect.
    @Test func corruptedHeaders() throws {
        func damaged(_ change: (inout [UInt8]) -> Void) -> ELFError? {
            var bytes = Self.hello
            change(&bytes)
            return elfError(bytes)
        }
        let first = loadHeaders(Self.hello)[0]
        let second = loadHeaders(Self.hello)[1]
        #expect(damaged { $0 = Array($0.prefix(40)) } == .truncated)
        #expect(damaged { $0[1] = UInt8(ascii: "X") } == .badMagic)
        #expect(damaged { $0[4] = 1 } == .notELF64)
        #expect(damaged { $0[5] = 2 } == .notLittleEndian)
        #expect(damaged { $0[6] = 0 } == .badVersion)
        #expect(damaged { setLittle(&$0, 16, 3, width: 2) } == .notExecutable) // ET_DYN
        #expect(damaged { setLittle(&$0, 18, 62, width: 2) } == .wrongMachine) // x86-64
        #expect(damaged { setLittle(&$0, 32, UInt64($0.count), width: 8) } == .badProgramHeaderTable)
        #expect(damaged { setLittle(&$0, 56, 0xFFFF, width: 2) } == .badProgramHeaderTable)
        #expect(damaged { setLittle(&$0, 54, 32, width: 2) } == .badProgramHeaderTable)
        #expect(damaged { setLittle(&$0, first + 8, UInt64($0.count), width: 8) } == .segmentOutsideFile)
        #expect(damaged { setLittle(&$0, first + 32, UInt64.max / 2, width: 8); setLittle(&$0, first + 40, UInt64.max / 2, width: 8) }
                == .segmentOutsideFile)
        #expect(damaged { setLittle(&$0, first + 16, 0xFFFF_0000_4000_0000, width: 8) } == .segmentOutsideUserSpace)
        #expect(damaged { setLittle(&$0, first + 16, 0x1000 - 0x1000, width: 8) } == .segmentOutsideUserSpace) // page 0
        #expect(damaged { setLittle(&$0, first + 16, 0x7FFF_FFFF_F000, width: 8); setLittle(&$0, first + 40, 0x10_0000, width: 8) }
                == .segmentOutsideUserSpace)
        #expect(damaged { setLittle(&$0, first + 40, 0x10, width: 8) } == .fileSizeExceedsMemorySize)
        #expect(damaged { setLittle(&$0, first + 16, 0x40_0010, width: 8) } == .misalignedSegment)
        #expect(damaged { setLittle(&$0, first + 4, 7, width: 4) } == .writableAndExecutable)
        #expect(damaged { setLittle(&$0, second + 16, 0x40_0000 + little64($0, second + 16) % 0x1000, width: 8) }
                == .segmentsOverlap)
        #expect(damaged { setLittle(&$0, 24, 0x9_0000_0000, width: 8) } == .entryNotExecutable)
        #expect(damaged { setLittle(&$0, first + 4, 4, width: 4) } == .entryNotExecutable) // text made read-only
        #expect(damaged { for header in loadHeaders($0) { setLittle(&$0, header, 6, width: 4) } } == .noLoadableSegments)
    }

    @Test func tooManySegments() {
        // A synthetic image with 17 one-page PT_LOAD segments, the first executable.
        var bytes = [UInt8](repeating: 0, count: 64 + 17 * 56)
        bytes[0...7] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0]
        setLittle(&bytes, 16, 2, width: 2); setLittle(&bytes, 18, 183, width: 2); setLittle(&bytes, 20, 1, width: 4)
        setLittle(&bytes, 24, 0x40_0000, width: 8); setLittle(&bytes, 32, 64, width: 8)
        setLittle(&bytes, 54, 56, width: 2); setLittle(&bytes, 56, 17, width: 2)
        for index in 0..<17 {
            let header = 64 + index * 56
            setLittle(&bytes, header, 1, width: 4)
            setLittle(&bytes, header + 4, index == 0 ? 5 : 4, width: 4)
            setLittle(&bytes, header + 16, 0x40_0000 + UInt64(index) * 0x1000, width: 8)
            setLittle(&bytes, header + 40, 0x100, width: 8)
        }
        #expect(elfError(bytes) == .tooManySegments)
        setLittle(&bytes, 56, 16, width: 2)
        #expect(elfError(bytes) == nil)
    }

    /// Random damage to the real program never crashes the validator, and anything it accepts
    /// satisfies what the loader relies on.
    @Test func randomCorruptionKeepsTheInvariants() async {
        let damage = Gen.int(in: 0...(min(Self.hello.count, 512) - 1)).array(of: 1...6)
        await propertyCheck(count: 2000, input: damage, Gen.int(in: 0...255), Gen.int(in: 0...Self.hello.count)) { positions, value, cut in
            var bytes = Self.hello
            for position in positions { bytes[position] = UInt8(truncatingIfNeeded: value &+ position &* 31) }
            for candidate in [bytes, Array(bytes.prefix(cut))] {
                guard case .success(let segments) = parseELF(candidate) else { continue }
                for segment in segments {
                    #expect(segment.virtualAddress.value >= 0x1000)
                    #expect(segment.virtualAddress.value + segment.memorySize <= 0x0000_8000_0000_0000)
                    #expect(segment.fileOffset + segment.fileSize <= UInt64(candidate.count))
                    #expect(!(segment.permissions.contains(.write) && segment.permissions.contains(.execute)))
                }
            }
        }
    }
}

private func cpioResult(_ bytes: [UInt8]) -> Result<[(name: String, size: Int, regular: Bool)], CPIOError> {
    withBuffer(bytes) { buffer in
        do throws(CPIOError) {
            let archive = try CPIOArchive(buffer)
            return .success(archive.map { (String(decoding: Array($0.name), as: UTF8.self), $0.data.count, $0.isRegularFile) })
        } catch {
            return .failure(error)
        }
    }
}

@Suite struct CPIOArchiveTests {
    static let archive = fixture("cpio/programs.cpio")

    @Test func realArchive() throws {
        let entries = try cpioResult(Self.archive).get()
        #expect(entries.map(\.name) == [".", "crasher", "etc", "etc/motd", "hello"])
        #expect(entries.filter(\.regular).map(\.name) == ["crasher", "etc/motd", "hello"])
        withBuffer(Self.archive) { buffer in
            guard let archive = try? CPIOArchive(buffer) else { Issue.record("archive did not parse"); return }
            #expect(archive.fileCount == 5)
            let hello = archive.file(named: "hello")
            #expect(hello.map { Array($0.data) } == fixture("elf/hello.elf"))
            #expect(archive.file(named: "./hello")?.data.count == fixture("elf/hello.elf").count)
            #expect(archive.file(named: "etc/motd").map { String(decoding: Array($0.data), as: UTF8.self) } == "SwiftKernel\n")
            #expect(archive.file(named: "etc") == nil) // a directory is not a file
            #expect(archive.file(named: "hell") == nil && archive.file(named: "hello2") == nil)
            #expect(hello?.nameEquals("hello") == true && hello?.nameEquals("crasher") == false)
            // The directory finds what a search of the archive finds, and nothing else.
            let storage = UnsafeMutableRawPointer.allocate(byteCount: CPIODirectory.storageBytes(for: archive), alignment: 8)
            defer { storage.deallocate() }
            let directory = CPIODirectory(archive, storage: storage)
            for name in ["hello", "./hello", "crasher", "etc/motd", "./etc/motd", "etc", ".", "hell", "hello2", "", "TRAILER!!!"] {
                let bytes = Array(name.utf8)
                bytes.withUnsafeBytes { name in
                    let found = directory.file(named: name)
                    let searched = archive.file(named: name)?.data
                    #expect(found?.baseAddress == searched?.baseAddress && found?.count == searched?.count, "\(name)")
                }
            }
        }
    }

    /// The header fields' word-at-a-time decoding against a digit-by-digit model: every byte
    /// value at every position, over random words (a third made of hex digits of either case, so
    /// that most decode), gives the model's value or, for any byte that is not a hex digit, nil.
    @Test func hexFieldsDecodeAsTheModelDoes() async {
        func model(_ word: UInt64) -> UInt32? {
            var value: UInt32 = 0
            for index in 0..<8 {
                let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index)))
                guard let digit = Int(String(UnicodeScalar(byte)), radix: 16), byte < 0x80 else { return nil }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        let digits = Array("0123456789abcdefABCDEF".utf8)
        await propertyCheck(count: 3000, input: Gen.uint64(in: 0...UInt64.max), Gen.int(in: 0...2), Gen.int(in: 0...255)) { random, kind, byte in
            var word = random
            if kind < 2 {
                // Hex digits throughout; for kind 1, one byte then replaced by any value.
                word = 0
                for index in 0..<8 { word |= UInt64(digits[Int(random >> (8 * UInt64(index)) & 0xFF) % digits.count]) << (8 * UInt64(index)) }
                if kind == 1 {
                    let shift = 8 * (random >> 61)
                    word = word & ~(0xFF << shift) | UInt64(byte) << shift
                }
            }
            #expect(CPIOArchive.hexValue(word) == model(word), "word \(String(word, radix: 16))")
        }
        #expect(CPIOArchive.hexValue(0x3030_3030_3030_3030) == 0)
        #expect(CPIOArchive.hexValue(0x6666_6666_4646_4646) == 0xFFFF_FFFF)
        #expect(CPIOArchive.hexValue(0x3837_3635_3433_3231) == 0x1234_5678)
    }

    /// Names stored with "./" (as `find . | cpio` writes some) are found without it, and the reverse.
    @Test func dotSlashNames() {
        func entry(_ name: String, _ data: [UInt8], mode: UInt32 = 0o100644) -> [UInt8] {
            let encoded = Array(name.utf8) + [0]
            let fields: [UInt32] = [1, mode, 0, 0, 1, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(encoded.count), 0]
            var bytes = Array("070701".utf8) + fields.flatMap { Array(String(format: "%08x", $0).utf8) } + encoded
            bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
            return bytes + data + [UInt8](repeating: 0, count: (4 - data.count % 4) % 4)
        }
        let archive = entry("./init", [1, 2, 3]) + entry("bin", [], mode: 0o040755) + entry("TRAILER!!!", [], mode: 0)
        withBuffer(archive) { buffer in
            guard let parsed = try? CPIOArchive(buffer) else { Issue.record("archive did not parse"); return }
            #expect(parsed.fileCount == 2)
            #expect(parsed.file(named: "init").map { Array($0.data) } == [1, 2, 3])
            #expect(parsed.file(named: "./init") != nil)
            #expect(parsed.file(named: "bin") == nil)
        }
    }

    @Test func defectsAreErrors() {
        func damaged(_ change: (inout [UInt8]) -> Void) -> CPIOError? {
            var bytes = Self.archive
            change(&bytes)
            if case .failure(let error) = cpioResult(bytes) { return error }
            return nil
        }
        #expect(damaged { $0[0] = UInt8(ascii: "9") } == .badMagic)
        #expect(damaged { $0[60] = UInt8(ascii: "g") } == .badHeaderField) // inside c_filesize
        #expect(damaged { for index in 94..<102 { $0[index] = UInt8(ascii: "0") } } == .truncated) // namesize 0
        #expect(damaged { for (index, digit) in "7fffffff".utf8.enumerated() { $0[94 + index] = digit } } == .truncated)
        #expect(damaged { for (index, digit) in "7fffffff".utf8.enumerated() { $0[54 + index] = digit } } == .truncated)
        #expect(damaged { $0[110] = UInt8(ascii: "x"); $0[111] = UInt8(ascii: "x") } == .unterminatedName) // "." loses its NUL
        // Cut right after the last file: no trailer.
        let trailer = Array("TRAILER!!!".utf8)
        let position = (0..<Self.archive.count - trailer.count).last { Array(Self.archive[$0..<($0 + trailer.count)]) == trailer }!
        #expect(damaged { $0 = Array($0.prefix(position - 110)) } == .missingTrailer)
    }

    /// Every truncation of the real archive is either rejected or parsed, never a crash.
    @Test func everyTruncationIsSafe() {
        var rejected = 0
        for length in stride(from: 0, through: Self.archive.count, by: 7) {
            if case .failure = cpioResult(Array(Self.archive.prefix(length))) { rejected += 1 }
        }
        #expect(rejected > 0)
        #expect((try? cpioResult(Self.archive).get()) != nil)
    }

    @Test func randomDamageIsSafe() async {
        await propertyCheck(count: 1000, input: Gen.int(in: 0...(Self.archive.count - 1)).array(of: 1...6), Gen.int(in: 0...255)) { positions, value in
            var bytes = Self.archive
            for position in positions { bytes[position] = UInt8(truncatingIfNeeded: value &+ position) }
            if case .success(let entries) = cpioResult(bytes) {
                #expect(entries.allSatisfy { $0.size <= bytes.count })
            }
        }
    }
}
