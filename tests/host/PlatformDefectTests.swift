import Foundation
import Testing
@testable import KernelCore

/// A QEMU tree from tests/fixtures/dtb, edited in place: a property is removed or shortened by
/// overwriting its words with NOP tokens, which every reader skips, so no layout moves.
private struct EditedTree {
    var bytes: [UInt8]

    init(fixture name: String) {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/dtb")
        bytes = [UInt8]((try? Data(contentsOf: directory.appendingPathComponent(name + ".dtb"))) ?? Data())
    }

    /// Runs `body` on the parsed tree while its buffer is alive.
    func withTree<Result>(_ body: (DeviceTree) throws -> Result) throws -> Result {
        try bytes.withUnsafeBytes { buffer in try body(try DeviceTree(blob: buffer)) }
    }

    /// The offset of `name`'s PROP token in the node at `path`.
    func propertyOffset(_ path: StaticString, _ name: String) throws -> Int {
        try withTree { tree in
            let node = try #require(tree.node(atPath: path))
            var offset = node.firstPropertyOffset
            while word(offset) == DeviceTree.Token.property.rawValue {
                let length = Int(word(offset + 4))
                let nameStart = tree.stringsStart + Int(word(offset + 8))
                let nameEnd = bytes[nameStart...].firstIndex(of: 0)!
                if String(decoding: bytes[nameStart..<nameEnd], as: UTF8.self) == name { return offset }
                offset += (12 + length + 3) & ~3
            }
            throw EditError.noSuchProperty(name)
        }
    }

    mutating func remove(_ path: StaticString, _ name: String) throws {
        let offset = try propertyOffset(path, name)
        nop(from: offset, to: offset + (12 + Int(word(offset + 4)) + 3) & ~3)
    }

    /// Keeps the first `length` bytes of the value (a multiple of 4).
    mutating func shorten(_ path: StaticString, _ name: String, to length: Int) throws {
        let offset = try propertyOffset(path, name)
        let end = offset + (12 + Int(word(offset + 4)) + 3) & ~3
        setWord(offset + 4, UInt32(length))
        nop(from: offset + 12 + length, to: end)
    }

    mutating func setCell(_ path: StaticString, _ name: String, index: Int, to value: UInt32) throws {
        setWord(try propertyOffset(path, name) + 12 + 4 * index, value)
    }

    private mutating func nop(from start: Int, to end: Int) {
        for offset in stride(from: start, to: end, by: 4) { setWord(offset, DeviceTree.Token.nop.rawValue) }
    }

    private func word(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[offset + $1]) } }

    private mutating func setWord(_ offset: Int, _ value: UInt32) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(index))) }
    }

    enum EditError: Error { case noSuchProperty(String) }
}

private let ramBase: UInt64 = 0x4000_0000
/// Where QEMU -kernel puts the image, and a tree placed near the end of 128 MiB of RAM.
private let kernelImage = PhysicalRange(start: PhysicalAddress(ramBase + 0x20_0000), size: 0x5_0000)
private let deviceTreeRange = PhysicalRange(start: PhysicalAddress(ramBase + 0x700_0000), size: 0x2000)

