// What the kernel needs to know about the machine, read from the device tree: RAM, reserved
// memory, console, interrupt controller, timer, PSCI, CPUs, boot arguments and initial ramdisk.
// Pure interpretation of `DeviceTree`; the arch layer turns it into running devices. A tree the
// kernel cannot run on yields a `PlatformDefect` naming the node at fault, for the boot log.

public struct Platform {
    public enum InterruptControllerKind: Equatable, Sendable {
        case gicV2
        case gicV3
    }

    public struct InterruptController: Equatable {
        public var kind: InterruptControllerKind
        public var distributor: PhysicalRange
        /// GICv2: the CPU interface. GICv3: the first redistributor region.
        public var cpuInterfaceOrRedistributor: PhysicalRange
    }

    /// GIC interrupt identifiers (PPIs, 16-31) of the generic timer, in the binding's order.
    public struct Timer: Equatable {
        public var securePhysicalInterrupt: UInt32
        public var physicalInterrupt: UInt32
        public var virtualInterrupt: UInt32
        public var hypervisorInterrupt: UInt32
    }

    public enum PSCIConduit: Equatable, Sendable {
        case hvc
        case smc
    }

    public struct Console: Equatable {
        public var registers: PhysicalRange
        /// GIC interrupt identifier, when the node names one.
        public var interrupt: UInt32?
    }

    /// A device user space may drive: its registers and its interrupt.
    public struct Device: Equatable, Sendable {
        public var registers: PhysicalRange
        public var interrupt: UInt32
        public init(registers: PhysicalRange, interrupt: UInt32) {
            self.registers = registers
            self.interrupt = interrupt
        }
    }

    /// Up to `capacity` devices in order of their register address, with no allocation (the
    /// platform is read before the kernel has a heap).
    public struct DeviceList: Equatable, Sendable {
        public static let capacity = 32
        private var storage = InlineArray<32, Device>(repeating: Device(registers: PhysicalRange(start: PhysicalAddress(0), size: 0),
                                                                         interrupt: 0))
        public private(set) var count = 0

        public init() {}

        public subscript(index: Int) -> Device { storage[index] }

        /// Adds `device` in address order; false when the list is full.
        @discardableResult
        public mutating func insert(_ device: Device) -> Bool {
            guard count < Self.capacity else { return false }
            var slot = count
            while slot > 0 && storage[slot - 1].registers.start.value > device.registers.start.value {
                storage[slot] = storage[slot - 1]
                slot -= 1
            }
            storage[slot] = device
            count += 1
            return true
        }

        public static func == (left: DeviceList, right: DeviceList) -> Bool {
            guard left.count == right.count else { return false }
            for index in 0..<left.count where left[index] != right[index] { return false }
            return true
        }
    }

    public var console: Console?
    public var interruptController: InterruptController?
    public var timer: Timer?
    public var psciConduit: PSCIConduit?
    public var cpuCount = 0
    public var virtioMMIOCount = 0
    /// The virtio-mmio transports user-space drivers may use: those whose `reg` and
    /// `interrupts` read well (the kernel needs none of them, so a malformed one is left out,
    /// not a defect).
    public var virtioTransports = DeviceList()
    /// /chosen bootargs, without its terminator.
    public var bootArguments: DeviceTreeBytes?
    /// /chosen linux,initrd-start .. linux,initrd-end.
    public var initialRamdisk: PhysicalRange?

    public init() {}

