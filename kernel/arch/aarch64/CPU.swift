// The running CPU: identity (MIDR, MPIDR), exception level, and stopping it.

import AArch64

enum CPU {
    static var identity: CPUIdentity { CPUIdentity(mainID: aarch64_read_midr()) }
    static var affinity: CPUAffinity { CPUAffinity(multiprocessorID: aarch64_read_mpidr()) }

    /// CurrentEL.EL, bits [3:2].
    static var exceptionLevel: UInt64 { (aarch64_read_current_el() >> 2) & 0x3 }

    /// Masks every interrupt and waits forever. Other cores are still parked in the firmware
    /// (PSCI), so stopping this one stops the machine.
    /// Waits for interrupts forever with them unmasked: the idle loop.
    static func idle() -> Never {
        aarch64_enable_interrupts()
        while true { aarch64_wfi() }
    }

    static func halt() -> Never {
        aarch64_mask_interrupts()
        while true { aarch64_wfe() }
    }
}
