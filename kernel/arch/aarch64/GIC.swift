// Arm Generic Interrupt Controller, version 2 (IHI 0048) and version 3 (IHI 0069), as the device
// tree describes it. Both are driven through the same small interface: start, enable/disable
// one interrupt, set its priority, acknowledge, end of interrupt, and send a software-generated
// interrupt to this CPU. Interrupt identifiers: SGIs 0-15, PPIs 16-31, SPIs 32-1019; 1020-1023
// are special (1023 = spurious).

import AArch64
import _Volatile

/// A device register block reached through the physical window.
struct RegisterBlock {
    let base: PhysicalAddress

    /// Wrapping: a block lies inside the physical window, so its registers' addresses cannot
    /// overflow, and the interrupt path reads and writes some on every interrupt.
    private func address(_ offset: Int) -> UInt { UInt(PhysicalWindow.virtualAddress(of: base)) &+ UInt(bitPattern: offset) }

    func read32(_ offset: Int) -> UInt32 { VolatileMappedRegister<UInt32>(unsafeBitPattern: address(offset)).load() }
    func write32(_ offset: Int, _ value: UInt32) { VolatileMappedRegister<UInt32>(unsafeBitPattern: address(offset)).store(value) }
    func read64(_ offset: Int) -> UInt64 { VolatileMappedRegister<UInt64>(unsafeBitPattern: address(offset)).load() }
    func write64(_ offset: Int, _ value: UInt64) { VolatileMappedRegister<UInt64>(unsafeBitPattern: address(offset)).store(value) }
    func write8(_ offset: Int, _ value: UInt8) { VolatileMappedRegister<UInt8>(unsafeBitPattern: address(offset)).store(value) }
    func offset(by bytes: Int) -> RegisterBlock { RegisterBlock(base: PhysicalAddress(base.value + UInt64(bytes))) }
}

/// Distributor registers common to both versions (offsets from GICD_base).
enum Distributor {
    static let control = 0x000
    static let type = 0x004
    static let group = 0x080
    static let setEnable = 0x100
    static let clearEnable = 0x180
    static let clearPending = 0x280
    static let priority = 0x400
    static let targets = 0x800        // GICv2 only
    static let configuration = 0xC00
    static let softwareInterrupt = 0xF00 // GICv2 only
    static let route = 0x6000         // GICv3 only, 64-bit per SPI
}

/// The default priority for every interrupt; lower numbers are more urgent.
let defaultInterruptPriority: UInt8 = 0xA0
/// Every priority is let through (priority mask).
let priorityMaskAllowAll: UInt32 = 0xF0

struct GICv2 {
    let distributor: RegisterBlock
    let cpuInterface: RegisterBlock

    enum CPUInterface {
        static let control = 0x000
        static let priorityMask = 0x004
        static let binaryPoint = 0x008
        static let acknowledge = 0x00C
        static let endOfInterrupt = 0x010
    }

    /// Number of interrupt identifiers the distributor implements (GICD_TYPER.ITLinesNumber).
    var lineCount: Int { min(32 * (Int(distributor.read32(Distributor.type) & 0x1F) + 1), 1020) }

    func start() {
        distributor.write32(Distributor.control, 0)
        // ITARGETSR0 is banked per CPU and reads as this CPU's own target bit.
        let ownTarget = UInt8(truncatingIfNeeded: distributor.read32(Distributor.targets))
        for word in 0..<(lineCount / 32) {
            distributor.write32(Distributor.clearEnable + 4 * word, 0xFFFF_FFFF)
            distributor.write32(Distributor.clearPending + 4 * word, 0xFFFF_FFFF)
        }
        for id in 0..<lineCount {
            distributor.write8(Distributor.priority + id, defaultInterruptPriority)
            if id >= 32 { distributor.write8(Distributor.targets + id, ownTarget) }
        }
        distributor.write32(Distributor.control, 1)
        startCPUInterface()
    }

