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
    /// Starts the program named by bytes [x0, x0 + x1) from the initial ramdisk with start argument
    /// x2, moving handle x3 (0: none) to it; x1 = its process id.
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
    /// x1 = a handle to a new port with every right.
    case portCreate = 15
    /// x1 = a handle to a new notification with every right.
    case notificationCreate = 16
    /// Closes handle x0.
    case handleClose = 17
    /// x1 = a new handle to the object of handle x0 with `Rights` x1 (a subset of x0's).
    case handleDuplicate = 18
    /// Queues the `IPCMessage` at x0 on port x1 and returns at once; its handles move with it.
    case send = 19
    /// Takes the next message from port x0 into the `IPCMessage` at x1, waiting up to x2
    /// nanoseconds (0: not at all, `UInt64.max`: for ever).
    case receive = 20
    /// Sends the `IPCMessage` at x1 to port x0 with a one-time reply handle and waits for the
    /// reply, which overwrites the message.
    case call = 21
    /// Answers a call: reply handle x0, `IPCMessage` at x1. The reply handle is used up.
    case reply = 22
    /// Sets bits x1 of notification x0.
    case notificationSignal = 23
    /// Waits up to x1 nanoseconds for notification x0 to have bits set; x1 = the bits, now cleared.
    case notificationWait = 24
    /// x1 = a handle to a new zeroed memory object of x0 bytes (rounded up to pages, at most 1 MiB).
    case memoryCreate = 25
    /// Maps memory object x0 with `MemoryAccess` x1 (never executable); x1 = its address.
    case memoryMap = 26
    /// Waits up to x2 nanoseconds until one of the x1 (1-8) ports and notifications whose handles
    /// are at x0 is ready (a message queued or the port closed; bits set); x1 = its index.
    case waitAny = 27
    /// Starts a thread in the calling process at x0 with SP = x1 (16-byte aligned, memory the
    /// caller mapped) and x0 = x2, x1 = x3; x1 = its thread id.
    case threadCreate = 28
    /// Ends the calling thread; when it is the process's last, the process exits with code x0.
    case threadExit = 29
    /// x1 = kernel heap blocks in use (kernel objects and their storage), x2 = pages the kernel
    /// heap holds: with `memoryStatistics`, every frame is accounted for.
    case kernelStatistics = 30
    /// Init only (the root of device access): opens device x0 (0 = the console UART) for a
    /// userspace driver; x1 = a handle to a memory object of its registers, x2 = its interrupt.
    case deviceOpen = 31
    /// Init only: device interrupt x0 sets bit 0 of notification x1 (needs signal) and is masked
    /// until `interruptAcknowledge`.
    case interruptBind = 32
    /// Unmasks device interrupt x0 once the driver has handled it (the binder only).
    case interruptAcknowledge = 33
    /// A server's loop in one call: answers reply handle x0 (0: nothing to answer) with the
    /// `IPCMessage` at x1, then takes the next message from port x2 into the same buffer,
    /// waiting up to x3 nanoseconds. A caller that died meanwhile is not an error.
    case replyReceive = 34
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
    /// The other side is gone: the port has no receiver left, or the server died before replying.
    case peerClosed = 10
    /// Nothing to take and the caller asked not to wait.
    case wouldBlock = 11
    /// The caller's handle table has no free slot.
    case handleTableFull = 12
}

/// A message as it crosses the system call boundary: 328 bytes at an 8-byte aligned address.
/// The kernel fills `sender` (the sending process's id, which the receiver can trust) and
/// `replyHandle` (for a call); handles listed in `handles` move from sender to receiver.
public enum IPCMessageLayout {
    public static let label = 0
    public static let length = 8
    public static let handleCount = 16
    public static let sender = 24
    public static let replyHandle = 32
    public static let handles = 40
    public static let payload = 72
    public static let size = 328
    public static let maximumPayload = 256
    public static let maximumHandles = 4
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
