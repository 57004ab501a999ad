import Foundation
import Synchronization
import Testing
import PropertyBased
@testable import KernelCore

/// A device tree blob loaded from tests/fixtures/dtb, kept alive for the views into it.
private final class Blob {
    let bytes: UnsafeMutableRawBufferPointer

    init(_ data: [UInt8]) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 8)
        bytes.copyBytes(from: data)
    }

    /// Fixtures are loaded once and kept for the whole run: trees are views into their memory,
    /// and Swift may release a local object right after its last use.
    private static let cache = Mutex<[String: Blob]>([:])

    static func fixture(_ name: String) -> Blob {
        cache.withLock { loaded in
            if let blob = loaded[name] { return blob }
            let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("fixtures/dtb")
            let blob = Blob([UInt8]((try? Data(contentsOf: directory.appendingPathComponent(name + ".dtb"))) ?? Data()))
            loaded[name] = blob
            return blob
        }
    }

    deinit { bytes.deallocate() }

    var view: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }

    func tree() throws(DeviceTreeError) -> DeviceTree { try DeviceTree(blob: view) }

    static func bytes(of name: String) -> [UInt8] { Array(fixture(name).view) }
}

private func string(_ bytes: DeviceTreeBytes?) -> String? {
    bytes.map { String(decoding: Array($0), as: UTF8.self) }
}

private func memoryRegions(_ tree: DeviceTree) throws -> [PhysicalRange] {
    var regions: [PhysicalRange] = []
    try tree.forEachMemoryRegion { regions.append($0) }
    return regions.sorted { $0.start < $1.start }
}

private func setBigEndian32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(index))) }
}

private func bigEndian32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[offset + $1]) }
}

/// Real trees dumped from QEMU's virt machine by tools/dump-device-trees.sh.
@Suite struct DeviceTreeFixtureTests {
    static let ramBase: UInt64 = 0x4000_0000

