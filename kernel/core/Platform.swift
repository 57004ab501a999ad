// What the kernel needs to know about the machine, read from the device tree: RAM, reserved
// memory, console, interrupt controller, timer, PSCI, CPUs, boot arguments and initial ramdisk.
// Pure interpretation of `DeviceTree`; the arch layer turns it into running devices.

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

    public var console: Console?
    public var interruptController: InterruptController?
    public var timer: Timer?
    public var psciConduit: PSCIConduit?
    public var cpuCount = 0
    public var virtioMMIOCount = 0
    /// /chosen bootargs, without its terminator.
    public var bootArguments: DeviceTreeBytes?
    /// /chosen linux,initrd-start .. linux,initrd-end.
    public var initialRamdisk: PhysicalRange?

    public init() {}

    /// Interprets `tree`. Missing devices stay nil; a present but malformed node is an error.
    public static func discover(in tree: DeviceTree) throws(DeviceTreeError) -> Platform {
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
        return platform
    }

    /// The UART named by /chosen stdout-path (options after ':' dropped; aliases followed) if it
    /// is a PL011, otherwise the first enabled PL011 in the tree.
    static func findConsole(in tree: DeviceTree, chosen: DeviceTreeNode?) throws(DeviceTreeError) -> Console? {
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
        guard let node = candidate, let registers = try node.firstRegister() else { return nil }
        return Console(registers: registers, interrupt: try firstInterrupt(of: node, in: tree))
    }

    static func findInterruptController(in tree: DeviceTree) throws(DeviceTreeError) -> InterruptController? {
        if let gic = tree.firstNode(compatibleWith: "arm,gic-v3") {
            var registers = try gic.registers().makeIterator()
            guard let distributor = registers.next(), let redistributor = registers.next() else {
                throw .malformedValue
            }
            return InterruptController(kind: .gicV3, distributor: distributor, cpuInterfaceOrRedistributor: redistributor)
        }
        // Arrays would allocate; the three GICv2 compatibles in use are tried in turn.
        let gicV2 = tree.firstNode(compatibleWith: "arm,cortex-a15-gic")
            ?? tree.firstNode(compatibleWith: "arm,gic-400")
            ?? tree.firstNode(compatibleWith: "arm,cortex-a9-gic")
        if let gic = gicV2 {
            var registers = try gic.registers().makeIterator()
            guard let distributor = registers.next(), let cpuInterface = registers.next() else {
                throw .malformedValue
            }
            return InterruptController(kind: .gicV2, distributor: distributor, cpuInterfaceOrRedistributor: cpuInterface)
        }
        return nil
    }

    static func findTimer(in tree: DeviceTree) throws(DeviceTreeError) -> Timer? {
        guard let node = tree.firstNode(compatibleWith: "arm,armv8-timer")
            ?? tree.firstNode(compatibleWith: "arm,armv7-timer") else { return nil }
        var identifiers = InlineArray<4, UInt32>(repeating: 0)
        var found = 0
        try forEachInterrupt(of: node, in: tree) { identifier in
            if found < 4 { identifiers[found] = identifier }
            found += 1
        }
        guard found >= 4 else { throw .malformedValue }
        return Timer(securePhysicalInterrupt: identifiers[0], physicalInterrupt: identifiers[1],
                     virtualInterrupt: identifiers[2], hypervisorInterrupt: identifiers[3])
    }

    static func findPSCIConduit(in tree: DeviceTree) -> PSCIConduit? {
        let node = tree.firstNode(compatibleWith: "arm,psci-1.0")
            ?? tree.firstNode(compatibleWith: "arm,psci-0.2")
            ?? tree.firstNode(compatibleWith: "arm,psci")
        guard let method = node?.property("method")?.string else { return nil }
        if method == DeviceTreeBytes("hvc") { return .hvc }
        if method == DeviceTreeBytes("smc") { return .smc }
        return nil
    }

    static func firstInterrupt(of node: DeviceTreeNode, in tree: DeviceTree) throws(DeviceTreeError) -> UInt32? {
        var first: UInt32?
        try forEachInterrupt(of: node, in: tree) { identifier in
            if first == nil { first = identifier }
        }
        return first
    }

    /// Decodes `interrupts` with the GIC binding (#interrupt-cells = 3: type, number, flags) into
    /// GIC interrupt identifiers: SPI n is 32+n, PPI n is 16+n. Other controllers are skipped.
    static func forEachInterrupt(of node: DeviceTreeNode, in tree: DeviceTree,
                                 _ body: (UInt32) -> Void) throws(DeviceTreeError) {
        guard let interrupts = node.property("interrupts") else { return }
        guard let phandle = node.interruptParent, let parent = tree.node(withPhandle: phandle) else { return }
        guard let cellCount = parent.property("#interrupt-cells")?.u32 else { throw .malformedValue }
        guard cellCount == 3, parent.property("interrupt-controller") != nil else { return }
        guard interrupts.value.count % 12 == 0 else { throw .malformedValue }
        var cells = interrupts.cells.makeIterator()
        while let type = cells.next(), let number = cells.next(), cells.next() != nil {
            switch type {
            case 0 where number < 988: body(32 + number)
            case 1 where number < 16: body(16 + number)
            default: throw .malformedValue
            }
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
