// Every error a system call can return, with the text that names it in logs. Values never
// change meaning. Success is not an error: it is status 0 (`systemCallSuccess`).

public enum KernelError: UInt64, Error, Equatable, CaseIterable, Sendable {
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
    /// A device reported that it could not carry out the request: the answer of services that
    /// drive devices (the block service). From the kernel only for a sleep or a timed wait while
    /// it runs without a tick, where no deadline would ever pass.
    case deviceFailed = 13
    /// A message does not fit where it must go: one for a thread that takes its messages in
    /// registers carries handles or more than 64 bytes.
    case messageTooLong = 14

    /// The error a status in x0 reports, or nil for success. A status no error has (never sent
    /// by this kernel) reads as `invalidArgument`.
    @inline(__always)
    public init?(status: UInt64) {
        guard status != systemCallSuccess else { return nil }
        self = KernelError(rawValue: status) ?? .invalidArgument
    }

    /// How a log line names the error.
    public var summary: StaticString {
        switch self {
        case .unknownSystemCall: return "unknown system call"
        case .invalidArgument: return "invalid argument"
        case .outOfMemory: return "out of memory"
        case .badAddress: return "bad address"
        case .invalidHandle: return "invalid handle"
        case .accessDenied: return "access denied"
        case .queueFull: return "queue full"
        case .timedOut: return "timed out"
        case .notFound: return "not found"
        case .peerClosed: return "peer closed"
        case .wouldBlock: return "would block"
        case .handleTableFull: return "handle table full"
        case .deviceFailed: return "device failed"
        case .messageTooLong: return "message too long"
        }
    }
}
