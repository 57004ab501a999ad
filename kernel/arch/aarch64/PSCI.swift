// Power State Coordination Interface (Arm DEN 0022): power off, reset and the firmware's
// version, through the conduit (HVC or SMC) that the device tree's /psci node names.

import AArch64

enum PSCI {
    enum Function: UInt64 {
        case version = 0x8400_0000
        case systemOff = 0x8400_0008
        case systemReset = 0x8400_0009
    }

    /// Set once at boot from the device tree, before any other core runs.
    nonisolated(unsafe) static var conduit: Platform.PSCIConduit?

    static func call(_ function: Function) -> UInt64? {
        switch conduit {
        case .hvc: return aarch64_hvc_call(function.rawValue, 0, 0, 0)
        case .smc: return aarch64_smc_call(function.rawValue, 0, 0, 0)
        case nil: return nil
        }
    }

    /// (major, minor), or nil without PSCI or when the call is not supported (negative result).
    static var version: (major: UInt64, minor: UInt64)? {
        guard let result = call(.version), result >> 31 == 0 else { return nil }
        return (result >> 16, result & 0xFFFF)
    }

    /// Turns the machine off; returns only if there is no PSCI or the firmware refused.
    static func systemOff() { _ = call(.systemOff) }

    static func systemReset() { _ = call(.systemReset) }
}