/// The defect `discover` and `checkRequirements` find, with its boot-log description.
private func defect(in edited: EditedTree, kernelImage image: PhysicalRange = kernelImage)
    throws -> (problem: PlatformDefect.Problem, text: String)? {
    try edited.withTree { tree in
        do throws(PlatformDefect) {
            let platform = try Platform.discover(in: tree)
            try platform.checkRequirements(in: tree, kernelImage: image, deviceTree: deviceTreeRange)
            return nil
        } catch {
            var line = TextLine()
            error.describe(into: &line)
            return (error.problem, line.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
        }
    }
}

@Suite struct PlatformDefectTests {
    @Test(arguments: ["a72-128m-gicv2", "a72-1g-gicv3-smp4", "a53-4g-gicv2", "max-1g-el2-gicv3", "a57-3g-gicv3-smp4",
                      "a72-2g-numa"])
    func qemuTreesMeetTheRequirements(name: String) throws {
        #expect(try defect(in: EditedTree(fixture: name)) == nil)
    }

    @Test func memoryWithoutReg() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/memory@40000000", "reg")
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .noUsableRegisters)
        #expect(found.text == "/memory@40000000 has no usable reg")
    }

    @Test func memoryOfSizeZero() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.setCell("/memory@40000000", "reg", index: 3, to: 0)
        #expect(try defect(in: edited)?.text == "/memory@40000000 has no usable reg")
    }

    @Test func memoryRegNotWholeEntries() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.shorten("/memory@40000000", "reg", to: 12)
        #expect(try defect(in: edited)?.text == "/memory@40000000 reg is not a whole number of 4-cell entries")
    }

    @Test func noMemoryNode() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/memory@40000000", "device_type")
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .missing(.memory))
        #expect(found.text == "no memory node (device_type \"memory\")")
    }

    @Test func kernelImageOutsideMemory() throws {
        let beyond = PhysicalRange(start: PhysicalAddress(ramBase + (128 << 20) - 0x1000), size: 0x2000)
        let found = try #require(try defect(in: EditedTree(fixture: "a72-128m-gicv2"), kernelImage: beyond))
        #expect(found.problem == .outsideMemory(.kernelImage, beyond))
        #expect(found.text == "no memory region holds the kernel image 0x0000000047fff000 - 0x0000000048001000")
    }

    @Test func noInterruptController() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/intc@8000000", "compatible")
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .missing(.interruptController))
        #expect(found.text == "no interrupt controller (GICv2 or GICv3)")
    }

    @Test func interruptControllerWithOneRegisterBlock() throws {
        var edited = EditedTree(fixture: "a72-1g-gicv3-smp4")
        try edited.shorten("/intc@8000000", "reg", to: 16)
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .tooFewRegisterBlocks(needed: 2))
        #expect(found.text == "/intc@8000000 reg has fewer than 2 register blocks")
    }

    @Test func interruptControllerWithoutInterruptCells() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/intc@8000000", "#interrupt-cells")
        #expect(try defect(in: edited)?.text == "/intc@8000000 has no usable #interrupt-cells")
    }

    @Test func timerWithoutInterrupts() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/timer", "interrupts")
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .tooFewInterrupts(needed: 4))
        #expect(found.text == "/timer has fewer than 4 interrupts routed to the GIC")
    }

    @Test func timerInterruptOfUnknownType() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.setCell("/timer", "interrupts", index: 0, to: 7)
        #expect(try defect(in: edited)?.text == "/timer names interrupt type 7 number 13, neither an SPI nor a PPI")
    }

    @Test func noTimer() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.remove("/timer", "compatible")
        #expect(try defect(in: edited)?.problem == .missing(.timer))
    }

    @Test func consoleInterruptsNotWholeEntries() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.shorten("/pl011@9000000", "interrupts", to: 8)
        #expect(try defect(in: edited)?.text == "/pl011@9000000 interrupts is not a whole number of 3-cell entries")
    }

    @Test func consoleRegistersNeedAUsableReg() throws {
        let original = EditedTree(fixture: "a72-128m-gicv2")
        #expect(try original.withTree { Platform.consoleRegisters(in: $0) }
                == PhysicalRange(start: PhysicalAddress(0x900_0000), size: 0x1000))
        var withoutReg = original
        try withoutReg.remove("/pl011@9000000", "reg")
        #expect(try withoutReg.withTree { Platform.consoleRegisters(in: $0) } == nil)
        var sizeZero = original
        try sizeZero.setCell("/pl011@9000000", "reg", index: 3, to: 0)
        #expect(try sizeZero.withTree { Platform.consoleRegisters(in: $0) } == nil)
        // The rest of the tree does not matter to the console.
        var noMemory = original
        try noMemory.remove("/memory@40000000", "reg")
        #expect(try noMemory.withTree { Platform.consoleRegisters(in: $0) } != nil)
    }

    @Test func pathsOfNestedNodes() throws {
        let edited = EditedTree(fixture: "reserved-memory")
        for path: StaticString in ["/soc/uart@1000", "/reserved-memory", "/"] {
            let written = try edited.withTree { tree in
                var line = TextLine()
                try #require(tree.node(atPath: path)).writePath(into: &line)
                return line.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
            }
            #expect(written == path.description)
        }
    }
}