    @Test(arguments: [
        ("a72-128m-gicv2", UInt64(128) << 20, Platform.InterruptControllerKind.gicV2, 1, Platform.PSCIConduit.hvc),
        ("a72-1g-gicv3-smp4", UInt64(1) << 30, .gicV3, 4, .hvc),
        ("a53-4g-gicv2", UInt64(4) << 30, .gicV2, 1, .hvc),
        ("max-1g-el2-gicv3", UInt64(1) << 30, .gicV3, 2, .smc),
        ("a57-3g-gicv3-smp4", UInt64(3) << 30, .gicV3, 4, .hvc),
    ])
    func platformMatchesTheQEMUConfiguration(name: String, memory: UInt64, gic: Platform.InterruptControllerKind,
                                             cpus: Int, conduit: Platform.PSCIConduit) throws {
        let blob = Blob.fixture(name)
        let tree = try blob.tree()
        #expect(tree.version == 17)
        #expect(try memoryRegions(tree) == [PhysicalRange(start: PhysicalAddress(Self.ramBase), size: memory)])

        let platform = try Platform.discover(in: tree)
        #expect(platform.console == Platform.Console(registers: PhysicalRange(start: PhysicalAddress(0x900_0000), size: 0x1000),
                                                     interrupt: 33))
        #expect(platform.interruptController?.kind == gic)
        #expect(platform.interruptController?.distributor.start == PhysicalAddress(0x800_0000))
        #expect(platform.interruptController?.cpuInterfaceOrRedistributor.start
                == PhysicalAddress(gic == .gicV2 ? 0x801_0000 : 0x80A_0000))
        #expect(platform.timer == Platform.Timer(securePhysicalInterrupt: 29, physicalInterrupt: 30,
                                                 virtualInterrupt: 27, hypervisorInterrupt: 26))
        #expect(platform.psciConduit == conduit)
        #expect(platform.cpuCount == cpus)
        #expect(platform.virtioMMIOCount == 32)
        // QEMU lists the transports from the highest address down; the platform keeps them in
        // address order, each with its SPI (16 upwards, as GIC identifiers 48 upwards).
        #expect(platform.virtioTransports.count == 32)
        for index in 0..<platform.virtioTransports.count {
            let transport = platform.virtioTransports[index]
            #expect(transport.registers == PhysicalRange(start: PhysicalAddress(0xA00_0000 + 0x200 * UInt64(index)), size: 0x200))
            #expect(transport.interrupt == 48 + UInt32(index))
        }
    }

    @Test func chosenCarriesBootargsAndInitrd() throws {
        let blob = Blob.fixture("a72-1g-gicv3-smp4")
        let platform = try Platform.discover(in: try blob.tree())
        #expect(string(platform.bootArguments) == "test console=ttyAMA0")
        let ramdisk = try #require(platform.initialRamdisk)
        #expect(ramdisk.size == 6) // tools/dump-device-trees.sh writes "initrd"
        #expect(ramdisk.start.value >= Self.ramBase)
        #expect(BootArguments(platform.bootArguments).contains("test"))
        #expect(string(BootArguments(platform.bootArguments).value(of: "console")) == "ttyAMA0")
    }

    @Test func numaMachineHasTwoMemoryNodes() throws {
        let blob = Blob.fixture("a72-2g-numa")
        #expect(try memoryRegions(try blob.tree()) == [
            PhysicalRange(start: PhysicalAddress(Self.ramBase), size: 1 << 30),
            PhysicalRange(start: PhysicalAddress(Self.ramBase + (1 << 30)), size: 1 << 30),
        ])
    }

    @Test func pathAliasAndPhandleLookups() throws {
        let blob = Blob.fixture("a72-1g-gicv3-smp4")
        let tree = try blob.tree()
        #expect(string(tree.node(atPath: "/pl011@9000000")?.name) == "pl011@9000000")
        #expect(string(tree.node(atPath: "/pl011")?.name) == "pl011@9000000") // unit address may be omitted
        #expect(tree.node(atPath: "/no-such-node") == nil)
        #expect(tree.node(atPath: "/pl011@9000001") == nil)
        let gic = try #require(tree.firstNode(compatibleWith: "arm,gic-v3"))
        let phandle = try #require(gic.phandle)
        #expect(string(tree.node(withPhandle: phandle)?.name) == string(gic.name))
        #expect(tree.node(withPhandle: 0xDEAD_BEEF) == nil)
        #expect(tree.countNodes(compatibleWith: "arm,pl011") == 1)
        let cpus = try #require(tree.node(atPath: "/cpus"))
        #expect(cpus.children.filter { $0.hasDeviceType("cpu") }.count == 4)
        var affinities: [UInt64] = []
        Platform.forEachCPU(in: tree) { affinities.append($0) }
        #expect(affinities == [0, 1, 2, 3])
    }

    @Test func propertyDecoders() throws {
        let blob = Blob.fixture("a72-128m-gicv2")
        let tree = try blob.tree()
        #expect(tree.root.property("#address-cells")?.u32 == 2)
        #expect(tree.root.property("#size-cells")?.u32 == 2)
        let uart = try #require(tree.node(atPath: "/pl011@9000000"))
        let compatible = try #require(uart.property("compatible"))
        #expect(compatible.strings.map { String(decoding: Array($0), as: UTF8.self) } == ["arm,pl011", "arm,primecell"])
        #expect(compatible.string.map { String(decoding: Array($0), as: UTF8.self) } == "arm,pl011")
        #expect(Array(try #require(uart.property("reg")).cells) == [0, 0x900_0000, 0, 0x1000])
        #expect(uart.property("reg")?.u32 == nil) // 16 bytes is not a single u32
        #expect(string(tree.node(atPath: "/chosen")?.property("stdout-path")?.string) == "/pl011@9000000")
        #expect(tree.root.isCompatible(with: "linux,dummy-virt"))
    }

    @Test func handWrittenTreeReservationsAliasesAndBuses() throws {
        let blob = Blob.fixture("reserved-memory")
        let tree = try blob.tree()
        #expect(Array(tree.memoryReservations) == [
            PhysicalRange(start: PhysicalAddress(0x4000_0000), size: 0x10000),
            PhysicalRange(start: PhysicalAddress(0x7FF0_0000), size: 0x10_0000),
        ])
        var reserved: [PhysicalRange] = []
        try tree.forEachReservedRegion { reserved.append($0) }
        #expect(reserved == [
            PhysicalRange(start: PhysicalAddress(0x4000_0000), size: 0x10000),
            PhysicalRange(start: PhysicalAddress(0x7FF0_0000), size: 0x10_0000),
            PhysicalRange(start: PhysicalAddress(0x5000_0000), size: 0x20_0000), // the disabled child is skipped
        ])
        #expect(try memoryRegions(tree) == [
            PhysicalRange(start: PhysicalAddress(0x4000_0000), size: 0x2000_0000),
            PhysicalRange(start: PhysicalAddress(0x1_0000_0000), size: 0x4000_0000),
            PhysicalRange(start: PhysicalAddress(0x2_0000_0000), size: 0x1000_0000),
        ])
        let platform = try Platform.discover(in: tree)
        // stdout-path "serial0:115200n8" goes through /aliases to the 1-cell bus device.
        #expect(platform.console == Platform.Console(registers: PhysicalRange(start: PhysicalAddress(0x1000), size: 0x1000),
                                                     interrupt: 37))
        #expect(platform.initialRamdisk == PhysicalRange(start: PhysicalAddress(0x4800_0000), size: 0x10_0000))
        let arguments = BootArguments(platform.bootArguments)
        #expect(arguments.contains("test") && arguments.contains("verbose") && !arguments.contains("selftest"))
        #expect(string(arguments.value(of: "selftest")) == "panic")
        #expect(platform.psciConduit == nil && platform.timer == nil)
        #expect(string(tree.node(atPathOrAlias: DeviceTreeBytes("serial0"))?.name) == "uart@1000")
    }
}

