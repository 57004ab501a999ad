// Names for the CPU the kernel runs on, decoded from MIDR_EL1 (Arm ARM D23.2 "MIDR_EL1"), and
// the affinity fields of MPIDR_EL1 that identify a core.

public struct CPUIdentity: Equatable {
    public let mainID: UInt64

    public init(mainID: UInt64) { self.mainID = mainID }

    public var implementer: UInt8 { UInt8(truncatingIfNeeded: mainID >> 24) }
    public var variant: UInt8 { UInt8(truncatingIfNeeded: mainID >> 20) & 0xF }
    public var partNumber: UInt16 { UInt16(truncatingIfNeeded: mainID >> 4) & 0xFFF }
    public var revision: UInt8 { UInt8(truncatingIfNeeded: mainID) & 0xF }

    /// "Cortex-A72" and friends; nil for parts this table does not know.
    public var partName: StaticString? {
        switch (implementer, partNumber) {
        case (0x41, 0xD03): return "Cortex-A53"
        case (0x41, 0xD04): return "Cortex-A35"
        case (0x41, 0xD05): return "Cortex-A55"
        case (0x41, 0xD07): return "Cortex-A57"
        case (0x41, 0xD08): return "Cortex-A72"
        case (0x41, 0xD09): return "Cortex-A73"
        case (0x41, 0xD0A): return "Cortex-A75"
        case (0x41, 0xD0B): return "Cortex-A76"
        case (0x41, 0xD0C): return "Neoverse-N1"
        case (0x41, 0xD0D): return "Cortex-A77"
        case (0x41, 0xD40): return "Neoverse-V1"
        case (0x41, 0xD41): return "Cortex-A78"
        case (0x41, 0xD44): return "Cortex-X1"
        case (0x41, 0xD46): return "Cortex-A510"
        case (0x41, 0xD47): return "Cortex-A710"
        case (0x41, 0xD49): return "Neoverse-N2"
        case (0x41, 0xD4F): return "Neoverse-V2"
        // QEMU's "max" CPU reports implementer 0 and part 0x051 so that it is never taken for real silicon.
        case (0x00, 0x051): return "QEMU max"
        default: return nil
        }
    }

    public func describe<Output: TextOutput>(into output: inout Output) {
        if let name = partName {
            output.write(name)
        } else {
            output.write("CPU implementer ")
            output.writeHex(UInt64(implementer), digits: 2)
            output.write(" part ")
            output.writeHex(UInt64(partNumber), digits: 3)
        }
    }
}

/// MPIDR_EL1 affinity: the core's address in the cluster hierarchy, as PSCI and the GIC name it.
public struct CPUAffinity: Equatable {
    public let multiprocessorID: UInt64

    public init(multiprocessorID: UInt64) { self.multiprocessorID = multiprocessorID }

    /// Aff3:Aff2:Aff1:Aff0 without the MT/U flag bits, the form PSCI CPU_ON takes.
    public var affinity: UInt64 { multiprocessorID & 0xFF_00FF_FFFF }
    public var aff0: UInt8 { UInt8(truncatingIfNeeded: multiprocessorID) }
}
