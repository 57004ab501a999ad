// Fuzz target for the device tree reader and for what the kernel reads from a tree at boot. An
// input is the blob a boot loader hands over: it is opened as kernel_main opens it, then every
// node, property, register and reservation is visited, Platform.discover interprets the tree and
// the results are formatted as the boot log formats them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeviceTree(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: count)
    let header = UnsafeRawBufferPointer(rebasing: input[0..<min(count, DeviceTree.headerSize)])
    guard let size = try? DeviceTree.totalSize(ofHeaderAt: header), size <= count else {
        // What the header check refuses, the reader refuses too.
        expect((try? DeviceTree(blob: input)) == nil, "a blob with a bad header or totalsize was accepted")
        return 0
    }
    // The kernel maps exactly totalsize bytes; a buffer of that size catches a read past them.
    withExactCopy(of: UnsafeRawBufferPointer(rebasing: input[0..<size])) { blob in
        do throws(DeviceTreeError) {
            visit(try DeviceTree(blob: blob))
        } catch {
            consume("Boot: device tree unreadable (\(error))")
        }
    }
    return 0
}

/// Path and phandle lookups walk the tree, so only this many per input keep a run fast.
let lookupsPerInput = 8

/// The blocks of an accepted tree, and the lookups left for this input.
struct Walk {
    let tree: DeviceTree
    let structure: UnsafeRawBufferPointer
    let strings: UnsafeRawBufferPointer
    var pathLookups = 0
    var pathsWritten = 0
    var phandles: [UInt32] = []

    init(_ tree: DeviceTree) {
        self.tree = tree
        structure = UnsafeRawBufferPointer(rebasing: tree.blob[tree.structureStart..<tree.structureEnd])
        strings = UnsafeRawBufferPointer(rebasing: tree.blob[tree.stringsStart..<tree.stringsEnd])
    }
}

func visit(_ tree: DeviceTree) {
    expect(tree.totalSize >= DeviceTree.headerSize, "totalsize below the header size")
    consume("Boot: Device tree parsed successfully (version \(tree.version), \(tree.totalSize) bytes)")
    consume(UInt64(tree.bootCPUPhysicalID))
    for reservation in tree.memoryReservations {
        consume("\(reservation.start) \(size: reservation.size) \(reservation.end != nil)")
    }
    let reference = referenceWalk(tree)
    var walk = Walk(tree)
    var nodeCount = 0
    tree.forEachNode { node in
        expect(nodeCount < reference.count, "more nodes visited than the structure block holds")
        visit(node, expected: reference[nodeCount], &walk)
        nodeCount += 1
        return true
    }
    expect(nodeCount == reference.count, "a node of the structure block was not visited")
    for phandle in walk.phandles {
        expect(tree.node(withPhandle: phandle)?.phandle == phandle, "a phandle in the tree is not found")
    }
    consume(UInt64(tree.countNodes(compatibleWith: "virtio,mmio")))
    consume(bytes: tree.firstNode(compatibleWith: "arm,pl011")?.name ?? DeviceTreeBytes(""))
    visitPlatform(tree, nodeCount: nodeCount)
    visitMemory(tree)
}

func visit(_ node: DeviceTreeNode, expected: ReferenceNode, _ walk: inout Walk) {
    expect(node.offset == expected.offset, "nodes visited out of document order")
    expect(isInside(node.name.buffer, walk.structure), "node name outside the structure block")
    consume(bytes: node.name)
    var propertyCount = 0
    for property in node.properties {
        expect(propertyCount < expected.properties.count, "more properties than the node holds")
        let (offset, length) = expected.properties[propertyCount]
        propertyCount += 1
        expect(property.value.buffer.baseAddress == walk.tree.blob.baseAddress! + offset + 12
               && property.value.count == length, "a property's value is not where its header says")
        visit(property, &walk)
    }
    expect(propertyCount == expected.properties.count, "a property of the node was skipped")
    let inherited = node.contextForChildren
    var childCount = 0
    for child in node.children {
        childCount += 1
        expect(child.context == inherited, "a child does not inherit its parent's context")
    }
    expect(childCount == expected.childCount, "a child of the node was skipped")
    visitRegisters(of: node)
    consume(UInt64(node.interruptParent ?? 0))
    consume(node.isEnabled && node.hasDeviceType("memory") && node.isCompatible(with: "arm,pl011") ? 1 : 0)
    if let phandle = node.phandle, walk.phandles.count < lookupsPerInput { walk.phandles.append(phandle) }
    // A defect names its node by path, found by walking down from the root.
    if walk.pathsWritten < lookupsPerInput {
        walk.pathsWritten += 1
        var line = TextLine()
        node.writePath(into: &line)
        expect(line.count > 0, "a node without a path")
        line.forEachByte { consume(UInt64($0)) }
    }
}