    /// Interprets `tree`. Missing devices stay nil; a present but malformed node is a defect.
    public static func discover(in tree: DeviceTree) throws(PlatformDefect) -> Platform {
        var platform = Platform()
        let chosen = tree.node(atPath: "/chosen")
        if let chosen {
            platform.bootArguments = chosen.property("bootargs")?.string
            if let start = chosen.property("linux,initrd-start")?.u64,
               let end = chosen.property("linux,initrd-end")?.u64, end > start {
                platform.initialRamdisk = PhysicalRange(start: PhysicalAddress(start), size: end - start)
            }
        }
        platform.console = try findConsole(in: tree, chosen: chosen)
        platform.interruptController = try findInterruptController(in: tree)
        platform.timer = try findTimer(in: tree)
        platform.psciConduit = findPSCIConduit(in: tree)
        if let cpus = tree.node(atPath: "/cpus") {
            for cpu in cpus.children where cpu.hasDeviceType("cpu") && cpu.isEnabled { platform.cpuCount += 1 }
        }
        platform.virtioMMIOCount = tree.countNodes(compatibleWith: "virtio,mmio")
        platform.virtioTransports = findVirtioTransports(in: tree)
        return platform
    }

    /// The MPIDR affinity (first `reg` address) of each enabled CPU node under /cpus, in the
    /// tree's order; a node without a readable `reg` is skipped.
    public static func forEachCPU(in tree: DeviceTree, _ body: (UInt64) -> Void) {
        guard let cpus = tree.node(atPath: "/cpus") else { return }
        for cpu in cpus.children where cpu.hasDeviceType("cpu") && cpu.isEnabled {
            guard let registers = try? cpu.registers() else { continue }
            var iterator = registers.makeIterator()
            if let first = iterator.next() { body(first.start.value) }
        }
    }

    /// /chosen bootargs, without its terminator.
    public static func bootArguments(in tree: DeviceTree) -> DeviceTreeBytes? {
        tree.node(atPath: "/chosen")?.property("bootargs")?.string
    }

    /// The console's registers, trusting nothing else in the tree: the kernel needs a console
    /// before it can say what is wrong with the rest. Nil without a PL011 whose first `reg` entry
    /// is readable and of non-zero size.
    public static func consoleRegisters(in tree: DeviceTree) -> PhysicalRange? {
        guard let node = consoleNode(in: tree, chosen: tree.node(atPath: "/chosen")),
              let registers = try? node.firstRegister(), isUsableConsole(registers) else { return nil }
        return registers
    }

    /// A PL011's registers take 4 KiB; a larger window (up to 64 KiB is allowed) would give the
    /// console's driver other devices' registers.
    static func isUsableConsole(_ registers: PhysicalRange) -> Bool {
        registers.size > 0 && registers.size <= 0x1_0000 && isAddressable(registers)
    }

    /// The end of the physical addresses the kernel maps: the MMU's 44 bits (MMU.swift). RAM and
    /// device registers must lie below it, and a range must not wrap past it.
    public static let physicalAddressLimit: UInt64 = 1 << 44

    static func isAddressable(_ range: PhysicalRange) -> Bool {
        range.start.value <= physicalAddressLimit && range.size <= physicalAddressLimit - range.start.value
    }

    static func findConsole(in tree: DeviceTree, chosen: DeviceTreeNode?) throws(PlatformDefect) -> Console? {
        guard let node = consoleNode(in: tree, chosen: chosen) else { return nil }
        var registers = try registers(of: node).makeIterator()
        guard let first = registers.next(), isUsableConsole(first) else { return nil }
        return Console(registers: first, interrupt: try firstInterrupt(of: node, in: tree))
    }

    /// The UART named by /chosen stdout-path (options after ':' dropped; aliases followed) if it
    /// is a PL011, otherwise the first enabled PL011 in the tree.
    static func consoleNode(in tree: DeviceTree, chosen: DeviceTreeNode?) -> DeviceTreeNode? {
        var candidate: DeviceTreeNode?
        if let path = chosen?.property("stdout-path")?.string,
           let node = tree.node(atPathOrAlias: path.prefix(upTo: UInt8(ascii: ":"))),
           node.isCompatible(with: "arm,pl011"), node.isEnabled {
            candidate = node
        }
        if candidate == nil {
            tree.forEachNode { node in
                if node.isCompatible(with: "arm,pl011") && node.isEnabled { candidate = node; return false }
                return true
            }
        }
        return candidate
    }

