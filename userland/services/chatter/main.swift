// chatter: a busy client for the tests of restarts from the shell. `chatter print [N]` prints a
// numbered line every 10 ms (through the console service, when started by the shell);
// `chatter alloc [N]` takes 16 KiB from the memory manager, writes it and gives it back, every
// 2 ms. N rounds (without N: until killed); at the end a summary line. `chatter read` reads
// lines from the terminal the shell lends its foreground program (the console's line discipline:
// echo, backspace, Ctrl-U) and prints each, until Ctrl-D. `chatter steal` tries what the terminal
// alone may do through the console's public port, which anyone may look up: a read, its own
// Ctrl-C notification, `foreground`; each should be refused. `chatter flood` asks the console for
// its statistics as fast as it answers, through the public port (`chatter flood terminal`: through
// the terminal lent it), until killed: typed input and Ctrl-C must still get through.
// `chatter flood log` writes to the kernel log without a pause, until killed: the console writes
// it out, and typed input must still get through.
// `chatter inject`, in the foreground, tries to put a line before the shell's next one through the
// terminal lent it (`foreground` with bytes, which only the lender may send); it must be refused.
// `chatter time` sleeps 10 ms and waits 10 ms on a notification nobody signals, and says what
// each gave: `ok` and `timed out`, or `device failed` for both on a kernel that runs without a tick.
// `chatter pass` moves the terminal lent it to a child, `chatter hold`, and ends at once. The child
// names Ctrl-C notifications of its own and reads through it, again and again: the loan ends with
// its parent, so the child's requests fail and Ctrl-C is the shell's again. Run in the foreground
// itself, `chatter hold` takes Ctrl-C for itself (its own notification, raw reads): only Ctrl-\,
// which is always the shell's, ends it.

@main
struct Chatter {
    static func main() {
        let words = Arguments(ProgramStart.arguments)
        let rounds = words.number(1) ?? UInt64.max
        if words.equals(0, "print") {
            var line: UInt64 = 0
            while line < rounds {
                line += 1
                System.print("chatter: line \(line)")
                System.sleep(nanoseconds: 10_000_000)
            }
            System.print("chatter: printed \(line) lines")
        } else if words.equals(0, "alloc") {
            var round: UInt64 = 0
            var failed: UInt64 = 0
            while round < rounds {
                round += 1
                if let run = HeapPageSource.obtain(bytes: 16384) {
                    for offset in stride(from: 0, to: 16384, by: 4096) { run.storeBytes(of: round, toByteOffset: offset, as: UInt64.self) }
                    try? System.unmap(run, bytes: 16384)
                } else {
                    failed += 1
                }
                System.sleep(nanoseconds: 2_000_000)
            }
            System.print("chatter: \(round) allocations, \(HeapPageSource.managedRuns) from the memory manager, \(HeapPageSource.directRuns) mapped directly, \(failed) refused")
        } else if words.equals(0, "read") {
            readLines()
        } else if words.equals(0, "steal") {
            steal()
        } else if words.equals(0, "pass") {
            passTerminal()
        } else if words.equals(0, "hold") {
            holdTerminal()
        } else if words.equals(0, "flood") && words.equals(1, "log") {
            floodKernelLog()
        } else if words.equals(0, "flood") && words.equals(1, "manager") {
            floodManager()
        } else if words.equals(0, "flood") {
            flood(throughTerminal: words.equals(1, "terminal"))
        } else if words.equals(0, "time") {
            timedCalls()
        } else if words.equals(0, "inject") {
            injectThroughLoan()
        } else {
            System.print("usage: chatter print|alloc [N], chatter read, chatter steal, chatter flood [terminal|log|manager], chatter pass, chatter hold, chatter time or chatter inject")
            System.exit(2)
        }
    }
}

/// Reads lines from the terminal until the end of input, printing each.
func readLines() {
    guard let port = ProgramStart.handle(.terminal) else {
        System.print("chatter: no terminal to read from (the shell lends it to a program in the foreground)")
        System.exit(1)
    }
    var buffer = InlineArray<248, UInt8>(repeating: 0)
    var lines = 0
    System.print("chatter: reading lines; Ctrl-D ends")
    while true {
        let result: ConsoleReadResult
        let count: Int
        do throws(KernelError) {
            (result, count) = try Console(port).read(raw: false, into: &buffer)
        } catch {
            System.print("chatter: read failed: \(error)")
            System.exit(1)
        }
        switch result {
        case .endOfInput:
            System.print("chatter: end of input after \(lines) lines")
            return
        case .interrupted:
            System.print("chatter: interrupted")
        case .data:
            lines += 1
            var line = TextLine()
            line.write("chatter: read '")
            for index in 0..<count { line.write(byte: buffer[index]) }
            line.write("'")
            System.print(FormattedText(line: line))
        }
    }
}

