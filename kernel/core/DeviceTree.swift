// Flattened device tree (DTB, Devicetree Specification v0.4 chapter 5) reader.
// `DeviceTree.init` validates the header and walks the whole structure block once; after that
// every view (node, property, string) is known to lie inside the blob. Nothing here allocates,
// because the tree is read before the kernel heap exists, and nothing here trusts the blob:
// every read is bounds-checked against totalsize and malformed input is a `DeviceTreeError`.

public enum DeviceTreeError: Error, Equatable {
    /// The buffer is smaller than the header, or than the header's totalsize.
    case truncated
    case badMagic(UInt32)
    case unsupportedVersion(UInt32)
    /// A block (structure, strings, memory reservations) lies outside totalsize or overlaps the header.
    case blockOutOfBounds
    case misalignedBlock
    /// An unknown token, or a token where the grammar does not allow it, at this structure offset.
    case badToken(offset: Int)
    /// A node name or a string that runs past the end of its block without a NUL.
    case unterminatedString(offset: Int)
    /// A property whose length or name offset does not fit its block.
    case malformedProperty(offset: Int)
    /// Nodes nested deeper than `DeviceTree.maximumDepth`.
    case tooDeep
    /// More begin-node than end-node tokens, or the reverse.
    case unbalancedNodes
    /// A #address-cells or #size-cells value this kernel cannot represent in 64 bits.
    case badCellCount(UInt32)
    /// A `reg`, `ranges` or `interrupts` value whose length is not a whole number of entries.
    case malformedValue
    /// The memory reservation map does not end within its block.
    case unterminatedReservationMap
}

public struct DeviceTree {
    public static let magic: UInt32 = 0xD00D_FEED
    public static let headerSize = 40
    /// Nesting limit; QEMU's trees are 3 deep. It bounds the recursion of `forEachNode`.
    public static let maximumDepth = 32

    enum Token: UInt32 {
        case beginNode = 1
        case endNode = 2
        case property = 3
        case nop = 4
        case end = 9
    }

    let blob: UnsafeRawBufferPointer
    let structureStart: Int
    let structureEnd: Int
    let stringsStart: Int
    let stringsEnd: Int
    let reservationsStart: Int

    public let version: UInt32
    public let bootCPUPhysicalID: UInt32
    public var totalSize: Int { blob.count }

    /// Reads totalsize from a header at `address` without trusting anything else; used by the
    /// kernel to learn how many bytes to hand to `init(blob:)`.
    public static func totalSize(ofHeaderAt header: UnsafeRawBufferPointer) throws(DeviceTreeError) -> Int {
        guard header.count >= headerSize else { throw .truncated }
        let found = readBigEndian32(header, 0)
        guard found == magic else { throw .badMagic(found) }
        return Int(readBigEndian32(header, 4))
    }

    public init(blob buffer: UnsafeRawBufferPointer) throws(DeviceTreeError) {
        guard buffer.count >= Self.headerSize else { throw .truncated }
        let found = Self.readBigEndian32(buffer, 0)
        guard found == Self.magic else { throw .badMagic(found) }
        let totalSize = Int(Self.readBigEndian32(buffer, 4))
        guard totalSize >= Self.headerSize, totalSize <= buffer.count else { throw .truncated }
        let blob = UnsafeRawBufferPointer(rebasing: buffer[0..<totalSize])

        let structureOffset = Int(Self.readBigEndian32(blob, 8))
        let stringsOffset = Int(Self.readBigEndian32(blob, 12))
        let reservationsOffset = Int(Self.readBigEndian32(blob, 16))
        let version = Self.readBigEndian32(blob, 20)
        let lastCompatibleVersion = Self.readBigEndian32(blob, 24)
        let stringsSize = Int(Self.readBigEndian32(blob, 32))
        // Version 17 is current; 16 lacks size_dt_struct. A tree that cannot be read by a
        // version-17 reader says so through last_comp_version.
        guard version >= 16, lastCompatibleVersion <= 17 else { throw .unsupportedVersion(version) }
        let structureSize = version >= 17 ? Int(Self.readBigEndian32(blob, 36)) : totalSize - structureOffset

        func inside(_ offset: Int, _ size: Int) -> Bool {
            offset >= Self.headerSize && size >= 0 && offset <= totalSize && size <= totalSize - offset
        }
        guard inside(structureOffset, structureSize), inside(stringsOffset, stringsSize),
              inside(reservationsOffset, 0) else { throw .blockOutOfBounds }
        guard structureOffset % 4 == 0, structureSize % 4 == 0, reservationsOffset % 8 == 0 else {
            throw .misalignedBlock
        }

        self.blob = blob
        self.structureStart = structureOffset
        self.structureEnd = structureOffset + structureSize
        self.stringsStart = stringsOffset
        self.stringsEnd = stringsOffset + stringsSize
        self.reservationsStart = reservationsOffset
        self.version = version
        self.bootCPUPhysicalID = Self.readBigEndian32(blob, 28)

        try validateReservationMap()
        try validateStructure()
    }