func visit(_ property: DeviceTreeProperty, _ walk: inout Walk) {
    expect(isInside(property.name.buffer, walk.strings), "property name outside the strings block")
    expect(isInside(property.value.buffer, walk.structure), "property value outside the structure block")
    consume(bytes: property.name)
    consume(bytes: property.value)
    consume(UInt64(property.u32 ?? 0) &+ (property.u64 ?? 0))
    if let text = property.string {
        expect(text.count < property.value.count, "a string property's string includes its terminator")
        consume("\(text)")
        // stdout-path and /aliases hold paths; any string is tried as one.
        if walk.pathLookups < lookupsPerInput {
            walk.pathLookups += 1
            consume(bytes: walk.tree.node(atPathOrAlias: text)?.name ?? DeviceTreeBytes(""))
            consume(bytes: walk.tree.node(atPath: text)?.name ?? DeviceTreeBytes(""))
        }
    }
    var listBytes = 0
    for entry in property.strings {
        expect(isInside(entry.buffer, property.value.buffer), "string list entry outside its value")
        listBytes += entry.count + 1
        consume(bytes: entry)
    }
    expect(listBytes <= property.value.count, "string list longer than its value")
    var cellCount = 0
    for cell in property.cells {
        cellCount += 1
        consume(UInt64(cell))
    }
    expect(cellCount == property.value.count / 4, "cells do not cover the value")
}

/// A node as a plain token-by-token reading of the structure block sees it, independently of the
/// reader's iterators: where it begins, its properties before its first child, and its children.
struct ReferenceNode {
    var offset: Int
    var properties: [(offset: Int, length: Int)] = []
    var childCount = 0
}

/// Every node in document order, which is the order forEachNode promises. Only called on a tree
/// the reader accepted, so the grammar holds.
func referenceWalk(_ tree: DeviceTree) -> [ReferenceNode] {
    let blob = tree.blob
    func bigEndian32(_ offset: Int) -> Int {
        Int(blob[offset]) << 24 | Int(blob[offset + 1]) << 16 | Int(blob[offset + 2]) << 8 | Int(blob[offset + 3])
    }
    var nodes: [ReferenceNode] = []
    var open: [Int] = []
    var offset = tree.structureStart
    while offset + 4 <= tree.structureEnd {
        switch bigEndian32(offset) {
        case 1:
            if let parent = open.last { nodes[parent].childCount += 1 }
            nodes.append(ReferenceNode(offset: offset))
            open.append(nodes.count - 1)
            var end = offset + 4
            while blob[end] != 0 { end += 1 }
            offset = (end + 1 + 3) & ~3
        case 2:
            open.removeLast()
            offset += 4
        case 3:
            let length = bigEndian32(offset + 4)
            if let current = open.last, nodes[current].childCount == 0 {
                nodes[current].properties.append((offset, length))
            }
            offset = (offset + 12 + length + 3) & ~3
        case 4:
            offset += 4
        default:
            return nodes
        }
    }
    return nodes
}