    /// This CPU's own part: the banked SGI and PPI enables and priorities, and its CPU interface.
    /// The boot CPU's `start` ends with it; a secondary CPU runs only this.
    func startCPUInterface() {
        distributor.write32(Distributor.clearEnable, 0xFFFF_FFFF)
        distributor.write32(Distributor.clearPending, 0xFFFF_FFFF)
        for id in 0..<32 { distributor.write8(Distributor.priority + id, defaultInterruptPriority) }
        cpuInterface.write32(CPUInterface.priorityMask, priorityMaskAllowAll)
        cpuInterface.write32(CPUInterface.binaryPoint, 0)
        cpuInterface.write32(CPUInterface.control, 1)
    }

    func setEnabled(_ id: UInt32, _ enabled: Bool) {
        let register = (enabled ? Distributor.setEnable : Distributor.clearEnable) + 4 * Int(id / 32)
        distributor.write32(register, 1 << (id % 32))
    }

    func setPriority(_ id: UInt32, _ priority: UInt8) {
        distributor.write8(Distributor.priority + Int(id), priority)
    }

    /// GICC_IAR; the whole value must be written back to GICC_EOIR (it carries the source CPU of an SGI).
    func acknowledge() -> UInt32 { cpuInterface.read32(CPUInterface.acknowledge) }

    func endOfInterrupt(_ acknowledged: UInt32) { cpuInterface.write32(CPUInterface.endOfInterrupt, acknowledged) }

    func sendToSelf(_ id: UInt32) {
        // TargetListFilter 0b10: deliver to the requesting CPU only.
        aarch64_dsb_ish()
        distributor.write32(Distributor.softwareInterrupt, 0b10 << 24 | (id & 0xF))
    }

    /// The calling CPU's bit in an SGI target list: ITARGETSR0 is banked and reads as it.
    var ownTargetBit: UInt8 { UInt8(truncatingIfNeeded: distributor.read32(Distributor.targets)) }

    /// SGI `id` to the CPU interfaces in `targets` (TargetListFilter 0b00: the list as given).
    func send(_ id: UInt32, targets: UInt8) {
        aarch64_dsb_ish()
        distributor.write32(Distributor.softwareInterrupt, UInt32(targets) << 16 | (id & 0xF))
    }
}

struct GICv3 {
    let distributor: RegisterBlock
    /// This CPU's redistributor: RD_base; the SGI_base frame follows 64 KiB later.
    let redistributor: RegisterBlock
    var sgiFrame: RegisterBlock { redistributor.offset(by: 0x10000) }

    enum Redistributor {
        static let type = 0x0008
        static let waker = 0x0014
    }

    static let registerWritePending: UInt32 = 1 << 31
    static let affinityRouting: UInt32 = 1 << 4
    static let enableGroup1: UInt32 = 1 << 1

    /// The redistributor whose GICR_TYPER affinity matches `affinity` (MPIDR Aff3.Aff2.Aff1.Aff0),
    /// scanning frames until the one marked Last.
    static func findRedistributor(in region: PhysicalRange, affinity: CPUAffinity) -> RegisterBlock? {
        let mpidr = affinity.multiprocessorID
        let wanted = UInt64((mpidr >> 32) & 0xFF) << 24 | (mpidr & 0xFF_FFFF)
        var offset: UInt64 = 0
        while offset + 0x20000 <= region.size {
            let frame = RegisterBlock(base: PhysicalAddress(region.start.value + offset))
            let type = frame.read64(Redistributor.type)
            if type >> 32 == wanted { return frame }
            if type & (1 << 4) != 0 { return nil } // Last
            offset += type & (1 << 1) != 0 ? 0x40000 : 0x20000 // VLPIS adds two frames
        }
        return nil
    }

    var lineCount: Int { min(32 * (Int(distributor.read32(Distributor.type) & 0x1F) + 1), 1020) }

    private func waitForDistributor() {
        while distributor.read32(Distributor.control) & Self.registerWritePending != 0 {}
    }

