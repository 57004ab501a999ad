import Testing
import PropertyBased
@testable import KernelCore

/// A UEFI memory map as GetMemoryMap writes it: descriptors of `descriptorSize` bytes (edk2 uses
/// 48, larger than the fields), little-endian.
private func memoryMap(_ entries: [(type: UInt32, start: UInt64, pages: UInt64)], descriptorSize: Int = 48) -> [UInt8] {
    var bytes: [UInt8] = []
    func append(_ value: UInt64, _ width: Int) { for index in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) } }
    for entry in entries {
        append(UInt64(entry.type), 4)
        append(0, 4)
        append(entry.start, 8)
        append(0, 8)                     // virtual start
        append(entry.pages, 8)
        append(0x0f, 8)                  // attributes
        append(0, descriptorSize - 40)
    }
    return bytes
}

private func unusableRanges(_ bytes: [UInt8], in region: PhysicalRange, descriptorSize: Int = 48) -> [PhysicalRange] {
    bytes.withUnsafeBytes { buffer in
        let map = UEFIMemoryMap(bytes: buffer, descriptorSize: descriptorSize)!
        var ranges: [PhysicalRange] = []
        map.forEachUnusableRange(in: region) { (range: PhysicalRange) in ranges.append(range) }
        return ranges
    }
}

private func range(_ start: UInt64, pages: UInt64) -> PhysicalRange {
    PhysicalRange(start: PhysicalAddress(start), size: pages * 4096)
}

@Suite struct UEFIMemoryMapTests {
    /// The shape of edk2's map on QEMU virt: free memory with the firmware's runtime services,
    /// ACPI and reserved pages inside RAM, and its flash as MMIO outside.
    let firmwareMap: [(type: UInt32, start: UInt64, pages: UInt64)] = [
        (UEFIMemoryType.conventional, 0x4000_0000, 0x100),
        (UEFIMemoryType.loaderData, 0x4010_0000, 0x10),
        (UEFIMemoryType.bootServicesData, 0x4011_0000, 0x20),
        (UEFIMemoryType.runtimeServicesData, 0x4013_0000, 0x4),
        (UEFIMemoryType.runtimeServicesCode, 0x4013_4000, 0x2),
        (UEFIMemoryType.conventional, 0x4013_6000, 0x1000),
        (UEFIMemoryType.acpiReclaim, 0x4113_6000, 0x1),
        (UEFIMemoryType.bootServicesCode, 0x4113_7000, 0x9),
        (UEFIMemoryType.reserved, 0x4114_0000, 0x40),
        (UEFIMemoryType.loaderCode, 0x4118_0000, 0x80),
        (UEFIMemoryType.memoryMappedIO, 0x0400_0000, 0x4000),
    ]
    let ram = PhysicalRange(start: PhysicalAddress(0x4000_0000), size: 0x0120_0000)

    @Test func usableTypesAndTotals() {
        let bytes = memoryMap(firmwareMap)
        bytes.withUnsafeBytes { buffer in
            let map = UEFIMemoryMap(bytes: buffer, descriptorSize: 48)!
            #expect(map.count == 11)
            #expect(map.descriptor(3) == UEFIMemoryDescriptor(type: UEFIMemoryType.runtimeServicesData, range: range(0x4013_0000, pages: 4)))
            #expect(map.usableBytes == (0x100 + 0x10 + 0x20 + 0x1000 + 0x9 + 0x80) * 4096)
        }
        for type in UInt32(0)...20 {
            #expect(UEFIMemoryType.isUsable(type) == [1, 2, 3, 4, 7].contains(type))
        }
    }