func visitRegisters(of node: DeviceTreeNode) {
    do throws(DeviceTreeError) {
        let registers = try node.registers()
        var count = 0
        for region in registers {
            count += 1
            consume("\(region.start) \(size: region.size) \(region.end != nil)")
        }
        expect(count == registers.count, "reg entries differ from their count")
        expect((try node.firstRegister() != nil) == (count > 0), "firstRegister disagrees with registers")
    } catch {
        consume("\(error)")
    }
}

/// Where QEMU's virt machine puts the kernel image (RAM + 2 MiB) and the device tree, for
/// checkRequirements; the fuzzer moves RAM around them.
let kernelImage = PhysicalRange(start: PhysicalAddress(0x4020_0000), size: 0x20_0000)
let treeAddress = PhysicalAddress(0x4800_0000)

/// The platform as kernel_main reads it: the console and boot arguments first, trusting nothing
/// else, then Platform.discover and checkRequirements, a defect reported by node path.
func visitPlatform(_ tree: DeviceTree, nodeCount: Int) {
    if let console = Platform.consoleRegisters(in: tree) {
        expect(console.size > 0, "a console without registers")
        consume("Boot: Console PL011 at \(console.start)")
    }
    consume(Platform.findPSCIConduit(in: tree) == .hvc ? 1 : 2)
    visitBootArguments(Platform.bootArguments(in: tree))
    let platform: Platform
    do throws(PlatformDefect) {
        platform = try Platform.discover(in: tree)
        try platform.checkRequirements(in: tree, kernelImage: kernelImage,
                                       deviceTree: PhysicalRange(start: treeAddress, size: UInt64(tree.totalSize)))
    } catch {
        consume("Boot: device tree: \(error); stopping")
        return
    }
    expect(platform.cpuCount <= nodeCount && platform.virtioMMIOCount <= nodeCount, "more devices than nodes")
    expect(platform.interruptController != nil && platform.timer != nil, "requirements passed without a GIC or timer")
    if let console = platform.console {
        consume("Boot: Console PL011 at \(console.registers.start) \(console.interrupt ?? 0)")
    }
    if let controller = platform.interruptController {
        consume("\(controller.distributor.start) \(controller.cpuInterfaceOrRedistributor.start)")
    }
    if let timer = platform.timer {
        for identifier in [timer.securePhysicalInterrupt, timer.physicalInterrupt, timer.virtualInterrupt,
                           timer.hypervisorInterrupt] {
            expect(identifier >= 16 && identifier < 1020, "timer interrupt is not a GIC interrupt identifier")
        }
    }
    if let ramdisk = platform.initialRamdisk {
        expect(ramdisk.size > 0, "empty initial ramdisk range")
    }
    visitBootArguments(platform.bootArguments)
}

func visitBootArguments(_ text: DeviceTreeBytes?) {
    let arguments = BootArguments(text)
    if let text, text.count > 0 { consume("Boot: Command line: \(text)") }
    for word in arguments.words {
        expect(word.count > 0, "an empty boot argument")
        consume(bytes: word)
    }
    consume(arguments.contains("test") ? 1 : 0)
    consume(arguments.number(of: "tick") ?? 100)
    consume(bytes: arguments.value(of: "selftest") ?? DeviceTreeBytes(""))
}

/// The memory map as startFrameAllocator and reportMemory build and print it.
func visitMemory(_ tree: DeviceTree) {
    var map = MemoryMap()
    do throws(DeviceTreeError) {
        try tree.forEachMemoryRegion { region in
            expect(region.size > 0, "an empty memory region")
            let end = region.end ?? PhysicalAddress(UInt64.max)
            consume("Boot: Memory region: \(region.start) - \(end) (\(megabytes: region.size) MB)")
            try? map.addRAM(region)
        }
        try tree.forEachReservedRegion { region in
            expect(region.size > 0, "an empty reserved region")
            consume("Boot: Reserved memory: \(region.start) (\(size: region.size))")
            try? map.reserve(region, for: .reserved)
        }
    } catch {
        consume("Boot: memory description in the device tree is malformed (\(error))")
    }
    consume(UInt64(map.regionCount + map.reservationCount))
}
