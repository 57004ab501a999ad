// The shell's commands. A command is a name, a one-line summary for `help` and a function that
// gets the line's words; adding one is one entry in `Commands.table` and its function
// (docs/SHELL.md). Every command reports its own errors; none can end the shell.

/// The words of a line (at most 16, split at spaces and tabs), as ranges of its bytes.
struct Words {
    static let maximum = 16
    var bytes: InlineArray<200, UInt8>
    var starts = InlineArray<16, Int>(repeating: 0)
    var lengths = InlineArray<16, Int>(repeating: 0)
    var count = 0
    /// More words than `maximum` were typed.
    var tooMany = false

    init(_ bytes: InlineArray<200, UInt8>, _ length: Int) {
        self.bytes = bytes
        var index = 0
        while index < length {
            while index < length && (bytes[index] == 0x20 || bytes[index] == 0x09) { index += 1 }
            guard index < length else { break }
            let start = index
            while index < length && bytes[index] != 0x20 && bytes[index] != 0x09 { index += 1 }
            guard count < Self.maximum else {
                tooMany = true
                break
            }
            starts[count] = start
            lengths[count] = index - start
            count += 1
        }
    }

    func equals(_ index: Int, _ text: StaticString) -> Bool {
        guard index < count, lengths[index] == text.utf8CodeUnitCount else { return false }
        for offset in 0..<lengths[index] where bytes[starts[index] + offset] != text.utf8Start[offset] { return false }
        return true
    }

    /// Runs `body` with word `index`'s bytes (from it to word `last`, with the spaces between, if given).
    func with<Result>(_ index: Int, through last: Int? = nil,
                      _ body: (UnsafeRawBufferPointer) throws(KernelError) -> Result) throws(KernelError) -> Result {
        var copy = bytes
        let end = last.map { starts[$0] + lengths[$0] } ?? (starts[index] + lengths[index])
        let start = starts[index]
        return try withUnsafeBytes(of: &copy) { all throws(KernelError) in
            try body(UnsafeRawBufferPointer(rebasing: all[start..<end]))
        }
    }

    /// Word `index` as a decimal number, if it is one.
    func number(_ index: Int) -> UInt64? {
        guard index < count, lengths[index] > 0, lengths[index] <= 18 else { return nil }
        var value: UInt64 = 0
        for offset in 0..<lengths[index] {
            let digit = bytes[starts[index] + offset]
            guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(digit - UInt8(ascii: "0"))
        }
        return value
    }

    /// Word `index` for a message (at most 40 bytes of it, control bytes as '?').
    func text(_ index: Int) -> Printable {
        var printable = Printable()
        for offset in 0..<min(lengths[index], 40) { printable.add(bytes[starts[index] + offset]) }
        return printable
    }
}

/// Up to 40 bytes to print, with control bytes shown as '?'.
struct Printable: TextDescribable {
    var bytes = InlineArray<40, UInt8>(repeating: 0)
    var count = 0

    mutating func add(_ byte: UInt8) {
        guard count < 40 else { return }
        bytes[count] = byte < 0x20 || byte == 0x7F ? UInt8(ascii: "?") : byte
        count += 1
    }

    init() {}

    init(_ name: InlineArray<24, UInt8>, _ length: Int) {
        for index in 0..<min(length, 24) { add(name[index]) }
    }

    func describe<Output: TextOutput>(into output: inout Output) {
        for index in 0..<count { output.write(byte: bytes[index]) }
    }
}

struct Command {
    let name: StaticString
    let usage: StaticString
    let summary: StaticString
    let run: (inout Words) -> Void
}

enum Commands {
    static let table: [Command] = [
        Command(name: "help", usage: "help", summary: "this list", run: help),
        Command(name: "ps", usage: "ps", summary: "the processes the process manager runs, and each CPU's figures", run: ProcessCommands.ps),
        Command(name: "services", usage: "services", summary: "the services: state, restarts, last delay",
                run: ProcessCommands.services),
        Command(name: "spawn", usage: "spawn NAME [ARGS] [&]", summary: "start a program; wait for it unless &",
                run: ProcessCommands.spawn),
        Command(name: "kill", usage: "kill PID", summary: "end a program this shell started", run: ProcessCommands.kill),
        Command(name: "jobs", usage: "jobs", summary: "the programs this shell runs in the background", run: ProcessCommands.jobs),
        Command(name: "crash", usage: "crash NAME", summary: "end a service on purpose; it restarts",
                run: ProcessCommands.crash),
        Command(name: "mem", usage: "mem", summary: "memory: the kernel's figures and each client's", run: SystemCommands.mem),
        Command(name: "ipc", usage: "ipc", summary: "the kernel's IPC counters", run: SystemCommands.ipc),
        Command(name: "uptime", usage: "uptime", summary: "time since boot", run: SystemCommands.uptime),
        Command(name: "disk", usage: "disk [read|write N]", summary: "the disk: size, restarts; read or write a sector",
                run: DiskCommands.disk),
        Command(name: "test", usage: "test", summary: "the services' test: kills services in use, checks for leaks",
                run: ProcessCommands.test),
        Command(name: "bench", usage: "bench", summary: "timings of system calls, IPC and spawn", run: SystemCommands.bench),
        Command(name: "shutdown", usage: "shutdown", summary: "stop the services and power off", run: SystemCommands.shutdown),
    ]

    static func run(_ words: inout Words) {
        guard words.count > 0 else { return }
        if words.tooMany {
            System.print("shell: too many words (at most \(Words.maximum))")
            return
        }
        for command in table where words.equals(0, command.name) {
            command.run(&words)
            return
        }
        System.print("shell: unknown command '\(words.text(0))'; type help for the list")
    }

    static func help(_ words: inout Words) {
        for command in table {
            var line = TextLine()
            line.write("  ")
            line.write(command.usage)
            for _ in 0..<max(1, 24 - command.usage.utf8CodeUnitCount) { line.write(byte: 0x20) }
            line.write(command.summary)
            System.print(FormattedText(line: line))
        }
        System.print("  keys: left/right move, up/down history, backspace, Ctrl-U clears, Ctrl-C ends the program (Ctrl-\\ one that took Ctrl-C)")
    }
}