    @Test func whatTheFirmwareKeepsInRAMAndWhatTheMapLeavesOut() {
        // Runtime data and code merge into one range; the end of RAM past the last descriptor is
        // not said to be free, so it is kept too. MMIO outside RAM is not RAM's business.
        #expect(unusableRanges(memoryMap(firmwareMap), in: ram) == [
            range(0x4013_0000, pages: 6), range(0x4113_6000, pages: 1), range(0x4114_0000, pages: 0x40),
        ])
        let larger = PhysicalRange(start: PhysicalAddress(0x4000_0000), size: 0x0140_0000)
        #expect(unusableRanges(memoryMap(firmwareMap), in: larger).last == range(0x4120_0000, pages: 0x200))
        #expect(unusableRanges(memoryMap(firmwareMap.reversed()), in: ram) == unusableRanges(memoryMap(firmwareMap), in: ram))
        #expect(unusableRanges(memoryMap([]), in: ram) == [ram])
    }

    @Test func descriptorSizesNoFirmwareUses() {
        let bytes = memoryMap(firmwareMap)
        bytes.withUnsafeBytes { buffer in
            #expect(UEFIMemoryMap(bytes: buffer, descriptorSize: 32) == nil)
            #expect(UEFIMemoryMap(bytes: buffer, descriptorSize: 44) == nil)
            #expect(UEFIMemoryMap(bytes: buffer, descriptorSize: 0) == nil)
        }
        // A descriptor running past the end of the address space is cut there.
        memoryMap([(UEFIMemoryType.conventional, 0xFFFF_FFFF_FFFF_0000, 0x1000)]).withUnsafeBytes { buffer in
            let map = UEFIMemoryMap(bytes: buffer, descriptorSize: 48)!
            #expect(map.descriptor(0).range.size == 0xF000)
        }
    }

    /// Against a model of pages: the ranges reported are exactly the pages of the region no usable
    /// descriptor covers, in order, each as long as it can be, whatever the descriptors' order.
    @Test func unusableRangesMatchAModelOfPages() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...1_000_000).array(of: 1...40)) { codes in
            let base: UInt64 = 0x4000_0000
            var entries: [(type: UInt32, start: UInt64, pages: UInt64)] = []
            var page: UInt64 = 0
            for code in codes {
                page += UInt64(code % 3)                       // sometimes a hole the map does not mention
                let pages = UInt64(1 + (code / 3) % 7)
                entries.append((UInt32((code / 21) % 16), base + page * 4096, pages))
                page += pages
            }
            let shuffled = entries.enumerated().sorted { ($0.offset * 7919) % 101 < ($1.offset * 7919) % 101 }.map(\.element)
            let regionPages = UInt64(codes.count % 5) + page
            let region = range(base + 4096 * UInt64(codes.first! % 4), pages: regionPages)
            var free = Set<UInt64>()
            for entry in entries where UEFIMemoryType.isUsable(entry.type) {
                for index in 0..<entry.pages { free.insert(entry.start / 4096 + index) }
            }
            let first = region.start.value / 4096
            let expected = (first..<(first + regionPages)).filter { !free.contains($0) }
            let ranges = unusableRanges(memoryMap(shuffled), in: region)
            let reported = ranges.flatMap { range in (0..<(range.size / 4096)).map { range.start.value / 4096 + $0 } }
            #expect(reported == expected)
            for (left, right) in zip(ranges, ranges.dropFirst()) {
                #expect(left.start.value + left.size < right.start.value, "ranges are apart and in order")
            }
        }
    }
}

@Suite struct UEFITextTests {
    private func commandLine(_ units: [UInt8], width: Int, capacity: Int = 64) -> String? {
        var output = [UInt8](repeating: 0, count: capacity)
        let length = units.withUnsafeBytes { input in
            output.withUnsafeMutableBytes { UEFIText.commandLine(from: input, width: width, into: $0) }
        }
        return length.map { String(decoding: output[0..<$0], as: UTF8.self) }
    }

    private func ucs2(_ text: String) -> [UInt8] {
        text.utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }

    @Test func loadOptionsBecomeTheCommandLine() {
        #expect(commandLine(ucs2("test tick=250") + [0, 0], width: 2) == "test tick=250")
        #expect(commandLine(ucs2("  test\tbench  ") + [0, 0, 0x41, 0], width: 2) == "test bench")
        #expect(commandLine(ucs2("test"), width: 2) == "test")
        #expect(commandLine(ucs2("test") + [0x41], width: 2) == "test", "a trailing odd byte is not a unit")
        #expect(commandLine([], width: 2) == "")
        #expect(commandLine(Array("test fuzz=10\r\nsecond line\n".utf8), width: 1) == "test fuzz=10")
    }

    @Test func binaryLoadOptionsAreNoCommandLine() {
        // edk2's boot manager passes the 16 bytes of a GUID to the entries it makes itself.
        let guid: [UInt8] = [0x9E, 0xCA, 0x7D, 0x83, 0x74, 0xE8, 0x82, 0x4D, 0xB2, 0x9A, 0x23, 0xFE, 0x0E, 0x23, 0xD1, 0xE2]
        #expect(commandLine(guid, width: 2) == nil)
        #expect(commandLine(ucs2("caf\u{e9}"), width: 2) == nil)
        #expect(commandLine(Array("a\u{1}b".utf8), width: 1) == nil)
        #expect(commandLine(ucs2(String(repeating: "x", count: 65)), width: 2) == nil, "longer than the room for it")
        #expect(commandLine(ucs2(String(repeating: "x", count: 64)), width: 2)?.count == 64)
        #expect(commandLine(ucs2("test"), width: 4) == nil)
    }