    static func findInterruptController(in tree: DeviceTree) throws(PlatformDefect) -> InterruptController? {
        var kind = InterruptControllerKind.gicV3
        var node = tree.firstNode(compatibleWith: "arm,gic-v3")
        if node == nil {
            // Arrays would allocate; the three GICv2 compatibles in use are tried in turn.
            kind = .gicV2
            node = tree.firstNode(compatibleWith: "arm,cortex-a15-gic")
                ?? tree.firstNode(compatibleWith: "arm,gic-400")
                ?? tree.firstNode(compatibleWith: "arm,cortex-a9-gic")
        }
        guard let gic = node else { return nil }
        // GICv2: distributor, CPU interface. GICv3: distributor, first redistributor region.
        var registers = try registers(of: gic).makeIterator()
        guard let distributor = registers.next(), let second = registers.next() else {
            throw PlatformDefect(gic, .tooFewRegisterBlocks(needed: 2))
        }
        guard distributor.size > 0, second.size > 0 else { throw PlatformDefect(gic, .noUsableRegisters) }
        guard isAddressable(distributor) else { throw PlatformDefect(gic, .unaddressable(distributor)) }
        guard isAddressable(second) else { throw PlatformDefect(gic, .unaddressable(second)) }
        return InterruptController(kind: kind, distributor: distributor, cpuInterfaceOrRedistributor: second)
    }

    static func findTimer(in tree: DeviceTree) throws(PlatformDefect) -> Timer? {
        guard let node = tree.firstNode(compatibleWith: "arm,armv8-timer")
            ?? tree.firstNode(compatibleWith: "arm,armv7-timer") else { return nil }
        var identifiers = InlineArray<4, UInt32>(repeating: 0)
        var found = 0
        try forEachInterrupt(of: node, in: tree) { identifier in
            if found < 4 { identifiers[found] = identifier }
            found += 1
        }
        guard found >= 4 else { throw PlatformDefect(node, .tooFewInterrupts(needed: 4)) }
        return Timer(securePhysicalInterrupt: identifiers[0], physicalInterrupt: identifiers[1],
                     virtualInterrupt: identifiers[2], hypervisorInterrupt: identifiers[3])
    }

    /// The end of the physical addresses a transport's registers may lie below: the MMU's 44 bits
    /// (MMU.swift), which the kernel's linear map of them must reach.
    public static let transportAddressLimit = physicalAddressLimit

    /// Whether `range` touches RAM the tree describes (or the RAM cannot be read): device
    /// registers there would give a driver memory that is not its own.
    static func overlapsMemory(_ range: PhysicalRange, in tree: DeviceTree) -> Bool {
        var overlaps = false
        do {
            try tree.forEachMemoryRegion { region in
                if range.start.value < region.start.value &+ region.size && region.start.value < range.start.value + range.size {
                    overlaps = true
                }
            }
        } catch {
            return true
        }
        return overlaps
    }

    static func findVirtioTransports(in tree: DeviceTree) -> DeviceList {
        var transports = DeviceList()
        tree.forEachNode { node in
            // A transport is a few hundred bytes of registers; anything else is a broken node.
            guard node.isCompatible(with: "virtio,mmio"), node.isEnabled,
                  let registers = try? node.firstRegister(), registers.size > 0, registers.size <= 0x1000,
                  registers.start.value <= transportAddressLimit - registers.size,
                  !overlapsMemory(registers, in: tree),
                  let interrupt = try? firstInterrupt(of: node, in: tree) else { return true }
            return transports.insert(Device(registers: registers, interrupt: interrupt))
        }
        return transports
    }

    public static func findPSCIConduit(in tree: DeviceTree) -> PSCIConduit? {
        let node = tree.firstNode(compatibleWith: "arm,psci-1.0")
            ?? tree.firstNode(compatibleWith: "arm,psci-0.2")
            ?? tree.firstNode(compatibleWith: "arm,psci")
        guard let method = node?.property("method")?.string else { return nil }
        if method == DeviceTreeBytes("hvc") { return .hvc }
        if method == DeviceTreeBytes("smc") { return .smc }
        return nil
    }

