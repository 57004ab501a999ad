// The system call ABI, one definition for the kernel and (once it exists) userland; documented
// in docs/SYSCALLS.md. A call puts its number in x8 and up to six arguments in x0-x5, then
// executes `svc #0`; it gets a `KernelError` status in x0 (0 = success) and up to two values
// in x1-x2. All other registers are preserved.

public enum SystemCallNumber: UInt64, CaseIterable {
    /// Does nothing and succeeds: the cost of entering and leaving the kernel.
    case null = 0
    /// x1 = counter ticks since boot, x2 = counter frequency in Hz.
    case clock = 1
}

/// Every error a system call can return. Shared with userland; values never change meaning.
public enum KernelError: UInt64, Error, Equatable {
    case success = 0
    /// No system call has this number.
    case unknownSystemCall = 1
    case invalidArgument = 2
    case outOfMemory = 3
    /// A pointer or length does not lie inside the caller's address space.
    case badAddress = 4
    case invalidHandle = 5
    case accessDenied = 6
    case queueFull = 7
    case timedOut = 8
    case notFound = 9
}
