// The system call ABI, one definition compiled into the kernel and into every user program;
// documented in docs/SYSCALLS.md (a host test keeps the two in step). A call puts its number in
// x8 and up to six arguments in x0-x5, then executes `svc #0`; it gets a `KernelError` status
// in x0 (0 = success) and up to two values in x1-x2. All other registers are preserved.

public enum SystemCallNumber: UInt64, CaseIterable {
    /// Does nothing and succeeds: the cost of entering and leaving the kernel.
    case null = 0
    /// x1 = counter ticks since boot, x2 = counter frequency in Hz.
    case clock = 1
    /// Writes bytes [x0, x0 + x1) of the caller's memory to the console; x1 = bytes written.
    case debugWrite = 2
    /// Ends the calling process with exit code x0. Does not return.
    case exit = 3
    /// Gives up the rest of the time slice.
    case yield = 4
    /// Sleeps for x0 nanoseconds.
    case sleep = 5
    /// x1 = the caller's process id, x2 = its parent's.
    case processID = 6
    /// x1 = the caller's thread id.
    case threadID = 7
    /// Starts the program named by bytes [x0, x0 + x1) from the initial ramdisk; x1 = its process id.
    case spawn = 8
    /// Waits for child x0 to end; x1 = exit code, x2 = `ExitReason`.
    case wait = 9
    /// Ends process x0 (a child of the caller).
    case kill = 10
    /// Maps x0 bytes of zeroed memory with `MemoryAccess` x1; x1 = its address.
    case map = 11
    /// Unmaps [x0, x0 + x1), which must be exactly what one `map` returned.
    case unmap = 12
    /// x1 = free physical frames, x2 = total physical frames.
    case memoryStatistics = 13
    /// x1 = live processes, x2 = the caller's mapped bytes.
    case processStatistics = 14
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

/// How a process ended, as `wait` reports it in x2.
public enum ExitReason: UInt64, Equatable {
    /// It called `exit`; x1 is its exit code.
    case exited = 0
    /// The kernel ended it for a fault; x1 is the ESR of the fault.
    case faulted = 1
    /// Another process ended it with `kill`.
    case killed = 2
}

/// Access for `map`: readable always; these bits add to it. Never writable and executable.
public struct MemoryAccess: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let write = MemoryAccess(rawValue: 1 << 0)
    public static let execute = MemoryAccess(rawValue: 1 << 1)
}

/// Where user programs live: the lower half of the address space, above the first page.
public enum UserSpace {
    public static let start: UInt64 = 0x1000
    public static let end: UInt64 = 0x0000_8000_0000_0000
    /// Initial stack of a program's first thread: 64 KiB below this address.
    public static let stackTop: UInt64 = 0x0000_7FFF_FFFF_0000
    public static let stackSize: UInt64 = 64 * 1024
    /// Where `map` places anonymous memory, growing upwards.
    public static let mapBase: UInt64 = 0x0000_1000_0000_0000
}