    static func firstInterrupt(of node: DeviceTreeNode, in tree: DeviceTree) throws(PlatformDefect) -> UInt32? {
        var first: UInt32?
        try forEachInterrupt(of: node, in: tree) { identifier in
            if first == nil { first = identifier }
        }
        return first
    }

    /// Decodes `interrupts` with the GIC binding (#interrupt-cells = 3: type, number, flags) into
    /// GIC interrupt identifiers: SPI n is 32+n, PPI n is 16+n. Other controllers are skipped.
    static func forEachInterrupt(of node: DeviceTreeNode, in tree: DeviceTree,
                                 _ body: (UInt32) -> Void) throws(PlatformDefect) {
        guard let interrupts = node.property("interrupts") else { return }
        guard let phandle = node.interruptParent, let parent = tree.node(withPhandle: phandle) else { return }
        guard let cellCount = parent.property("#interrupt-cells")?.u32 else {
            throw PlatformDefect(parent, .missingProperty(DeviceTreeBytes("#interrupt-cells")))
        }
        guard cellCount == 3, parent.property("interrupt-controller") != nil else { return }
        guard interrupts.value.count % 12 == 0 else {
            throw PlatformDefect(node, .notWholeEntries(DeviceTreeBytes("interrupts"), cells: 3))
        }
        var cells = interrupts.cells.makeIterator()
        while let type = cells.next(), let number = cells.next(), cells.next() != nil {
            switch type {
            case 0 where number < 988: body(32 + number)
            case 1 where number < 16: body(16 + number)
            default: throw PlatformDefect(node, .unsupportedInterrupt(type: type, number: number))
            }
        }
    }

    /// `node`'s `reg`, its decoding problems as defects of `node`.
    static func registers(of node: DeviceTreeNode) throws(PlatformDefect) -> RegisterSequence {
        do {
            return try node.registers()
        } catch .malformedValue {
            let cells = Int(node.context.addressCells + node.context.sizeCells)
            throw PlatformDefect(node, .notWholeEntries(DeviceTreeBytes("reg"), cells: cells))
        } catch {
            throw PlatformDefect(node, .unreadable(DeviceTreeBytes("reg"), error))
        }
    }
}

// MARK: - Requirements

extension Platform {
    /// What the kernel cannot run without, beyond what `discover` checks: RAM that holds the
    /// kernel image, the device tree and the initial ramdisk; readable reservations; an
    /// interrupt controller and the generic timer (scheduling and timeouts need the tick).
    public func checkRequirements(in tree: DeviceTree, kernelImage: PhysicalRange,
                                  deviceTree: PhysicalRange) throws(PlatformDefect) {
        try Self.checkMemory(in: tree)
        try Self.checkPlacement(of: kernelImage, .kernelImage, in: tree)
        try Self.checkPlacement(of: deviceTree, .deviceTree, in: tree)
        if let initialRamdisk {
            try Self.checkPlacement(of: initialRamdisk, .initialRamdisk, in: tree)
            // Given to init as a memory object: it must hold nothing of the kernel's.
            if initialRamdisk.overlaps(kernelImage) {
                throw PlatformDefect(nil, .overlapping(.initialRamdisk, .kernelImage))
            }
            if initialRamdisk.overlaps(deviceTree) {
                throw PlatformDefect(nil, .overlapping(.initialRamdisk, .deviceTree))
            }
        }
        try Self.checkReservations(in: tree)
        guard interruptController != nil else { throw PlatformDefect(nil, .missing(.interruptController)) }
        guard timer != nil else { throw PlatformDefect(nil, .missing(.timer)) }
    }

