// Power State Coordination Interface (Arm DEN 0022): power off, reset, starting a secondary CPU,
// turning the calling CPU off, and the firmware's version, through the conduit (HVC or SMC) that the device tree's /psci node names.

import AArch64

enum PSCI {
    enum Function: UInt64 {
        case version = 0x8400_0000
        case cpuOff = 0x8400_0002
        case systemOff = 0x8400_0008
        case systemReset = 0x8400_0009
        case cpuOn = 0xC400_0003 // SMC64: target MPIDR, entry point, context ID
    }

    /// CPU_ON's results (DEN 0022, 5.2.2), 0 being success.
    static func describe(_ status: Int32) -> StaticString {
        switch status {
        case 0: return "SUCCESS"
        case -1: return "NOT_SUPPORTED"
        case -2: return "INVALID_PARAMETERS"
        case -3: return "DENIED"
        case -4: return "ALREADY_ON"
        case -5: return "ON_PENDING"
        case -6: return "INTERNAL_FAILURE"
        case -7: return "NOT_PRESENT"
        case -8: return "DISABLED"
        case -9: return "INVALID_ADDRESS"
        default: return "unknown error"
        }
    }

    /// Set once at boot from the device tree, before any other core runs.
    nonisolated(unsafe) static var conduit: Platform.PSCIConduit?

    static func call(_ function: Function, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0) -> UInt64? {
        switch conduit {
        case .hvc: return aarch64_hvc_call(function.rawValue, a1, a2, a3)
        case .smc: return aarch64_smc_call(function.rawValue, a1, a2, a3)
        case nil: return nil
        }
    }

    /// Starts the CPU with affinity `target` at physical address `entry` (MMU off, at the EL the
    /// firmware chooses) with x0 = `context`: its status, or nil without PSCI.
    static func cpuOn(target: UInt64, entry: PhysicalAddress, context: UInt64) -> Int32? {
        guard let result = call(.cpuOn, target, entry.value, context) else { return nil }
        return Int32(truncatingIfNeeded: result)
    }

    /// (major, minor), or nil without PSCI or when the call is not supported (negative result).
    static var version: (major: UInt64, minor: UInt64)? {
        guard let result = call(.version), result >> 31 == 0 else { return nil }
        return (result >> 16, result & 0xFFFF)
    }

    /// Turns the calling CPU off; returns only if there is no PSCI or the firmware refused.
    static func cpuOff() { _ = call(.cpuOff) }

    /// Turns the machine off; returns only if there is no PSCI or the firmware refused.
    static func systemOff() { _ = call(.systemOff) }

    static func systemReset() { _ = call(.systemReset) }
}