/// The terminal's requests on the console's public port (looked up by name, as any program
/// can): each outcome is printed; exit code 0 if all three were refused with `accessDenied`.
func steal() {
    guard let port = try? SystemServices.lookup("console").port else {
        System.print("chatter: no console to look up")
        System.exit(1)
    }
    var buffer = InlineArray<248, UInt8>(repeating: 0)
    let read = catching { () throws(KernelError) in _ = try Console(port).read(raw: true, into: &buffer) }
    let interrupt = catching { () throws(KernelError) in
        try Console(port).setInterrupt(try IPC.createNotification())
    }
    let foreground = catching { () throws(KernelError) in try Console(port).foreground() }
    System.print("chatter: through the console's public port: read \(said(read)), interrupt notification \(said(interrupt)), foreground \(said(foreground))")
    try? IPC.close(port)
    System.exit(read == .accessDenied && interrupt == .accessDenied && foreground == .accessDenied ? 0 : 1)
}

/// Moves the terminal lent to this program to a child that holds on to it (`chatter hold`, which
/// writes where this program does), and ends without waiting for it.
func passTerminal() {
    guard let terminal = ProgramStart.handle(.terminal), let manager = SystemServices.processManager else {
        System.print("chatter: no terminal or no process manager to pass it on with")
        System.exit(1)
    }
    var handles = ClientHandles()
    handles.append(.terminal, terminal)
    if let console = ConsoleOutput.current, let copy = try? IPC.duplicate(console, rights: [.send, .duplicate, .transfer]) {
        handles.append(.console, copy)
    }
    do throws(KernelError) {
        let child = try manager.spawn(UnsafeRawBufferPointer("chatter"), arguments: UnsafeRawBufferPointer("hold"),
                                      handles: handles)
        System.print("chatter: passed the terminal to process \(child.id.value)")
        try? IPC.close(child.process)
    } catch {
        System.print("chatter: could not pass the terminal on: \(error)")
        System.exit(1)
    }
    System.exit(0)
}

/// Names a Ctrl-C notification of its own through the terminal it was given, then reads, again
/// and again until a request fails, and says how.
func holdTerminal() {
    guard let port = ProgramStart.handle(.terminal), let notification = try? IPC.createNotification() else {
        System.print("chatter: no terminal to hold")
        System.exit(1)
    }
    var buffer = InlineArray<248, UInt8>(repeating: 0)
    var rounds: UInt64 = 0
    while true {
        do throws(KernelError) {
            try Console(port).setInterrupt(try IPC.duplicate(notification, rights: [.signal, .transfer]))
            // Said once the console tells this program of Ctrl-C: from then on it is not the shell's.
            if rounds == 0 { System.print("chatter: holding the terminal (Ctrl-C is mine)") }
            _ = try Console(port).read(raw: true, into: &buffer)
            rounds &+= 1
        } catch {
            System.print("chatter: lost the terminal after \(rounds) reads: \(error)")
            System.exit(error == .peerClosed ? 0 : 1)
        }
    }
}

/// Requests without a pause, each answered before the next, until killed (or refused).
func flood(throughTerminal: Bool) {
    let port = throughTerminal ? ProgramStart.handle(.terminal) : try? SystemServices.lookup("console").port
    guard let port else {
        System.print(throughTerminal ? "chatter: no terminal to flood" : "chatter: no console to look up")
        System.exit(1)
    }
    System.print(throughTerminal ? "chatter: flooding the terminal" : "chatter: flooding the console's public port")
    var answered: UInt64 = 0
    while true {
        do throws(KernelError) {
            _ = try Console(port).statistics()
            answered &+= 1
        } catch {
            System.print("chatter: a request failed after \(answered) answered: \(error)")
            System.exit(1)
        }
    }
}

/// Writes lines to the kernel log (the debug write, which any program may make) without a
/// pause, until killed: the console writes them out, and must still take typed input meanwhile.
func floodKernelLog() {
    System.print("chatter: flooding the kernel log")
    var line = InlineArray<32, UInt8>(repeating: UInt8(ascii: "~"))
    line[31] = UInt8(ascii: "\n")
    while true {
        withUnsafeBytes(of: &line) { bytes in
            _ = try? System.invoke(SystemCall.DebugWrite(text: UserAddress(bytes.baseAddress!), length: UInt64(bytes.count)))
        }
    }
}