    /// Every enabled memory node's `reg` must be readable, and RAM must not be empty. When it is,
    /// the first memory node without a usable region is the one to blame.
    static func checkMemory(in tree: DeviceTree) throws(PlatformDefect) {
        var empty: DeviceTreeNode?
        var usable = false
        for node in tree.root.children where node.hasDeviceType("memory") && node.isEnabled {
            var nodeUsable = false
            for region in try registers(of: node) where region.size > 0 {
                guard isAddressable(region) else { throw PlatformDefect(node, .unaddressable(region)) }
                nodeUsable = true
            }
            if !nodeUsable && empty == nil { empty = node }
            usable = usable || nodeUsable
        }
        guard usable else {
            if let empty { throw PlatformDefect(empty, .noUsableRegisters) }
            throw PlatformDefect(nil, .missing(.memory))
        }
    }

    /// `range` must lie in RAM: the kernel reaches it through the linear map, which covers RAM only.
    /// Every byte is: adjacent regions (NUMA nodes) may share it, but no hole may lie inside it.
    static func checkPlacement(of range: PhysicalRange, _ what: PlatformDefect.Placed,
                               in tree: DeviceTree) throws(PlatformDefect) {
        guard range.size > 0 else { return }
        guard isAddressable(range) else { throw PlatformDefect(nil, .outsideMemory(what, range)) }
        let end = range.start.value + range.size
        // Advanced to the end of the region that holds it, until past the range or in no region;
        // each step passes at least one region, so it ends.
        var covered = range.start.value
        var advanced = true
        while covered < end && advanced {
            advanced = false
            try? tree.forEachMemoryRegion { region in
                if region.contains(PhysicalAddress(covered)) && isAddressable(region) {
                    covered = region.start.value + region.size
                    advanced = true
                }
            }
        }
        guard covered >= end else { throw PlatformDefect(nil, .outsideMemory(what, range)) }
    }

    /// /reserved-memory children must be readable: an unreadable one would hand firmware memory
    /// to the frame allocator.
    static func checkReservations(in tree: DeviceTree) throws(PlatformDefect) {
        guard let reserved = tree.node(atPath: "/reserved-memory") else { return }
        for child in reserved.children where child.isEnabled { _ = try registers(of: child) }
    }
}

/// Why the kernel cannot run on a device tree, naming the node at fault when there is one.
public struct PlatformDefect: Error {
    public enum Requirement: Equatable, Sendable {
        case memory
        case interruptController
        case timer
    }

    public enum Placed: Equatable, Sendable {
        case kernelImage
        case deviceTree
        case initialRamdisk
    }

    public enum Problem: Equatable {
        /// No node of this kind at all.
        case missing(Requirement)
        /// A single-cell property the node needs is absent or not one cell.
        case missingProperty(DeviceTreeBytes)
        /// A property the parser cannot decode.
        case unreadable(DeviceTreeBytes, DeviceTreeError)
        /// A property whose length is not a whole number of `cells`-cell entries.
        case notWholeEntries(DeviceTreeBytes, cells: Int)
        /// `reg` absent, empty, or of size zero only.
        case noUsableRegisters
        case tooFewRegisterBlocks(needed: Int)
        /// Fewer interrupts routed to the GIC than the device raises.
        case tooFewInterrupts(needed: Int)
        /// An `interrupts` entry that is neither an SPI nor a PPI.
        case unsupportedInterrupt(type: UInt32, number: UInt32)
        /// A range the kernel must reach that the memory regions do not hold whole.
        case outsideMemory(Placed, PhysicalRange)
        /// RAM or registers that wrap or lie past `Platform.physicalAddressLimit`.
        case unaddressable(PhysicalRange)
        /// Two ranges the kernel needs apart that share bytes.
        case overlapping(Placed, Placed)
    }

    /// The node at fault, or nil when the problem is something missing from the whole tree.
    public let node: DeviceTreeNode?
    public let problem: Problem

    public init(_ node: DeviceTreeNode?, _ problem: Problem) {
        self.node = node
        self.problem = problem
    }
}