    // MARK: Whole-tree validation

    private func validateReservationMap() throws(DeviceTreeError) {
        var offset = reservationsStart
        while true {
            guard offset + 16 <= totalSize else { throw .unterminatedReservationMap }
            if readBigEndian64(offset) == 0 && readBigEndian64(offset + 8) == 0 { return }
            offset += 16
        }
    }

    /// One pass over the structure block checking the grammar
    /// `NOP* BEGIN_NODE(root) ... END_NODE NOP* END`, every name, and every property.
    private func validateStructure() throws(DeviceTreeError) {
        var offset = structureStart
        var depth = 0
        var seenRoot = false
        while true {
            guard let raw = readToken(offset), let token = Token(rawValue: raw) else {
                throw .badToken(offset: offset - structureStart)
            }
            let tokenOffset = offset
            offset += 4
            switch token {
            case .nop:
                continue
            case .beginNode:
                if depth == 0 && seenRoot { throw .badToken(offset: tokenOffset - structureStart) }
                seenRoot = true
                depth += 1
                if depth > Self.maximumDepth { throw .tooDeep }
                guard let nameLength = stringLength(from: offset, limit: structureEnd) else {
                    throw .unterminatedString(offset: offset - structureStart)
                }
                offset = Self.alignUp4(offset + nameLength + 1)
            case .endNode:
                if depth == 0 { throw .unbalancedNodes }
                depth -= 1
            case .property:
                if depth == 0 { throw .badToken(offset: tokenOffset - structureStart) }
                guard offset + 8 <= structureEnd else { throw .malformedProperty(offset: tokenOffset - structureStart) }
                let length = Int(readBigEndian32(offset))
                let nameOffset = Int(readBigEndian32(offset + 4))
                guard length <= structureEnd - (offset + 8) else {
                    throw .malformedProperty(offset: tokenOffset - structureStart)
                }
                guard nameOffset < stringsEnd - stringsStart else {
                    throw .malformedProperty(offset: tokenOffset - structureStart)
                }
                guard stringLength(from: stringsStart + nameOffset, limit: stringsEnd) != nil else {
                    throw .unterminatedString(offset: tokenOffset - structureStart)
                }
                offset = Self.alignUp4(offset + 8 + length)
            case .end:
                guard seenRoot else { throw .badToken(offset: tokenOffset - structureStart) }
                guard depth == 0 else { throw .unbalancedNodes }
                return
            }
        }
    }

    // MARK: Bounds-checked reads

    static func readBigEndian32(_ buffer: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(buffer[offset]) << 24 | UInt32(buffer[offset + 1]) << 16
            | UInt32(buffer[offset + 2]) << 8 | UInt32(buffer[offset + 3])
    }

    func readBigEndian32(_ offset: Int) -> UInt32 { Self.readBigEndian32(blob, offset) }

    func readBigEndian64(_ offset: Int) -> UInt64 {
        UInt64(readBigEndian32(offset)) << 32 | UInt64(readBigEndian32(offset + 4))
    }

    /// The token at `offset`, or nil when it is not wholly inside the structure block.
    func readToken(_ offset: Int) -> UInt32? {
        guard offset >= structureStart, offset + 4 <= structureEnd else { return nil }
        return readBigEndian32(offset)
    }

    /// Bytes before the first NUL at or after `offset`, or nil when there is none before `limit`.
    func stringLength(from offset: Int, limit: Int) -> Int? {
        var cursor = offset
        while cursor < limit {
            if blob[cursor] == 0 { return cursor - offset }
            cursor += 1
        }
        return nil
    }

    static func alignUp4(_ value: Int) -> Int { (value + 3) & ~3 }

    func bytes(_ offset: Int, _ count: Int) -> DeviceTreeBytes {
        DeviceTreeBytes(UnsafeRawBufferPointer(rebasing: blob[offset..<offset + count]))
    }