/// Plain sends to the process manager's public port without a pause, from two threads, until
/// killed: its queue stays full, and the requests on its control port (the shell's `crash`)
/// must still be served.
func floodManager() {
    guard let port = ProgramStart.handle(.processManager) else {
        System.print("chatter: no process manager to flood")
        System.exit(1)
    }
    System.print("chatter: flooding the process manager's public port")
    _ = try? System.createThread(argument: port.value, sendWithoutPause)
    sendWithoutPause(port.value)
}

/// The loop of `floodManager`'s threads; `argument` is the port.
func sendWithoutPause(_ argument: UInt64) {
    while true {
        var message = IPCMessage(label: 0)
        do throws(KernelError) {
            try IPC.send(Handle(argument), &message)
        } catch {
            guard error == .queueFull else {
                System.print("chatter: a send failed: \(error)")
                System.exit(1)
            }
        }
    }
}

/// Through the terminal lent it, tries to give the console bytes as if typed ahead (`foreground`
/// with bytes, the lender's alone): they would come before the shell's next command line. Exit
/// code 0 if refused with `accessDenied`.
func injectThroughLoan() {
    guard let loan = ProgramStart.handle(.terminal) else {
        System.print("chatter: no terminal lent to inject through")
        System.exit(1)
    }
    let bytes: StaticString = "shutdown\r"
    let outcome = catching { () throws(KernelError) in
        try Console(loan).foreground(typedAhead: UnsafeRawBufferPointer(start: bytes.utf8Start, count: bytes.utf8CodeUnitCount))
    }
    System.print("chatter: a line put before the shell's through the loan: \(said(outcome))")
    System.exit(outcome == .accessDenied ? 0 : 1)
}

/// How a request ended, for the line `steal` prints.
func said(_ error: KernelError?) -> StaticString {
    guard let error else { return "served" }
    return error == .accessDenied ? "refused (access denied)" : "failed otherwise"
}

/// The words of the argument text.
struct Arguments {
    let text: UnsafeRawBufferPointer
    var starts = InlineArray<4, Int>(repeating: 0)
    var ends = InlineArray<4, Int>(repeating: 0)
    var count = 0

    init(_ text: UnsafeRawBufferPointer) {
        self.text = text
        var index = 0
        while index < text.count && count < 4 {
            while index < text.count && text[index] == 0x20 { index += 1 }
            guard index < text.count else { break }
            starts[count] = index
            while index < text.count && text[index] != 0x20 { index += 1 }
            ends[count] = index
            count += 1
        }
    }

    func equals(_ word: Int, _ expected: StaticString) -> Bool {
        guard word < count, ends[word] - starts[word] == expected.utf8CodeUnitCount else { return false }
        for index in 0..<expected.utf8CodeUnitCount where text[starts[word] + index] != expected.utf8Start[index] { return false }
        return true
    }

    func number(_ word: Int) -> UInt64? {
        guard word < count, ends[word] - starts[word] <= 18 else { return nil }
        var value: UInt64 = 0
        for index in starts[word]..<ends[word] {
            guard text[index] >= 0x30 && text[index] <= 0x39 else { return nil }
            value = value * 10 + UInt64(text[index] - 0x30)
        }
        return value
    }
}

/// A sleep and a timed wait, 10 ms each, and what each gave (exit code 0 if both gave what the
/// kernel should: with a tick, the sleep returns and the wait times out; without one, both are
/// refused with `deviceFailed` at once).
func timedCalls() {
    let slept = catching { () throws(KernelError) in _ = try System.invoke(SystemCall.Sleep(nanoseconds: 10_000_000)) }
    var waited: KernelError? = .invalidArgument
    if let bell = try? IPC.createNotification() {
        waited = catching { () throws(KernelError) in _ = try IPC.wait(bell, timeout: 10_000_000) }
        try? IPC.close(bell)
    }
    System.print("chatter: sleep of 10 ms: \(outcome(slept)); wait of 10 ms: \(outcome(waited))")
    let consistent = (slept == nil && waited == .timedOut) || (slept == .deviceFailed && waited == .deviceFailed)
    System.exit(consistent ? 0 : 1)
}

func outcome(_ error: KernelError?) -> StaticString {
    switch error {
    case nil: return "ok"
    case .timedOut?: return "timed out"
    case .deviceFailed?: return "device failed"
    default: return "failed otherwise"
    }
}
