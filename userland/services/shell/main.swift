// shell: the interactive shell, a service (`userland/manifest`) that talks to the console service.
// It reads raw bytes, edits the line itself (LineEditor.swift), splits it into words and runs a
// command (Commands.swift). It reads and hears Ctrl-C through the terminal, the console's private
// port, which init gives it (start tag `.terminal`, the manifest's `devices=terminal`) and which
// outlives the console's restarts. Programs it starts get a send right to the console's public
// port for their output, and the one in the foreground a loan of the terminal; it is waited for
// while the shell listens for Ctrl-C. A console that restarts is found again by name; no input
// ends the shell. docs/SHELL.md.

@main
struct Shell {
    static func main() {
        guard let terminal = ProgramStart.handle(.terminal) else {
            System.panic("shell: started without the terminal (the manifest gives it with devices=terminal)")
        }
        ShellState.terminalPort = terminal
        guard ShellState.start() else { System.panic("shell: cannot make its notifications") }
        // A shell before this one may have ended while a program held a loan of the terminal.
        try? Console(terminal).endLoan()
        ShellState.connect()
        System.print("shell: SwiftKernel shell; type help for the commands")
        while true {
            ProcessCommands.collectEndedJobs()
            System.write(UnsafeRawBufferPointer("swiftkernel> "))
            guard ShellState.readLine() else { continue }
            var words = Words(ShellState.editor.bytes, ShellState.editor.length)
            Commands.run(&words)
        }
    }
}

/// Output for the terminal, gathered and written in one go.
struct Terminal {
    var bytes = InlineArray<256, UInt8>(repeating: 0)
    var count = 0

    mutating func add(_ byte: UInt8) {
        if count == 256 { flush() }
        bytes[count] = byte
        count += 1
    }

    mutating func add(_ text: StaticString) {
        for index in 0..<text.utf8CodeUnitCount { add(text.utf8Start[index]) }
    }

    mutating func flush() {
        guard count > 0 else { return }
        withUnsafeBytes(of: &bytes) { System.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        count = 0
    }
}

/// The shell's state: the console connection, the line editor, typed bytes not used yet, and the
/// notification a foreground program's end rings.
enum ShellState {
    nonisolated(unsafe) static var editor = LineEditor()
    /// The terminal: a send right to the console's private port, where reads, `foreground` and
    /// the interrupt notification go.
    nonisolated(unsafe) static var terminalPort = Handle.none
    /// The console's public port when our interrupt notification was last given: a new one
    /// means a new console instance, which needs it again.
    nonisolated(unsafe) static var registered: Handle?
    /// Set by the console: bit 0 when Ctrl-C is typed, bit 1 when Ctrl-\ is typed while the
    /// terminal is lent to a foreground program.
    nonisolated(unsafe) static var interrupt = Handle.none
    nonisolated(unsafe) static var pending = InlineArray<248, UInt8>(repeating: 0)
    nonisolated(unsafe) static var pendingStart = 0
    nonisolated(unsafe) static var pendingCount = 0

    /// Rung (bit 0) by the end of the foreground program (`processNotify`).
    nonisolated(unsafe) static var ended = Handle.none

    static func start() -> Bool {
        do throws(KernelError) {
            interrupt = try IPC.createNotification()
            ended = try IPC.createNotification()
            return true
        } catch {
            return false
        }
    }

    /// Finds the console (waiting while it restarts) and gives it our interrupt notification.
    static func connect(replacing stale: Handle? = nil) {
        var reported = false
        while true {
            if let port = ConsoleOutput.reconnect(replacing: stale) {
                if port != registered, reclaimInterrupt() { registered = port }
                return
            }
            if !reported {
                // No console answers: this goes to the kernel's debug write.
                System.print("shell: waiting for the console service")
                reported = true
            }
            System.sleep(nanoseconds: 100_000_000)
        }
    }

    /// Gives the console our interrupt notification (again), through the terminal; false if no
    /// copy of it could be made.
    @discardableResult
    static func reclaimInterrupt() -> Bool {
        guard let copy = try? IPC.duplicate(interrupt, rights: [.signal, .transfer]) else { return false }
        try? Console(terminalPort).setInterrupt(copy)
        return true
    }

    /// Reads and edits a line; false if it was abandoned (Ctrl-C).
    static func readLine() -> Bool {
        editor.start()
        while true {
            if pendingCount == 0 { fill() }
            var terminal = Terminal()
            while pendingCount > 0 {
                let byte = pending[pendingStart]
                pendingStart += 1
                pendingCount -= 1
                switch editor.take(byte, &terminal) {
                case .editing: continue
                case .line:
                    terminal.flush()
                    return true
                case .cancelled:
                    terminal.flush()
                    return false
                }
            }
            terminal.flush()
        }
    }

