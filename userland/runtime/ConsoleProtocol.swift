// The console service's protocol (userland/services/console; docs/SHELL.md): labels, payload
// layouts, `Console`, the typed client, and `ConsoleOutput`, which carries `System.write` to the
// console service when the program was given one. Every request is a call; the answer's label is
// 0 for success or the `KernelError` that refused it.
//
// | label | request | payload in | handles in | answer |
// |---|---|---|---|---|
// | 1 write | bytes to the terminal, written whole before any other client's | the bytes (up to 256) | none | nothing |
// | 2 read line | a line, edited with echo (backspace, Ctrl-U; Ctrl-C, Ctrl-D) | nothing | none | word 0 `ConsoleReadResult`, the line from byte 8 |
// | 3 read raw | bytes as typed (at least one), no echo; the terminal is raw until a line read or 6 | nothing | none | word 0 `.data`, the bytes from byte 8 |
// | 4 set interrupt | who hears Ctrl-C (and Ctrl-\, through the terminal) | nothing | a notification (signal) | nothing |
// | 5 statistics | the driver's counters | nothing | none | words 0-6: bytes written, bytes read, interrupts, requests, Ctrl-C and Ctrl-\ interrupts, bytes dropped, hold-backs |
// | 6 foreground | the terminal goes to a program: Ctrl-C interrupts again; bytes the lender read ahead go back to the input, before those typed since (from the terminal only: through a loan, `accessDenied`) | the bytes (up to 248) | none | nothing |
// | 7 lend | a loan of the terminal for a program; ends the one before | nothing | none | a send right (send, transfer) to the loan |
// | 8 end loan | the loan ends: its port closes, a read waiting through it fails `peerClosed`, a notification named through it is dropped | nothing | none | nothing |
//
// Reads (2, 3), set interrupt (4), foreground (6) and the loans (7, 8) are served only on the
// terminal, the console's private port (start tag `.terminal` for its holders): on the public
// port, the one registered as `console`, they are answered `accessDenied`. Writes and statistics
// are served on both. A loan is a port of the console's served as the terminal, but for the loans
// themselves, until the holder of the terminal ends it: the program it was lent to may move it
// on, and whoever holds it then loses it with the loan. A Ctrl-C notification named through the
// loan is told instead of the terminal's while the loan lasts.
//
// One read waits at a time: a newer read answers the older one `wouldBlock`. While the terminal
// is raw (from a raw read until a line read or `foreground`), Ctrl-C is a byte like any other,
// kept in order with what is typed around it. Otherwise it is not input: it sets bit 0 of the
// interrupt notification, drops the typed input and answers a waiting line read `.interrupted`;
// and `foreground` turns a Ctrl-C typed while the terminal was raw, still unread, into one.
// While the terminal is lent, Ctrl-\ is never input, raw or not: it does what Ctrl-C does (drops
// the typed input, answers a waiting line read `.interrupted`), but sets bit 1 of the terminal's
// interrupt notification, never the loan's: a program may take Ctrl-C for itself (name its own
// notification, or read raw), and its lender can still end it. `foreground` turns one typed
// while the terminal was raw, still unread, into one too.
// Typed input waits in a queue of 1 KiB; while it is full the driver holds the sender back, and
// drops what does not fit (never a Ctrl-C) only when it has stayed full, no read taking from it,
// for a second.

public enum ConsoleRequest: UInt64, Sendable {
    case write = 1
    case readLine = 2
    case readRaw = 3
    case setInterrupt = 4
    case statistics = 5
    case foreground = 6
    case lend = 7
    case endLoan = 8

    /// Whether only the terminal (the private port) or a loan of it takes it.
    public var needsTerminal: Bool {
        switch self {
        case .readLine, .readRaw, .setInterrupt, .foreground, .lend, .endLoan: return true
        case .write, .statistics: return false
        }
    }

    /// Whether only the terminal itself takes it, not a loan.
    public var needsOwnTerminal: Bool { self == .lend || self == .endLoan }
}

public enum ConsoleReadResult: UInt64, Sendable {
    /// Bytes: a line (without its end) or, for a raw read, what was typed.
    case data = 0
    /// Ctrl-D on an empty line.
    case endOfInput = 1
    /// Ctrl-C ended the line.
    case interrupted = 2
}

/// A client of the console service at `port`: the public port (writes, statistics) or the
/// terminal (everything).
public struct Console {
    /// Where the bytes of a read's answer start.
    public static let dataOffset = 8
    public static let maximumRead = IPCMessageLayout.maximumPayload - dataOffset
    public let port: Handle
    public init(_ port: Handle) { self.port = port }

    static func check(_ message: IPCMessage) throws(KernelError) {
        if let error = System.answered(message.label) { throw error }
    }

    /// Writes `bytes`, in messages of up to 256 bytes (each written whole).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(KernelError) {
        var offset = 0
        repeat {
            let count = min(bytes.count - offset, IPCMessageLayout.maximumPayload)
            var message = IPCMessage(label: ConsoleRequest.write.rawValue)
            if count > 0 {
                _ = message.setBytes(atByte: 0, UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
            }
            message.length = count
            try IPC.call(port, &message)
            try Self.check(message)
            offset += count
        } while offset < bytes.count
    }

