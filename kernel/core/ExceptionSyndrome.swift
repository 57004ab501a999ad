// Decoding of ESR_ELx, the exception syndrome register (Arm ARM D24.2.40 "ESR_EL1"): the
// exception class says what happened, the ISS adds detail such as the fault status of an abort.

public struct ExceptionSyndrome: Equatable {
    public let value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public enum ExceptionClass: UInt8 {
        case unknown = 0x00
        case trappedWaitInstruction = 0x01
        case trappedFloatingPoint = 0x07
        case illegalExecutionState = 0x0E
        case supervisorCall = 0x15
        case hypervisorCall = 0x16
        case secureMonitorCall = 0x17
        case trappedSystemRegister = 0x18
        case trappedSVE = 0x19
        case instructionAbortLowerLevel = 0x20
        case instructionAbortSameLevel = 0x21
        case programCounterAlignment = 0x22
        case dataAbortLowerLevel = 0x24
        case dataAbortSameLevel = 0x25
        case stackPointerAlignment = 0x26
        case floatingPointException = 0x2C
        case systemError = 0x2F
        case breakpointLowerLevel = 0x30
        case breakpointSameLevel = 0x31
        case softwareStepLowerLevel = 0x32
        case softwareStepSameLevel = 0x33
        case watchpointLowerLevel = 0x34
        case watchpointSameLevel = 0x35
        case breakInstruction = 0x3C

        public var name: StaticString {
            switch self {
            case .unknown: return "unknown reason (undefined instruction)"
            case .trappedWaitInstruction: return "trapped WFI/WFE"
            case .trappedFloatingPoint: return "trapped FP/SIMD access"
            case .illegalExecutionState: return "illegal execution state"
            case .supervisorCall: return "SVC"
            case .hypervisorCall: return "HVC"
            case .secureMonitorCall: return "SMC"
            case .trappedSystemRegister: return "trapped system register access"
            case .trappedSVE: return "trapped SVE access"
            case .instructionAbortLowerLevel: return "instruction abort from a lower level"
            case .instructionAbortSameLevel: return "instruction abort"
            case .programCounterAlignment: return "PC alignment fault"
            case .dataAbortLowerLevel: return "data abort from a lower level"
            case .dataAbortSameLevel: return "data abort"
            case .stackPointerAlignment: return "SP alignment fault"
            case .floatingPointException: return "floating-point exception"
            case .systemError: return "SError"
            case .breakpointLowerLevel, .breakpointSameLevel: return "breakpoint"
            case .softwareStepLowerLevel, .softwareStepSameLevel: return "software step"
            case .watchpointLowerLevel, .watchpointSameLevel: return "watchpoint"
            case .breakInstruction: return "BRK instruction"
            }
        }
    }

    public var exceptionClassValue: UInt8 { UInt8(truncatingIfNeeded: value >> 26) & 0x3F }
    public var exceptionClass: ExceptionClass? { ExceptionClass(rawValue: exceptionClassValue) }
    /// Whether the class is `kind`: a compare of the raw field, where `exceptionClass` would make
    /// the enum from it (a call) first. For the exception paths.
    @inline(__always)
    public func isClass(_ kind: ExceptionClass) -> Bool { exceptionClassValue == kind.rawValue }
    public var instructionSpecificSyndrome: UInt32 { UInt32(truncatingIfNeeded: value) & 0x01FF_FFFF }

    public var isAbort: Bool {
        switch exceptionClass {
        case .instructionAbortLowerLevel, .instructionAbortSameLevel,
             .dataAbortLowerLevel, .dataAbortSameLevel: return true
        default: return false
        }
    }

    /// For data aborts: the access was a write (ISS.WnR).
    public var isWrite: Bool { instructionSpecificSyndrome & (1 << 6) != 0 }

    /// The immediate of SVC, HVC, SMC and BRK.
    public var immediate: UInt16 { UInt16(truncatingIfNeeded: instructionSpecificSyndrome) }

    public enum FaultKind: Equatable {
        case addressSize(level: Int)
        case translation(level: Int)
        case accessFlag(level: Int)
        case permission(level: Int)
        case synchronousExternal
        case alignment
        case tlbConflict
        case other(UInt8)

        public func describe<Output: TextOutput>(into output: inout Output) {
            func withLevel(_ name: StaticString, _ level: Int) {
                output.write(name)
                output.write(", level ")
                output.writeDecimal(UInt64(level))
            }
            switch self {
            case .addressSize(let level): withLevel("address size fault", level)
            case .translation(let level): withLevel("translation fault", level)
            case .accessFlag(let level): withLevel("access flag fault", level)
            case .permission(let level): withLevel("permission fault", level)
            case .synchronousExternal: output.write("synchronous external abort")
            case .alignment: output.write("alignment fault")
            case .tlbConflict: output.write("TLB conflict")
            case .other(let code):
                output.write("fault status ")
                output.writeHex(UInt64(code), digits: 2)
            }
        }
    }

    /// The fault status code (DFSC/IFSC) of an abort.
    public var faultKind: FaultKind? {
        guard isAbort else { return nil }
        let code = UInt8(truncatingIfNeeded: instructionSpecificSyndrome) & 0x3F
        let level = Int(code & 0x3)
        switch code >> 2 {
        case 0b0000: return .addressSize(level: level)
        case 0b0001: return .translation(level: level)
        case 0b0010: return .accessFlag(level: level)
        case 0b0011: return .permission(level: level)
        default: break
        }
        switch code {
        case 0b010000: return .synchronousExternal
        case 0b100001: return .alignment
        case 0b110000: return .tlbConflict
        default: return .other(code)
        }
    }

    /// "data abort (translation fault, level 3, write)" or "BRK instruction (#0x1)".
    public func describe<Output: TextOutput>(into output: inout Output) {
        guard let exceptionClass else {
            output.write("exception class ")
            output.writeHex(UInt64(exceptionClassValue), digits: 2)
            return
        }
        output.write(exceptionClass.name)
        if let fault = faultKind {
            output.write(" (")
            fault.describe(into: &output)
            if exceptionClass == .dataAbortLowerLevel || exceptionClass == .dataAbortSameLevel {
                output.write(isWrite ? ", write" : ", read")
            }
            output.write(")")
        }
        switch exceptionClass {
        case .supervisorCall, .hypervisorCall, .secureMonitorCall, .breakInstruction:
            output.write(" (#")
            output.writeHex(UInt64(immediate), digits: 1)
            output.write(")")
        default: break
        }
    }
}