    // MARK: Public views

    /// The root node. Its `reg`-interpreting cells are the specification's defaults (2 and 1).
    public var root: DeviceTreeNode {
        var offset = structureStart
        while readToken(offset) == Token.nop.rawValue { offset += 4 }
        return DeviceTreeNode(tree: self, offset: offset, context: .rootDefaults)
    }

    /// The entries of the /memreserve/ map (header's off_mem_rsvmap), in order.
    public var memoryReservations: MemoryReservationSequence {
        MemoryReservationSequence(tree: self)
    }

    /// Calls `body` on every node, parents before children, until `body` returns false.
    /// Recursion is bounded by `maximumDepth`, checked at init.
    @discardableResult
    public func forEachNode(_ body: (DeviceTreeNode) -> Bool) -> Bool {
        func visit(_ node: DeviceTreeNode) -> Bool {
            guard body(node) else { return false }
            for child in node.children where !visit(child) { return false }
            return true
        }
        return visit(root)
    }

    /// The first node, in tree order, whose `compatible` list contains `compatible`.
    public func firstNode(compatibleWith compatible: StaticString) -> DeviceTreeNode? {
        var found: DeviceTreeNode?
        forEachNode { node in
            if node.isCompatible(with: compatible) { found = node; return false }
            return true
        }
        return found
    }

    /// Number of nodes whose `compatible` list contains `compatible`.
    public func countNodes(compatibleWith compatible: StaticString) -> Int {
        var count = 0
        forEachNode { node in
            if node.isCompatible(with: compatible) { count += 1 }
            return true
        }
        return count
    }

    /// The node whose `phandle` (or legacy `linux,phandle`) is `phandle`.
    public func node(withPhandle phandle: UInt32) -> DeviceTreeNode? {
        var found: DeviceTreeNode?
        forEachNode { node in
            if node.phandle == phandle { found = node; return false }
            return true
        }
        return found
    }

    /// Resolves an absolute path ("/pl011@9000000"); a component without a unit address
    /// matches a node whose name before '@' equals it, as the specification allows.
    public func node(atPath path: DeviceTreeBytes) -> DeviceTreeNode? {
        guard path.count > 0, path[0] == UInt8(ascii: "/") else { return nil }
        return descend(from: root, along: path, startingAt: 1)
    }

    public func node(atPath path: StaticString) -> DeviceTreeNode? {
        node(atPath: DeviceTreeBytes(path))
    }

    /// Resolves a path that may begin with an alias from /aliases ("serial0" or "serial0/sub").
    public func node(atPathOrAlias path: DeviceTreeBytes) -> DeviceTreeNode? {
        guard path.count > 0 else { return nil }
        if path[0] == UInt8(ascii: "/") { return node(atPath: path) }
        let alias = path.prefix(upTo: UInt8(ascii: "/"))
        guard let aliases = node(atPath: "/aliases") else { return nil }
        for property in aliases.properties where property.name == alias {
            guard let target = property.string, let base = node(atPath: target) else { return nil }
            return descend(from: base, along: path, startingAt: alias.count + 1)
        }
        return nil
    }

    /// Follows the '/'-separated components of `path` from `index` on, starting at `start`.
    private func descend(from start: DeviceTreeNode, along path: DeviceTreeBytes, startingAt index: Int) -> DeviceTreeNode? {
        var node = start
        var componentStart = index
        while componentStart < path.count {
            let component = path.slice(componentStart, path.count).prefix(upTo: UInt8(ascii: "/"))
            if component.count > 0 {
                var next: DeviceTreeNode?
                for child in node.children where child.name.matchesPathComponent(component) {
                    next = child
                    break
                }
                guard let found = next else { return nil }
                node = found
            }
            componentStart += component.count + 1
        }
        return node
    }
}

// MARK: - Nodes

/// What a node inherits from its ancestors: the cells that interpret its own `reg`
/// (its parent's #address-cells/#size-cells) and the nearest `interrupt-parent`.
public struct InheritedContext: Equatable, Sendable {
    public var addressCells: UInt32
    public var sizeCells: UInt32
    public var interruptParent: UInt32?

    static let rootDefaults = InheritedContext(addressCells: 2, sizeCells: 1, interruptParent: nil)
}

public struct DeviceTreeNode {
    let tree: DeviceTree
    /// Offset of this node's BEGIN_NODE token in the blob.
    let offset: Int
    public let context: InheritedContext