    /// A line (`raw` false) or the bytes typed (`raw` true), copied to `buffer`; what ended the
    /// read and how many bytes it holds.
    public func read(raw: Bool, into buffer: inout InlineArray<248, UInt8>) throws(KernelError)
        -> (result: ConsoleReadResult, count: Int) {
        var message = IPCMessage(label: (raw ? ConsoleRequest.readRaw : ConsoleRequest.readLine).rawValue)
        try IPC.call(port, &message)
        try Self.check(message)
        guard message.length >= Self.dataOffset else { throw .invalidArgument }
        let count = min(message.length - Self.dataOffset, Self.maximumRead)
        for index in 0..<count { buffer[index] = message[byte: Self.dataOffset + index] }
        return (ConsoleReadResult(rawValue: message.word(atByte: 0)) ?? .data, count)
    }

    /// Makes the console set bit 0 of `notification` (moved with the request; needs signal and
    /// transfer) when Ctrl-C is typed; named through the terminal, also bit 1 when Ctrl-\ is
    /// typed while the terminal is lent.
    public func setInterrupt(_ notification: Handle) throws(KernelError) {
        var message = IPCMessage(label: ConsoleRequest.setInterrupt.rawValue)
        message.attach(notification)
        do throws(KernelError) {
            try IPC.call(port, &message)
        } catch {
            try? IPC.close(notification)
            throw error
        }
        try Self.check(message)
    }

    /// Gives the terminal to a foreground program: Ctrl-C interrupts from now until the next raw
    /// read, and one typed while the terminal was raw and not read yet interrupts now. `typedAhead`
    /// (at most 248 bytes), bytes the caller read raw but were typed for the program, go back to
    /// the input before what was typed since, for the program's reads.
    public func foreground(typedAhead: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0))
        throws(KernelError) {
        guard typedAhead.count <= 248 else { throw .invalidArgument }
        var message = IPCMessage(label: ConsoleRequest.foreground.rawValue)
        message.fill(count: typedAhead.count) { typedAhead[$0] }
        try IPC.call(port, &message)
        try Self.check(message)
    }

    /// A loan of the terminal for a program (moved to it): served as the terminal, but for loans,
    /// until `endLoan`, the next `lend` or the end of the console instance that made it.
    public func lend() throws(KernelError) -> Handle {
        var message = IPCMessage(label: ConsoleRequest.lend.rawValue)
        try IPC.call(port, &message)
        guard message.label == 0, message.handleCount == 1 else {
            message.closeHandles()
            try Self.check(message)
            throw .invalidArgument
        }
        return message.handle(0)
    }

    /// Ends the loan of the terminal: whoever holds it can use it no more.
    public func endLoan() throws(KernelError) {
        var message = IPCMessage(label: ConsoleRequest.endLoan.rawValue)
        try IPC.call(port, &message)
        try Self.check(message)
    }

    public func statistics() throws(KernelError)
        -> (written: UInt64, read: UInt64, interrupts: UInt64, requests: UInt64, interruptsTyped: UInt64,
            dropped: UInt64, heldBack: UInt64) {
        var message = IPCMessage(label: ConsoleRequest.statistics.rawValue)
        try IPC.call(port, &message)
        try Self.check(message)
        return (message.word(atByte: 0), message.word(atByte: 8), message.word(atByte: 16), message.word(atByte: 24),
                message.word(atByte: 32), message.word(atByte: 40), message.word(atByte: 48))
    }
}

/// Where `System.write` sends a program's output: the console service, when the program was
/// given a send right to it (start tag `.console`) or was told of one (`use`), else the kernel's
/// debug write. A console that went away is looked up again by name; while none answers, output
/// goes to the kernel's debug write, and the lookup is tried again at most once a second, so a
/// program never blocks for long and never loses a line.
public enum ConsoleOutput {
    nonisolated(unsafe) static var port: Handle? = ProgramStart.handle(.console)
    nonisolated(unsafe) static var wanted = ProgramStart.handle(.console) != nil
    /// The clock reading before which no new lookup is tried.
    nonisolated(unsafe) static var retryAfter: UInt64 = 0

    /// The console's port this program writes to, if any.
    public static var current: Handle? { port }

    /// Sends output to the console at `newPort` from now on (nil: to the kernel's debug write).
    public static func use(_ newPort: Handle?) {
        port = newPort
        wanted = newPort != nil
    }

    /// The console's port after `stale` stopped answering: the one in use if another caller
    /// already found it, else the running instance's, looked up by name (nil if none answers).
    public static func reconnect(replacing stale: Handle?) -> Handle? {
        if let current = port, current != stale { return current }
        if let current = port {
            try? IPC.close(current)
            port = nil
        }
        guard let found = try? SystemServices.lookup("console") else { return nil }
        port = found.port
        wanted = true
        return found.port
    }

    /// Writes `bytes` through the console service; false if there is none to write to.
    static func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard wanted else { return false }
        if let current = port {
            do throws(KernelError) {
                try Console(current).write(bytes)
                return true
            } catch {
                guard error == .peerClosed || error == .invalidHandle else { return false }
                try? IPC.close(current)
                port = nil
            }
        }
        let now = System.clock
        guard now.ticks >= retryAfter else { return false }
        guard let found = try? SystemServices.lookup("console", attempts: 6) else {
            retryAfter = now.adding(milliseconds: 1000)
            return false
        }
        port = found.port
        return (try? Console(found.port).write(bytes)) != nil
    }
}