    @Test func vendorNames() {
        var output = [UInt8](repeating: 0, count: 8)
        let units: [UInt16] = Array("EDK II".utf16) + [0]
        let length = units.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBytes { UEFIText.name(from: input.baseAddress!, limit: 64, into: $0) }
        }
        #expect(String(decoding: output[0..<length], as: UTF8.self) == "EDK II")
        let long: [UInt16] = Array("Vendor \u{e9}tendu".utf16)
        let cut = long.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBytes { UEFIText.name(from: input.baseAddress!, limit: long.count, into: $0) }
        }
        #expect(String(decoding: output[0..<cut], as: UTF8.self) == "Vendor ?")
    }
}

@Suite struct UEFIHandoffTests {
    private func record(mapEntries: Int = 3, commandLine: String = "test", ramdisk: (UInt64, UInt64) = (0x4800_0000, 12345),
                        magic: UInt64 = UEFIHandoff.magic, mapSizeClaimed: UInt64? = nil, extra: Int = 0) -> [UInt8] {
        let map = memoryMap(Array(repeating: (UEFIMemoryType.conventional, 0x4000_0000, 1), count: mapEntries))
        var bytes = [UInt8](repeating: 0, count: UEFIHandoff.memoryMapOffset + map.count + extra)
        func store(_ value: UInt64, at offset: Int) { for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) } }
        store(magic, at: UEFIHandoff.magicOffset)
        store(UInt64(UEFIHandoff.memoryMapOffset + map.count), at: UEFIHandoff.recordSizeOffset)
        store(mapSizeClaimed ?? UInt64(map.count), at: UEFIHandoff.memoryMapSizeOffset)
        store(48, at: UEFIHandoff.descriptorSizeOffset)
        store(ramdisk.0, at: UEFIHandoff.initialRamdiskStartOffset)
        store(ramdisk.1, at: UEFIHandoff.initialRamdiskSizeOffset)
        store(UInt64(commandLine.utf8.count), at: UEFIHandoff.commandLineLengthOffset)
        bytes.replaceSubrange(UEFIHandoff.commandLineOffset..<(UEFIHandoff.commandLineOffset + commandLine.utf8.count), with: Array(commandLine.utf8))
        store(6, at: UEFIHandoff.vendorLengthOffset)
        bytes.replaceSubrange(UEFIHandoff.vendorOffset..<(UEFIHandoff.vendorOffset + 6), with: Array("EDK II".utf8))
        bytes.replaceSubrange(UEFIHandoff.memoryMapOffset..<(UEFIHandoff.memoryMapOffset + map.count), with: map)
        return bytes
    }

    @Test func aRecordReadsBack() throws {
        let bytes = record(extra: 100)
        try bytes.withUnsafeBytes { buffer in
            #expect(UEFIHandoff.recordSize(ofHeaderAt: buffer) == UEFIHandoff.memoryMapOffset + 3 * 48)
            let handoff = try #require(UEFIHandoff(bytes: buffer))
            #expect(handoff.size == UInt64(UEFIHandoff.memoryMapOffset + 3 * 48))
            #expect(Array(handoff.commandLine) == Array("test".utf8))
            #expect(Array(handoff.vendor) == Array("EDK II".utf8))
            #expect(handoff.initialRamdisk == range(0x4800_0000, pages: 0).with(size: 12345))
            #expect(handoff.memoryMap.count == 3)
            #expect(handoff.memoryMap.usableBytes == 3 * 4096)
        }
        record(ramdisk: (0, 0)).withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer)?.initialRamdisk == nil) }
    }

    @Test func damagedRecordsAreRefused() {
        record(magic: 0x1234).withUnsafeBytes { buffer in
            #expect(UEFIHandoff(bytes: buffer) == nil)
            #expect(UEFIHandoff.recordSize(ofHeaderAt: buffer) == nil)
        }
        record(mapSizeClaimed: 1 << 40).withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer) == nil) }
        var long = record()
        long[UEFIHandoff.commandLineLengthOffset + 1] = 0x10
        long.withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer) == nil) }
        var shortRecord = record()
        shortRecord[UEFIHandoff.recordSizeOffset] = 0x10
        shortRecord[UEFIHandoff.recordSizeOffset + 1] = 0
        shortRecord.withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer) == nil) }
        record().dropLast(10).withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer) == nil) }
        var badDescriptor = record()
        badDescriptor[UEFIHandoff.descriptorSizeOffset] = 20
        badDescriptor.withUnsafeBytes { buffer in #expect(UEFIHandoff(bytes: buffer) == nil) }
    }
}

private extension PhysicalRange {
    func with(size: UInt64) -> PhysicalRange { PhysicalRange(start: start, size: size) }
}