    /// The full name including any unit address, e.g. "pl011@9000000"; empty for the root.
    public var name: DeviceTreeBytes {
        let nameStart = offset + 4
        let length = tree.stringLength(from: nameStart, limit: tree.structureEnd) ?? 0
        return tree.bytes(nameStart, length)
    }

    var firstPropertyOffset: Int {
        DeviceTree.alignUp4(offset + 4 + name.count + 1)
    }

    public var properties: PropertySequence { PropertySequence(tree: tree, start: firstPropertyOffset) }

    public func property(_ name: StaticString) -> DeviceTreeProperty? {
        let wanted = DeviceTreeBytes(name)
        for property in properties where property.name == wanted { return property }
        return nil
    }

    public var children: ChildSequence {
        ChildSequence(tree: tree, start: firstPropertyOffset, context: contextForChildren)
    }

    /// #address-cells and #size-cells this node sets for its children (defaults 2 and 1), and the
    /// interrupt parent they inherit.
    public var contextForChildren: InheritedContext {
        var inherited = InheritedContext.rootDefaults
        inherited.interruptParent = context.interruptParent
        for property in properties {
            if property.name == DeviceTreeBytes("#address-cells"), let cells = property.u32 {
                inherited.addressCells = cells
            } else if property.name == DeviceTreeBytes("#size-cells"), let cells = property.u32 {
                inherited.sizeCells = cells
            } else if property.name == DeviceTreeBytes("interrupt-parent"), let phandle = property.u32 {
                inherited.interruptParent = phandle
            }
        }
        return inherited
    }

    public var phandle: UInt32? {
        property("phandle")?.u32 ?? property("linux,phandle")?.u32
    }

    /// The interrupt parent for this node's own `interrupts`: its own property, else inherited.
    public var interruptParent: UInt32? {
        property("interrupt-parent")?.u32 ?? context.interruptParent
    }

    public func isCompatible(with compatible: StaticString) -> Bool {
        guard let list = property("compatible") else { return false }
        let wanted = DeviceTreeBytes(compatible)
        for entry in list.strings where entry == wanted { return true }
        return false
    }

    /// True when `device_type` is `type` (used by /memory and /cpus/cpu@N nodes).
    public func hasDeviceType(_ type: StaticString) -> Bool {
        property("device_type")?.string == DeviceTreeBytes(type)
    }

    /// `status` is absent, "okay" or "ok".
    public var isEnabled: Bool {
        guard let status = property("status")?.string else { return true }
        return status == DeviceTreeBytes("okay") || status == DeviceTreeBytes("ok")
    }

    /// The (address, size) pairs of `reg`, decoded with the parent's cell counts.
    public func registers() throws(DeviceTreeError) -> RegisterSequence {
        guard let reg = property("reg") else {
            return try RegisterSequence(value: DeviceTreeBytes.empty, addressCells: 1, sizeCells: 0)
        }
        return try RegisterSequence(value: reg.value, addressCells: context.addressCells, sizeCells: context.sizeCells)
    }

    /// The first `reg` entry, the usual way a device names its MMIO window.
    public func firstRegister() throws(DeviceTreeError) -> PhysicalRange? {
        var iterator = try registers().makeIterator()
        return iterator.next()
    }
}

public struct ChildSequence: Sequence {
    let tree: DeviceTree
    let start: Int
    let context: InheritedContext

    public struct Iterator: IteratorProtocol {
        let tree: DeviceTree
        var offset: Int
        let context: InheritedContext

        public mutating func next() -> DeviceTreeNode? {
            while let token = tree.readToken(offset) {
                switch DeviceTree.Token(rawValue: token) {
                case .nop:
                    offset += 4
                case .property:
                    offset = DeviceTree.alignUp4(offset + 12 + Int(tree.readBigEndian32(offset + 4)))
                case .beginNode:
                    let child = DeviceTreeNode(tree: tree, offset: offset, context: context)
                    offset = skipSubtree(from: offset)
                    return child
                default:
                    return nil // END_NODE of the parent (or END): no more children.
                }
            }
            return nil
        }