/// Ranges the kernel could not map or must keep apart: each a clear stop, naming the node.
@Suite struct PlatformAddressTests {
    @Test func memoryPastTheMappedAddressesIsRefused() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.setCell("/memory@40000000", "reg", index: 0, to: 0x1_0000) // 2^48 + 1 GiB
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .unaddressable(PhysicalRange(start: PhysicalAddress(1 << 48 | ramBase), size: 128 << 20)))
        #expect(found.text == "/memory@40000000 reg 0x0001000040000000 size 0x0000000008000000 lies past the physical addresses the kernel maps (2^44)")
    }

    @Test func memoryThatWrapsIsRefused() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.setCell("/memory@40000000", "reg", index: 2, to: 0xFFFF_FFFF)
        try edited.setCell("/memory@40000000", "reg", index: 3, to: 0xFFFF_FFFF)
        #expect(try defect(in: edited)?.problem
            == .unaddressable(PhysicalRange(start: PhysicalAddress(ramBase), size: .max)))
    }

    @Test func interruptControllerPastTheMappedAddressesIsRefused() throws {
        var edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.setCell("/intc@8000000", "reg", index: 0, to: 0x10_0000)
        let found = try #require(try defect(in: edited))
        #expect(found.problem == .unaddressable(PhysicalRange(start: PhysicalAddress(1 << 52 | 0x800_0000), size: 0x1_0000)))
        #expect(found.text.hasPrefix("/intc@8000000 reg "))
    }

    @Test func aConsoleWindowTooLargeOrUnmappableIsNoConsole() throws {
        for (index, value) in [(3, UInt32(0x100_0000)), (0, 0x10_0000)] {
            var edited = EditedTree(fixture: "a72-128m-gicv2")
            try edited.setCell("/pl011@9000000", "reg", index: index, to: value)
            try edited.withTree { tree throws in
                #expect(Platform.consoleRegisters(in: tree) == nil)
                let console = try Platform.discover(in: tree).console
                #expect(console == nil)
            }
        }
    }

    @Test func aRangeAcrossAHoleBetweenRegionsIsOutsideMemory() throws {
        // Two adjacent regions (0x40000000 and 0x80000000, 1 GiB each) hold a range across their
        // meeting point; once the second starts 1 MiB later, the same range spans a hole, though
        // its first and last bytes are both in RAM.
        let across = PhysicalRange(start: PhysicalAddress(0x8000_0000 - 0x1000), size: 0x10_2000)
        #expect(try defect(in: EditedTree(fixture: "a72-2g-numa"), kernelImage: across) == nil)
        var holed = EditedTree(fixture: "a72-2g-numa")
        try holed.setCell("/memory@80000000", "reg", index: 1, to: 0x8010_0000)
        #expect(try defect(in: holed, kernelImage: across)?.problem == .outsideMemory(.kernelImage, across))
    }

    @Test func aRamdiskOverTheKernelImageIsRefused() throws {
        let edited = EditedTree(fixture: "a72-128m-gicv2")
        try edited.withTree { tree in
            var platform = try Platform.discover(in: tree)
            platform.initialRamdisk = PhysicalRange(start: PhysicalAddress(ramBase), size: 0x40_0000)
            do throws(PlatformDefect) {
                try platform.checkRequirements(in: tree, kernelImage: kernelImage, deviceTree: deviceTreeRange)
                Issue.record("a ramdisk over the kernel image was accepted")
            } catch {
                var line = TextLine()
                error.describe(into: &line)
                #expect(error.problem == .overlapping(.initialRamdisk, .kernelImage))
                #expect(line.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == "the initial ramdisk overlaps the kernel image")
            }
        }
    }
}