    func start(affinity: CPUAffinity) {
        distributor.write32(Distributor.control, 0)
        waitForDistributor()
        let mpidr = affinity.multiprocessorID
        let route = (mpidr & 0xFF_0000_0000) | (mpidr & 0xFF_FFFF)
        for word in 1..<(lineCount / 32) {
            distributor.write32(Distributor.group + 4 * word, 0xFFFF_FFFF)
            distributor.write32(Distributor.clearEnable + 4 * word, 0xFFFF_FFFF)
            distributor.write32(Distributor.clearPending + 4 * word, 0xFFFF_FFFF)
        }
        for id in 32..<lineCount {
            distributor.write8(Distributor.priority + id, defaultInterruptPriority)
            distributor.write64(Distributor.route + 8 * id, route)
        }
        distributor.write32(Distributor.control, Self.affinityRouting | Self.enableGroup1)
        waitForDistributor()
        startRedistributor()
    }

    /// This CPU's own part: its redistributor (SGIs and PPIs) and its ICC system registers. The
    /// boot CPU's `start` ends with it; a secondary CPU runs only this, on its own redistributor.
    func startRedistributor() {
        // Wake this CPU's redistributor: clear ProcessorSleep, wait for ChildrenAsleep to clear.
        redistributor.write32(Redistributor.waker, redistributor.read32(Redistributor.waker) & ~(1 << 1))
        while redistributor.read32(Redistributor.waker) & (1 << 2) != 0 {}
        sgiFrame.write32(Distributor.group, 0xFFFF_FFFF)
        sgiFrame.write32(Distributor.clearEnable, 0xFFFF_FFFF)
        sgiFrame.write32(Distributor.clearPending, 0xFFFF_FFFF)
        for id in 0..<32 { sgiFrame.write8(Distributor.priority + id, defaultInterruptPriority) }

        aarch64_write_icc_sre(aarch64_read_icc_sre() | 1)
        aarch64_isb()
        aarch64_write_icc_pmr(UInt64(priorityMaskAllowAll))
        aarch64_write_icc_bpr1(0)
        aarch64_write_icc_ctlr(0)
        aarch64_write_icc_igrpen1(1)
        aarch64_isb()
    }

    func setEnabled(_ id: UInt32, _ enabled: Bool) {
        let register = (enabled ? Distributor.setEnable : Distributor.clearEnable) + 4 * Int(id / 32)
        if id < 32 {
            sgiFrame.write32(register, 1 << (id % 32))
        } else {
            distributor.write32(register, 1 << (id % 32))
        }
    }

    func setPriority(_ id: UInt32, _ priority: UInt8) {
        if id < 32 {
            sgiFrame.write8(Distributor.priority + Int(id), priority)
        } else {
            distributor.write8(Distributor.priority + Int(id), priority)
        }
    }

    func acknowledge() -> UInt32 { UInt32(truncatingIfNeeded: aarch64_read_icc_iar1()) & 0xFF_FFFF }

    func endOfInterrupt(_ acknowledged: UInt32) { aarch64_write_icc_eoir1(UInt64(acknowledged)) }

    /// SGI `id` to the CPU whose MPIDR is in `affinity` (ICC_SGI1R_EL1: its Aff3.Aff2.Aff1 and
    /// its Aff0 as a bit of the target list; QEMU's Aff0 values are below 16).
    func send(_ id: UInt32, to affinity: CPUAffinity) {
        let mpidr = affinity.multiprocessorID
        var value = UInt64(id & 0xF) << 24 | UInt64(1) << (mpidr & 0xF)  // INTID, TargetList bit Aff0
        value |= (mpidr >> 8 & 0xFF) << 16                               // Aff1
        value |= (mpidr >> 16 & 0xFF) << 32                              // Aff2
        value |= (mpidr >> 32 & 0xFF) << 48                              // Aff3
        aarch64_dsb_ish()
        aarch64_write_icc_sgi1r(value)
        aarch64_isb()
    }
}