        /// Offset just past the END_NODE that closes the node beginning at `begin`.
        /// The structure was validated at init, so the walk is balanced and terminates.
        private func skipSubtree(from begin: Int) -> Int {
            var offset = begin
            var depth = 0
            while let token = tree.readToken(offset) {
                switch DeviceTree.Token(rawValue: token) {
                case .beginNode:
                    depth += 1
                    let length = tree.stringLength(from: offset + 4, limit: tree.structureEnd) ?? 0
                    offset = DeviceTree.alignUp4(offset + 4 + length + 1)
                case .endNode:
                    depth -= 1
                    offset += 4
                    if depth == 0 { return offset }
                case .property:
                    offset = DeviceTree.alignUp4(offset + 12 + Int(tree.readBigEndian32(offset + 4)))
                case .nop:
                    offset += 4
                default:
                    return tree.structureEnd
                }
            }
            return tree.structureEnd
        }
    }

    public func makeIterator() -> Iterator { Iterator(tree: tree, offset: start, context: context) }
}

// MARK: - Properties

public struct DeviceTreeProperty {
    public let name: DeviceTreeBytes
    public let value: DeviceTreeBytes

    /// A single big-endian u32 value (exactly 4 bytes).
    public var u32: UInt32? { value.count == 4 ? value.bigEndian32(at: 0) : nil }

    /// A u64 value, or a u32 value widened (as used by linux,initrd-start/end).
    public var u64: UInt64? {
        switch value.count {
        case 4: return UInt64(value.bigEndian32(at: 0))
        case 8: return value.bigEndian64(at: 0)
        default: return nil
        }
    }

    /// The value as one NUL-terminated string, without the terminator; nil if not terminated.
    public var string: DeviceTreeBytes? {
        guard value.count > 0, value[value.count - 1] == 0 else { return nil }
        var end = 0
        while value[end] != 0 { end += 1 }
        return value.slice(0, end)
    }

    /// The value as a list of NUL-terminated strings (e.g. `compatible`). A trailing
    /// unterminated fragment is ignored rather than read past.
    public var strings: StringListSequence { StringListSequence(value: value) }

    /// The value as big-endian u32 cells; a trailing partial cell is ignored.
    public var cells: CellSequence { CellSequence(value: value) }
}

public struct PropertySequence: Sequence {
    let tree: DeviceTree
    let start: Int

    public struct Iterator: IteratorProtocol {
        let tree: DeviceTree
        var offset: Int

        public mutating func next() -> DeviceTreeProperty? {
            while let token = tree.readToken(offset) {
                switch DeviceTree.Token(rawValue: token) {
                case .nop:
                    offset += 4
                case .property:
                    // Lengths and name offsets were validated at init.
                    let length = Int(tree.readBigEndian32(offset + 4))
                    let nameOffset = tree.stringsStart + Int(tree.readBigEndian32(offset + 8))
                    let nameLength = tree.stringLength(from: nameOffset, limit: tree.stringsEnd) ?? 0
                    let property = DeviceTreeProperty(
                        name: tree.bytes(nameOffset, nameLength),
                        value: tree.bytes(offset + 12, length))
                    offset = DeviceTree.alignUp4(offset + 12 + length)
                    return property
                default:
                    return nil // Properties precede children; anything else ends the list.
                }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(tree: tree, offset: start) }
}

public struct StringListSequence: Sequence {
    let value: DeviceTreeBytes

    public struct Iterator: IteratorProtocol {
        let value: DeviceTreeBytes
        var offset = 0

        public mutating func next() -> DeviceTreeBytes? {
            guard offset < value.count else { return nil }
            var end = offset
            while end < value.count && value[end] != 0 { end += 1 }
            guard end < value.count else { return nil }
            let entry = value.slice(offset, end)
            offset = end + 1
            return entry
        }
    }

    public func makeIterator() -> Iterator { Iterator(value: value) }
}

public struct CellSequence: Sequence {
    let value: DeviceTreeBytes

    public struct Iterator: IteratorProtocol {
        let value: DeviceTreeBytes
        var offset = 0

        public mutating func next() -> UInt32? {
            guard offset + 4 <= value.count else { return nil }
            defer { offset += 4 }
            return value.bigEndian32(at: offset)
        }
    }

    public func makeIterator() -> Iterator { Iterator(value: value) }
}

/// `reg` decoded as (address, size) pairs. Cell counts above 2 cannot be represented in 64 bits
/// and are rejected when the sequence is made, as is a value that is not whole entries.
public struct RegisterSequence: Sequence {
    let value: DeviceTreeBytes
    let addressCells: Int
    let sizeCells: Int