/// Malformed blobs: every defect is a specific error, never a crash or a read outside the blob.
@Suite struct DeviceTreeCorruptionTests {
    static let original = Blob.bytes(of: "a72-128m-gicv2")

    /// Parses `bytes` (of which only `available` are offered) and, on success, runs `inspect`
    /// while the buffer is still alive.
    @discardableResult
    static func parse(_ bytes: [UInt8], available: Int? = nil, inspect: (DeviceTree) -> Void = { _ in }) -> DeviceTreeError? {
        let blob = Blob(bytes)
        let buffer = UnsafeRawBufferPointer(rebasing: blob.view[0..<min(available ?? bytes.count, bytes.count)])
        do throws(DeviceTreeError) {
            inspect(try DeviceTree(blob: buffer))
            withExtendedLifetime(blob) {}
            return nil
        } catch {
            return error
        }
    }

    static func error(_ bytes: [UInt8], available: Int? = nil) -> DeviceTreeError? {
        parse(bytes, available: available)
    }

    var structureOffset: Int { Int(bigEndian32(Self.original, 8)) }
    var stringsOffset: Int { Int(bigEndian32(Self.original, 12)) }

    @Test func originalParses() {
        #expect(Self.error(Self.original) == nil)
    }

    @Test func truncation() {
        #expect(Self.error(Array(Self.original.prefix(20))) == .truncated)
        #expect(Self.error(Self.original, available: Self.original.count - 1) == .truncated)
        var tooSmallTotal = Self.original
        setBigEndian32(&tooSmallTotal, 4, 12)
        #expect(Self.error(tooSmallTotal) == .truncated)
    }

