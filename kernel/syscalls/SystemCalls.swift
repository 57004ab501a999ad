// System call dispatch: `svc #0` arrives here with the caller's registers in the exception frame.
// The number is in x8, arguments in x0-x5; the status goes back in x0 and values in x1-x2
// (kernel/core/SystemCallABI.swift, docs/SYSCALLS.md).

enum SystemCalls {
    nonisolated(unsafe) static var count: UInt64 = 0

    static func dispatch(_ frame: ExceptionFrame) {
        count += 1
        guard let number = SystemCallNumber(rawValue: frame.register(8)) else {
            frame.setRegister(0, KernelError.unknownSystemCall.rawValue)
            return
        }
        switch number {
        case .null:
            frame.setRegister(0, KernelError.success.rawValue)
        case .clock:
            frame.setRegister(1, Clock.uptime)
            frame.setRegister(2, Clock.frequency)
            frame.setRegister(0, KernelError.success.rawValue)
        }
    }
}