    init(value: DeviceTreeBytes, addressCells: UInt32, sizeCells: UInt32) throws(DeviceTreeError) {
        guard addressCells >= 1, addressCells <= 2 else { throw .badCellCount(addressCells) }
        guard sizeCells <= 2 else { throw .badCellCount(sizeCells) }
        let entrySize = 4 * Int(addressCells + sizeCells)
        guard value.count % entrySize == 0 else { throw .malformedValue }
        self.value = value
        self.addressCells = Int(addressCells)
        self.sizeCells = Int(sizeCells)
    }

    public var count: Int { value.count / (4 * (addressCells + sizeCells)) }

    public struct Iterator: IteratorProtocol {
        let sequence: RegisterSequence
        var offset = 0

        public mutating func next() -> PhysicalRange? {
            let entrySize = 4 * (sequence.addressCells + sequence.sizeCells)
            guard offset + entrySize <= sequence.value.count else { return nil }
            let address = sequence.value.bigEndianCells(at: offset, count: sequence.addressCells)
            let size = sequence.value.bigEndianCells(at: offset + 4 * sequence.addressCells, count: sequence.sizeCells)
            offset += entrySize
            return PhysicalRange(start: PhysicalAddress(address), size: size)
        }
    }

    public func makeIterator() -> Iterator { Iterator(sequence: self) }
}

public struct MemoryReservationSequence: Sequence {
    let tree: DeviceTree

    public struct Iterator: IteratorProtocol {
        let tree: DeviceTree
        var offset: Int

        public mutating func next() -> PhysicalRange? {
            // Termination inside the blob was checked at init.
            guard offset + 16 <= tree.totalSize else { return nil }
            let address = tree.readBigEndian64(offset)
            let size = tree.readBigEndian64(offset + 8)
            if address == 0 && size == 0 { return nil }
            offset += 16
            return PhysicalRange(start: PhysicalAddress(address), size: size)
        }
    }

    public func makeIterator() -> Iterator { Iterator(tree: tree, offset: tree.reservationsStart) }
}

// MARK: - Byte views

/// A read-only view of bytes inside a device tree blob (or a static string), compared and
/// printed without copying.
public struct DeviceTreeBytes: Sequence, Equatable {
    let buffer: UnsafeRawBufferPointer

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public init(_ string: StaticString) {
        buffer = UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount)
    }

    static var empty: DeviceTreeBytes { DeviceTreeBytes(UnsafeRawBufferPointer(start: nil, count: 0)) }

    public var count: Int { buffer.count }
    public subscript(index: Int) -> UInt8 { buffer[index] }

    func slice(_ start: Int, _ end: Int) -> DeviceTreeBytes {
        DeviceTreeBytes(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
    }

    public func makeIterator() -> UnsafeRawBufferPointer.Iterator { buffer.makeIterator() }

    public static func == (lhs: DeviceTreeBytes, rhs: DeviceTreeBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for index in 0..<lhs.count where lhs[index] != rhs[index] { return false }
        return true
    }

    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let wanted = DeviceTreeBytes(prefix)
        guard wanted.count <= count else { return false }
        return slice(0, wanted.count) == wanted
    }

    /// The part before the first `separator`, or everything when there is none.
    public func prefix(upTo separator: UInt8) -> DeviceTreeBytes {
        var end = 0
        while end < count && self[end] != separator { end += 1 }
        return slice(0, end)
    }

    /// A node name matches a path component exactly, or by its part before '@' when the
    /// component has no unit address.
    func matchesPathComponent(_ component: DeviceTreeBytes) -> Bool {
        if self == component { return true }
        if component.contains(UInt8(ascii: "@")) { return false }
        return prefix(upTo: UInt8(ascii: "@")) == component
    }

    func bigEndian32(at offset: Int) -> UInt32 {
        UInt32(buffer[offset]) << 24 | UInt32(buffer[offset + 1]) << 16
            | UInt32(buffer[offset + 2]) << 8 | UInt32(buffer[offset + 3])
    }

    func bigEndian64(at offset: Int) -> UInt64 {
        UInt64(bigEndian32(at: offset)) << 32 | UInt64(bigEndian32(at: offset + 4))
    }

    /// `count` (0, 1 or 2) cells as one number.
    func bigEndianCells(at offset: Int, count: Int) -> UInt64 {
        var result: UInt64 = 0
        for cell in 0..<count { result = result << 32 | UInt64(bigEndian32(at: offset + 4 * cell)) }
        return result
    }
}

extension FormattedText.StringInterpolation {
    public mutating func appendInterpolation(_ bytes: DeviceTreeBytes) {
        line.write(bytes: bytes)
    }
}