    @Test func badMagicAndVersion() {
        var bytes = Self.original
        bytes[0] = 0xCA
        #expect(Self.error(bytes) == .badMagic(0xCA0D_FEED))
        bytes = Self.original
        setBigEndian32(&bytes, 20, 15)
        #expect(Self.error(bytes) == .unsupportedVersion(15))
        bytes = Self.original
        setBigEndian32(&bytes, 24, 18) // last compatible version newer than this reader
        #expect(Self.error(bytes) == .unsupportedVersion(17))
    }

    @Test func blockOffsetsPastTheEnd() {
        for field in [8, 12, 16] {
            var bytes = Self.original
            setBigEndian32(&bytes, field, UInt32(bytes.count + 8))
            #expect(Self.error(bytes) == .blockOutOfBounds, "header field at \(field)")
        }
        var bytes = Self.original
        setBigEndian32(&bytes, 36, UInt32.max) // size_dt_struct
        #expect(Self.error(bytes) == .blockOutOfBounds)
        bytes = Self.original
        setBigEndian32(&bytes, 32, UInt32.max) // size_dt_strings
        #expect(Self.error(bytes) == .blockOutOfBounds)
    }

    @Test func misalignedStructureBlock() {
        var bytes = Self.original
        setBigEndian32(&bytes, 8, UInt32(structureOffset + 2))
        setBigEndian32(&bytes, 36, bigEndian32(bytes, 36) - 4)
        #expect(Self.error(bytes) == .misalignedBlock)
    }

    @Test func unknownToken() {
        var bytes = Self.original
        setBigEndian32(&bytes, structureOffset, 7)
        #expect(Self.error(bytes) == .badToken(offset: 0))
    }

    @Test func nodeNameWithoutTerminator() {
        // Root name is empty: the NUL right after the first token; fill everything after with 'A'.
        var bytes = Self.original
        let end = structureOffset + Int(bigEndian32(bytes, 36))
        for index in (structureOffset + 4)..<end { bytes[index] = UInt8(ascii: "A") }
        #expect(Self.error(bytes) == .unterminatedString(offset: 4))
    }

    @Test func propertyNameOffsetOutsideStrings() throws {
        var bytes = Self.original
        let offset = try #require(firstPropertyToken(bytes))
        setBigEndian32(&bytes, offset + 8, UInt32.max) // nameoff
        #expect(Self.error(bytes) == .malformedProperty(offset: offset - structureOffset))
    }

    @Test func propertyLengthPastTheBlock() throws {
        var bytes = Self.original
        let offset = try #require(firstPropertyToken(bytes))
        setBigEndian32(&bytes, offset + 4, 0x7FFF_FFFF)
        #expect(Self.error(bytes) == .malformedProperty(offset: offset - structureOffset))
    }

    @Test func unterminatedStringInStringsBlock() {
        var bytes = Self.original
        let size = Int(bigEndian32(bytes, 32))
        for index in stringsOffset..<(stringsOffset + size) { bytes[index] = UInt8(ascii: "x") }
        #expect(Self.error(bytes).map { if case .unterminatedString = $0 { return true } else { return false } } == true)
    }

    @Test func unbalancedAndTooDeep() {
        var bytes = Self.original
        let end = structureOffset + Int(bigEndian32(bytes, 36))
        setBigEndian32(&bytes, end - 8, 4) // the root's END_NODE becomes a NOP
        #expect(Self.error(bytes) == .unbalancedNodes)
        #expect(Self.error(deepTree(depth: DeviceTree.maximumDepth + 1)) == .tooDeep)
        #expect(Self.error(deepTree(depth: DeviceTree.maximumDepth)) == nil)
    }

    @Test func reservationMapWithoutTerminator() {
        // A map starting 8 bytes before the end has no room for its all-zero terminating entry.
        var bytes = Self.original
        setBigEndian32(&bytes, 16, UInt32((bytes.count - 8) & ~7))
        #expect(Self.error(bytes) == .unterminatedReservationMap)
    }