    /// Waits for typed bytes; a console that went away is found again and the line redrawn.
    static func fill() {
        guard let port = ConsoleOutput.current else {
            connect()
            return
        }
        // Output found a restarted console: it needs our interrupt notification too.
        if port != registered { connect(replacing: registered) }
        var buffer = InlineArray<248, UInt8>(repeating: 0)
        do throws(KernelError) {
            let (_, count) = try Console(terminalPort).read(raw: true, into: &buffer)
            pending = buffer
            pendingStart = 0
            pendingCount = count
        } catch {
            if error == .peerClosed {
                // The console ended holding the read: find the new one (our notification goes to
                // it through the terminal, which outlives it).
                connect(replacing: port)
                var terminal = Terminal()
                terminal.add("\n(console restarted)\nswiftkernel> ")
                for index in 0..<editor.length { terminal.add(editor.bytes[index]) }
                for _ in editor.cursor..<editor.length { terminal.add(TerminalKey.backspace) }
                terminal.flush()
            } else {
                System.sleep(nanoseconds: 10_000_000)
            }
        }
    }

    /// The first Ctrl-C or Ctrl-\ among the bytes typed ahead, if any; it and what was typed
    /// before it are dropped, as a terminal's interrupt drops its input.
    static func takeTypedInterrupt() -> UInt8? {
        for offset in 0..<pendingCount {
            let byte = pending[pendingStart + offset]
            guard byte == TerminalKey.ctrlC || byte == TerminalKey.quit else { continue }
            pendingStart += offset + 1
            pendingCount -= offset + 1
            return byte
        }
        return nil
    }

    /// The end of `child`, waited for; its process handle is closed whatever the wait says
    /// (another process may be waiting for it already, which the kernel refuses).
    static func collect(_ child: ChildProcess) -> (reason: ExitReason, code: UInt64)? {
        defer { try? IPC.close(child.process) }
        return try? ProcessHandles.wait(child.process)
    }

    /// Waits for foreground program `child` to end; Ctrl-C (or Ctrl-\) kills it. Its end, if known; its
    /// process handle is closed.
    static func waitForeground(_ child: ChildProcess) -> (reason: ExitReason, code: UInt64)? {
        // The program's loan of the terminal ends with it (whoever holds the loan then, and any
        // Ctrl-C notification named through it); and Ctrl-C comes back to the shell, in case the
        // console restarted meanwhile and knows none.
        defer {
            try? Console(terminalPort).endLoan()
            reclaimInterrupt()
        }
        _ = try? IPC.wait(ended, timeout: 0)
        // Ends the program once, by the key that asked (`quit`: Ctrl-\, else Ctrl-C).
        var killed = false
        func end(quit: Bool) {
            guard !killed else { return }
            System.print("shell: \(quit ? "Ctrl-\\" : "Ctrl-C"): ending process \(child.id.value)")
            try? System.kill(child)
            killed = true
        }
        // The terminal goes to the program. A Ctrl-C typed after the command's line is for it:
        // while the shell's terminal was raw, Ctrl-C came as a byte in order, either read already
        // (in the typed-ahead bytes) or still in the console, which `foreground` turns into an
        // interrupt; from now on Ctrl-C is one. What was signalled before is not for this program,
        // but for a Ctrl-\ (bit 1): that is signalled only while the terminal is lent, and it was
        // lent for this program before it was started. The same goes for Ctrl-\ as for Ctrl-C.
        // What was typed ahead after the command's line is the program's input: it goes back to
        // the console with the terminal, unless an interrupt among it ends the program.
        let early = (try? IPC.wait(interrupt, timeout: 0)) ?? 0
        let typed = takeTypedInterrupt()
        if early & 2 != 0 || typed != nil {
            try? Console(terminalPort).foreground()
            end(quit: early & 2 != 0 || typed == TerminalKey.quit)
        } else {
            withUnsafeBytes(of: &pending) { bytes in
                try? Console(terminalPort).foreground(typedAhead: UnsafeRawBufferPointer(
                    rebasing: bytes[pendingStart..<(pendingStart + pendingCount)]))
            }
            pendingCount = 0
        }
        // Without the notification of its end (a process has four, and the program may have taken
        // them all) the end is looked for every 50 ms instead, so that Ctrl-C still works.
        let watched = (try? ProcessHandles.notify(ended, bits: 1, whenEnds: child.process)) != nil
        while true {
            var handles = InlineArray<2, UInt64>(repeating: 0)
            handles[0] = ended.value
            handles[1] = interrupt.value
            let ready = (try? withUnsafeMutablePointer(to: &handles) { words throws(KernelError) in
                try System.invoke(SystemCall.WaitAny(handles: UserAddress(words), count: 2,
                                                     timeout: watched ? 1_000_000_000 : 50_000_000))
            })?.index
            if ready == 0 {
                _ = try? IPC.wait(ended, timeout: 0)
                return collect(child)
            }
            if !watched {
                do throws(KernelError) {
                    let end = try ProcessHandles.wait(child.process, poll: true)
                    try? IPC.close(child.process)
                    return end
                } catch {
                    // Still running (or its threads still leaving the kernel): look again later.
                    if error != .wouldBlock {
                        try? IPC.close(child.process)
                        return nil
                    }
                }
            }
            if ready == 1 {
                // Bit 1: Ctrl-\, which the program cannot take for itself.
                let bits = (try? IPC.wait(interrupt, timeout: 0)) ?? 1
                end(quit: bits & 2 != 0)
            }
            // The console may have restarted meanwhile, and the new one know nobody to tell of
            // Ctrl-C: it is given our notification again, once a second (a program's own,
            // named through its loan, comes first all the same while the loan lasts).
            if ready == nil { reclaimInterrupt() }
        }
    }
}