/// The interrupt controller in use, whichever version the device tree named.
enum InterruptControllerDriver {
    case v2(GICv2)
    case v3(GICv3)

    static func make(_ description: Platform.InterruptController, affinity: CPUAffinity) -> InterruptControllerDriver? {
        switch description.kind {
        case .gicV2:
            return .v2(GICv2(distributor: RegisterBlock(base: description.distributor.start),
                             cpuInterface: RegisterBlock(base: description.cpuInterfaceOrRedistributor.start)))
        case .gicV3:
            guard let redistributor = GICv3.findRedistributor(in: description.cpuInterfaceOrRedistributor, affinity: affinity) else {
                return nil
            }
            return .v3(GICv3(distributor: RegisterBlock(base: description.distributor.start), redistributor: redistributor))
        }
    }

    /// The driver as the calling CPU uses it: the same registers for GICv2 (the CPU interface
    /// and the SGI and PPI registers are banked per CPU), its own redistributor for GICv3.
    func forCPU(redistributor: PhysicalAddress) -> InterruptControllerDriver {
        switch self {
        case .v2: return self
        case .v3(let gic): return .v3(GICv3(distributor: gic.distributor, redistributor: RegisterBlock(base: redistributor)))
        }
    }

    /// A secondary CPU's share of `start`: its CPU interface (GICv2) or redistributor (GICv3).
    func startThisCPU() {
        switch self {
        case .v2(let gic): gic.startCPUInterface()
        case .v3(let gic): gic.startRedistributor()
        }
    }

    var version: Int {
        switch self {
        case .v2: return 2
        case .v3: return 3
        }
    }

    var lineCount: Int {
        switch self {
        case .v2(let gic): return gic.lineCount
        case .v3(let gic): return gic.lineCount
        }
    }

    func start() {
        switch self {
        case .v2(let gic): gic.start()
        case .v3(let gic): gic.start(affinity: CPU.affinity)
        }
    }

    func setEnabled(_ id: UInt32, _ enabled: Bool) {
        switch self {
        case .v2(let gic): gic.setEnabled(id, enabled)
        case .v3(let gic): gic.setEnabled(id, enabled)
        }
    }

    func setPriority(_ id: UInt32, _ priority: UInt8) {
        switch self {
        case .v2(let gic): gic.setPriority(id, priority)
        case .v3(let gic): gic.setPriority(id, priority)
        }
    }

    func acknowledge() -> UInt32 {
        switch self {
        case .v2(let gic): return gic.acknowledge()
        case .v3(let gic): return gic.acknowledge()
        }
    }

    func endOfInterrupt(_ acknowledged: UInt32) {
        switch self {
        case .v2(let gic): gic.endOfInterrupt(acknowledged)
        case .v3(let gic): gic.endOfInterrupt(acknowledged)
        }
    }

    func sendToSelf(_ id: UInt32) {
        switch self {
        case .v2(let gic): gic.sendToSelf(id)
        case .v3(let gic): gic.send(id, to: CPU.affinity)
        }
    }

    /// How other CPUs address an SGI to the calling CPU: its target-list bit (GICv2) or its MPIDR
    /// (GICv3). Kept in its per-CPU block for `send(_:toCPUAddressedBy:)`.
    var ownSGIAddress: UInt64 {
        switch self {
        case .v2(let gic): return UInt64(gic.ownTargetBit)
        case .v3: return CPU.affinity.multiprocessorID
        }
    }

    /// SGI `id` to the CPU whose `ownSGIAddress` is `address`.
    func send(_ id: UInt32, toCPUAddressedBy address: UInt64) {
        switch self {
        case .v2(let gic): gic.send(id, targets: UInt8(truncatingIfNeeded: address))
        case .v3(let gic): gic.send(id, to: CPUAffinity(multiprocessorID: address))
        }
    }
}