    @Test func absurdCellCounts() throws {
        let blob = Blob.fixture("reserved-memory")
        let tree = try blob.tree()
        for cells: UInt32 in [0, 3, 0xFFFF_FFFF] {
            let node = DeviceTreeNode(tree: tree, offset: try #require(tree.node(atPath: "/soc/uart@1000")).offset,
                                      context: InheritedContext(addressCells: cells, sizeCells: 1, interruptParent: nil))
            #expect(throws: DeviceTreeError.badCellCount(cells)) { try node.registers() }
        }
        let node = DeviceTreeNode(tree: tree, offset: try #require(tree.node(atPath: "/soc/uart@1000")).offset,
                                  context: InheritedContext(addressCells: 1, sizeCells: 3, interruptParent: nil))
        #expect(throws: DeviceTreeError.badCellCount(3)) { try node.registers() }
        // reg of 8 bytes read with 2+2 cells is not a whole entry.
        let short = DeviceTreeNode(tree: tree, offset: try #require(tree.node(atPath: "/soc/uart@1000")).offset,
                                   context: InheritedContext(addressCells: 2, sizeCells: 2, interruptParent: nil))
        #expect(throws: DeviceTreeError.malformedValue) { try short.registers() }
    }

    /// Random damage to a real tree: parsing and a full walk either fail cleanly or succeed,
    /// and never read outside the (exactly sized) buffer.
    @Test func randomCorruptionNeverCrashes() async {
        let damage = Gen.int(in: 0...(Self.original.count - 1)).array(of: 1...8)
        await propertyCheck(count: 1500, input: damage, Gen.int(in: 0...255), Gen.int(in: 0...Self.original.count)) {
            positions, value, cut in
            var bytes = Self.original
            for position in positions { bytes[position] = UInt8(truncatingIfNeeded: value &+ position) }
            let truncated = Array(bytes.prefix(max(cut, 0)))
            for candidate in [bytes, truncated] {
                Self.parse(candidate) { Self.walk($0) }
            }
        }
    }

    static func walk(_ tree: DeviceTree) {
        var nodes = 0
        tree.forEachNode { node in
            nodes += 1
            _ = node.name.count
            for property in node.properties {
                _ = property.string
                _ = Array(property.strings).count
                _ = Array(property.cells).count
                _ = property.u64
            }
            _ = try? node.registers().map { $0 }
            return true
        }
        _ = try? Platform.discover(in: tree)
        try? tree.forEachMemoryRegion { _ in }
        try? tree.forEachReservedRegion { _ in }
        _ = Array(tree.memoryReservations)
        #expect(nodes > 0)
    }

    /// A minimal valid tree nested `depth` levels deep.
    func deepTree(depth: Int) -> [UInt8] {
        var structure: [UInt8] = []
        func token(_ value: UInt32) { structure += (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) } }
        for _ in 0..<depth { token(1); structure += [UInt8(ascii: "n"), 0, 0, 0] }
        for _ in 0..<depth { token(2) }
        token(9)
        let header = 40
        let reservations = header
        let structureStart = reservations + 16
        let strings = structureStart + structure.count
        let total = strings
        var bytes = [UInt8](repeating: 0, count: total)
        for (offset, value) in [(0, 0xD00D_FEED), (4, total), (8, structureStart), (12, strings), (16, reservations),
                                (20, 17), (24, 16), (28, 0), (32, 0), (36, structure.count)] as [(Int, Int)] {
            setBigEndian32(&bytes, offset, UInt32(value))
        }
        bytes.replaceSubrange(structureStart..<(structureStart + structure.count), with: structure)
        return bytes
    }

    func firstPropertyToken(_ bytes: [UInt8]) -> Int? {
        var offset = structureOffset
        while offset + 4 <= bytes.count {
            if bigEndian32(bytes, offset) == 3 { return offset }
            offset += 4
        }
        return nil
    }
}