extension PlatformDefect: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) {
        node?.writePath(into: &output)
        switch problem {
        case .missing(.memory): output.write("no memory node (device_type \"memory\")")
        case .missing(.interruptController): output.write("no interrupt controller (GICv2 or GICv3)")
        case .missing(.timer): output.write("no generic timer (arm,armv8-timer)")
        case .missingProperty(let name):
            output.write(" has no usable ")
            output.write(bytes: name)
        case .unreadable(let name, let error):
            output.write(" ")
            output.write(bytes: name)
            output.write(": ")
            error.describe(into: &output)
        case .notWholeEntries(let name, let cells):
            output.write(" ")
            output.write(bytes: name)
            output.write(" is not a whole number of ")
            output.writeDecimal(UInt64(cells))
            output.write("-cell entries")
        case .noUsableRegisters: output.write(" has no usable reg")
        case .tooFewRegisterBlocks(let needed):
            output.write(" reg has fewer than ")
            output.writeDecimal(UInt64(needed))
            output.write(" register blocks")
        case .tooFewInterrupts(let needed):
            output.write(" has fewer than ")
            output.writeDecimal(UInt64(needed))
            output.write(" interrupts routed to the GIC")
        case .unsupportedInterrupt(let type, let number):
            output.write(" names interrupt type ")
            output.writeDecimal(UInt64(type))
            output.write(" number ")
            output.writeDecimal(UInt64(number))
            output.write(", neither an SPI nor a PPI")
        case .outsideMemory(let what, let range):
            switch what {
            case .kernelImage: output.write("no memory region holds the kernel image ")
            case .deviceTree: output.write("no memory region holds the device tree itself ")
            case .initialRamdisk: output.write("no memory region holds the initial ramdisk ")
            }
            output.writeHex(range.start.value)
            output.write(" - ")
            output.writeHex(range.start.value &+ range.size)
        case .unaddressable(let range):
            output.write(" reg ")
            output.writeHex(range.start.value)
            output.write(" size ")
            output.writeHex(range.size)
            output.write(" lies past the physical addresses the kernel maps (2^44)")
        case .overlapping(let first, let second):
            output.write(Self.name(of: first))
            output.write(" overlaps ")
            output.write(Self.name(of: second))
        }
    }

    static func name(of placed: Placed) -> StaticString {
        switch placed {
        case .kernelImage: return "the kernel image"
        case .deviceTree: return "the device tree"
        case .initialRamdisk: return "the initial ramdisk"
        }
    }
}

extension DeviceTreeNode {
    /// Writes the node's full path ("/soc/uart@1000"). Each level descends into the last child
    /// that begins at or before this node: a subtree's nodes lie between its own BEGIN_NODE and
    /// its next sibling's.
    public func writePath<Output: TextOutput>(into output: inout Output) {
        var current = tree.root
        guard current.offset != offset else { return output.write("/") }
        while current.offset != offset {
            var next: DeviceTreeNode?
            for child in current.children where child.offset <= offset { next = child }
            guard let child = next else { return }
            output.write("/")
            output.write(bytes: child.name)
            current = child
        }
    }
}

// MARK: - Memory

extension DeviceTree {
    /// Every `reg` entry of every enabled node with device_type "memory", in tree order.
    public func forEachMemoryRegion(_ body: (PhysicalRange) -> Void) throws(DeviceTreeError) {
        for node in root.children where node.hasDeviceType("memory") && node.isEnabled {
            for region in try node.registers() where region.size > 0 { body(region) }
        }
    }

    /// Ranges the kernel must not hand out: /memreserve/ entries and /reserved-memory children.
    public func forEachReservedRegion(_ body: (PhysicalRange) -> Void) throws(DeviceTreeError) {
        for reservation in memoryReservations where reservation.size > 0 { body(reservation) }
        guard let reserved = node(atPath: "/reserved-memory") else { return }
        for child in reserved.children where child.isEnabled {
            for region in try child.registers() where region.size > 0 { body(region) }
        }
    }
}
