import Testing
@testable import KernelCore

private func text(_ build: (inout TextLine) -> Void) -> String {
    var line = TextLine()
    build(&line)
    var bytes: [UInt8] = []
    line.forEachByte { bytes.append($0) }
    return String(decoding: bytes, as: UTF8.self)
}

private func text(_ formatted: FormattedText) -> String { text { line in formatted.line.forEachByte { line.write(byte: $0) } } }

@Suite struct FormattingTests {
    @Test func numbers() {
        #expect(text { $0.writeHex(0x900_0000) } == "0x0000000009000000")
        #expect(text { $0.writeHex(0xABC, digits: 2) } == "0xabc")
        #expect(text { $0.writeHex(0, digits: 1) } == "0x0")
        #expect(text { $0.writeHex(UInt64.max) } == "0xffffffffffffffff")
        #expect(text { $0.writeDecimal(0) } == "0")
        #expect(text { $0.writeDecimal(UInt64.max) } == "18446744073709551615")
        #expect(text { $0.writeDecimal(signed: Int64.min) } == "-9223372036854775808")
    }

    @Test func sizes() {
        #expect(text { $0.writeByteSize(0) } == "0 bytes")
        #expect(text { $0.writeByteSize(512) } == "512 bytes")
        #expect(text { $0.writeByteSize(64 << 10) } == "64 KiB")
        #expect(text { $0.writeByteSize(3 << 30) } == "3 GiB")
        #expect(text { $0.writeByteSize((1 << 20) + 4096) } == "1028 KiB")
    }

    @Test func interpolation() {
        let name = DeviceTreeBytes("pl011")
        #expect(text("Boot: \(name) at \(PhysicalAddress(0x900_0000)) (\(megabytes: 1 << 30) MB, \(size: 4096), \(-3), \(true))")
                == "Boot: pl011 at 0x0000000009000000 (1024 MB, 4 KiB, -3, true)")
        #expect(text("\(hex: UInt8(0x2A), digits: 2)") == "0x2a")
    }

    @Test func longLinesAreTruncatedNotOverrun() {
        var line = TextLine()
        for _ in 0..<(TextLine.capacity + 50) { line.write(byte: UInt8(ascii: "x")) }
        #expect(line.count == TextLine.capacity && line.truncated)
        #expect(line.withUnsafeBytes { $0.count } == TextLine.capacity)
    }

    /// Cut through a two-, three- or four-byte character at every offset, a line ends before it
    /// and decodes as UTF-8; a character that fit whole stays.
    @Test(arguments: ["é", "→", "✓", "𝄞"])
    func longLinesAreCutBetweenCharacters(_ character: String) {
        let encoded = Array(character.utf8)
        for filler in (TextLine.capacity - encoded.count - 1)...TextLine.capacity {
            var line = TextLine()
            for _ in 0..<filler { line.write(byte: UInt8(ascii: "x")) }
            for _ in 0..<3 { for byte in encoded { line.write(byte: byte) } }
            var bytes: [UInt8] = []
            line.forEachByte { bytes.append($0) }
            #expect(String(validating: bytes, as: UTF8.self) != nil, "cut after \(filler) bytes of filler")
            let whole = (TextLine.capacity - filler) / encoded.count
            #expect(bytes.count == filler + min(whole, 3) * encoded.count)
            #expect(line.truncated == (filler + 3 * encoded.count > TextLine.capacity))
        }
    }
}

@Suite struct CPUIdentityTests {
    @Test(arguments: [(UInt64(0x410F_D034), "Cortex-A53"), (0x411F_D070, "Cortex-A57"), (0x410F_D083, "Cortex-A72"),
                      (0x000F_0510, "QEMU max"), (0x4100_0000, "CPU implementer 0x41 part 0x000")])
    func names(mainID: UInt64, expected: String) {
        var line = TextLine()
        CPUIdentity(mainID: mainID).describe(into: &line)
        #expect(text { target in line.forEachByte { target.write(byte: $0) } } == expected)
    }

    @Test func fields() {
        let a57 = CPUIdentity(mainID: 0x411F_D072)
        #expect(a57.implementer == 0x41 && a57.variant == 1 && a57.partNumber == 0xD07 && a57.revision == 2)
        #expect(CPUAffinity(multiprocessorID: 0x8000_0000 | 0x0102_03).affinity == 0x01_0203)
        #expect(CPUAffinity(multiprocessorID: 0x8000_0003).aff0 == 3)
    }
}

@Suite struct BootArgumentTests {
    @Test func flagsAndValues() {
        let arguments = BootArguments(DeviceTreeBytes("  test\tselftest=panic  verbose=  x=1=2 "))
        #expect(arguments.contains("test") && !arguments.contains("tes") && !arguments.contains("selftest"))
        #expect(arguments.value(of: "selftest").map { String(decoding: Array($0), as: UTF8.self) } == "panic")
        #expect(arguments.value(of: "verbose")?.count == 0)
        #expect(arguments.value(of: "x").map { String(decoding: Array($0), as: UTF8.self) } == "1=2")
        #expect(arguments.value(of: "missing") == nil)
        #expect(Array(arguments.words).count == 4)
        #expect(Array(BootArguments(nil).words).isEmpty)
    }
}

@Suite struct ExceptionSyndromeTests {
    func describe(_ value: UInt64) -> String {
        text { ExceptionSyndrome(value).describe(into: &$0) }
    }

    @Test func decoding() {
        let write = ExceptionSyndrome(0x9600_0047) // data abort, same EL, WnR, translation fault level 3
        #expect(write.exceptionClass == .dataAbortSameLevel && write.isWrite && write.faultKind == .translation(level: 3))
        #expect(describe(0x9600_0047) == "data abort (translation fault, level 3, write)")
        #expect(describe(0x9200_000F) == "data abort from a lower level (permission fault, level 3, read)")
        #expect(describe(0x8600_0005) == "instruction abort (translation fault, level 1)")
        #expect(describe(0x9600_0021) == "data abort (alignment fault, read)")
        #expect(describe(0x5600_0000) == "SVC (#0x0)")
        #expect(describe(0xF200_0001) == "BRK instruction (#0x1)")
        #expect(describe(0x0200_0000) == "unknown reason (undefined instruction)")
        #expect(describe(0xF800_0000) == "exception class 0x3e") // EC 0x3E is not assigned
        #expect(ExceptionSyndrome(0x5600_0000).faultKind == nil)
    }
}
