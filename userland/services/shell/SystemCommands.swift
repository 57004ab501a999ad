// The shell's commands about the machine: mem, ipc, uptime, bench, shutdown.

enum SystemCommands {
    static func mem(_ words: inout Words) {
        // The memory manager first: asked for its figures, it forgets clients that have ended
        // (and closes their process handles), so the kernel's figures read after it are current.
        var clients = InlineArray<48, MemoryClientEntry>(repeating: MemoryClientEntry())
        var clientCount = 0
        var answered = false
        if let memoryManager = try? SystemServices.lookup("memory-manager", attempts: 10) {
            var entries = InlineArray<6, MemoryClientEntry>(repeating: MemoryClientEntry())
            var first = 0
            while let (total, count) = try? MemoryManager(memoryManager.port).statistics(from: first, into: &entries) {
                for index in 0..<count where clientCount < clients.count {
                    clients[clientCount] = entries[index]
                    clientCount += 1
                }
                first += count
                if count == 0 || first >= total {
                    answered = true
                    break
                }
            }
            try? IPC.close(memoryManager.port)
        }
        let frames = System.memory
        let objects = System.kernelObjects
        let heap = System.kernelHeap
        let processes = System.processes
        System.print("mem: frames \(frames.freeFrames) free of \(frames.totalFrames) (\(megabytes: (frames.totalFrames - frames.freeFrames) * 4096) MiB in use)")
        System.print("mem: kernel objects \(objects.objects), \(objects.chargedBytes) bytes charged to processes")
        System.print("mem: kernel heap \(heap.blocks) blocks in \(heap.pages) pages; \(processes.live) processes, \(processes.mappedBytes >> 10) KiB mapped")
        if !answered { System.print("mem: the memory manager did not answer; its figures are left out") }
        // Per process: what the kernel holds for it (through the process manager) and its limit, and, for the memory
        // manager's clients, what it granted and what their account holds.
        guard let manager = ProcessCommands.manager else { return }
        System.print("  PID  NAME            MEMORY KiB  LIMIT KiB  GRANTS  GRANTED KiB  ACCOUNT KiB")
        var listed = false
        try? ProcessCommands.forEachEntry(manager) { entry in
            guard entry.state == .running else { return }
            listed = true
            var name = Printable(entry.name, entry.nameLength)
            while name.count < 14 { name.add(0x20) }
            let limit = entry.memoryLimit == 0 || entry.memoryLimit == .max ? ProcessCommands.padded("     none", 9)
                : ProcessCommands.pad(entry.memoryLimit >> 10, 9)
            var line = TextLine()
            line.write("  ")
            ProcessCommands.pad(entry.id, 3).describe(into: &line)
            line.write("  ")
            name.describe(into: &line)
            line.write("  ")
            ProcessCommands.pad(entry.memoryInUse >> 10, 10).describe(into: &line)
            line.write("  ")
            limit.describe(into: &line)
            for index in 0..<clientCount where clients[index].process == entry.id {
                let client = clients[index]
                line.write("  ")
                ProcessCommands.pad(client.grants, 6).describe(into: &line)
                line.write("  ")
                ProcessCommands.pad(client.grantedBytes >> 10, 11).describe(into: &line)
                line.write("  ")
                ProcessCommands.pad(client.accountUsed >> 10, 11).describe(into: &line)
            }
            System.print(FormattedText(line: line))
        }
        if !listed { System.print("mem: the process manager did not answer; no per-process figures") }
    }

    static func ipc(_ words: inout Words) {
        guard let counters = try? System.invoke(SystemCall.IPCStatistics()) else {
            System.print("ipc: the kernel gives no IPC statistics")
            return
        }
        System.print("ipc: messages delivered \(counters.messages), calls \(counters.calls)")
        let ports = System.ports
        System.print("ipc: ports \(ports.alive), of them \(ports.closed) closed but still named")
        if let console = ConsoleOutput.current, let figures = try? Console(console).statistics() {
            System.print("ipc: console service: \(figures.requests) requests, \(figures.written) bytes written, \(figures.read) bytes read (held back \(figures.heldBack) times, \(figures.dropped) dropped), \(figures.interrupts) interrupts")
        }
    }

    static func uptime(_ words: inout Words) {
        let clock = System.clock
        guard clock.frequency > 0 else { return }
        let milliseconds = clock.milliseconds
        System.print("uptime: \(milliseconds / 1000).\(ProcessCommands.zeroPadded(milliseconds % 1000, 3)) s since boot")
    }

    /// Wall-clock timings in the emulator (not instruction counts: `make bench` gives those).
    static func bench(_ words: inout Words) {
        System.print("bench: wall-clock time per operation in this machine (emulated: varies with the host)")
        let rounds: UInt64 = 2000
        report("null system call", rounds) { _ = try? System.invoke(SystemCall.Null()) }
        report("yield", rounds) { System.yield() }
        if let echo = try? SystemServices.lookup("echo", attempts: 5) {
            report("IPC call to echo, 8 bytes", rounds) {
                var message = IPCMessage(label: 1)
                message.length = 8
                try? IPC.call(echo.port, &message)
            }
            try? IPC.close(echo.port)
        } else {
            System.print("bench: no echo service; IPC not measured")
        }
        if let manager = SystemServices.processManager {
            report("spawn, kill and wait of spinner", 10) {
                if let child = try? manager.spawn("spinner") {
                    try? System.kill(child)
                    _ = ShellState.collect(child)
                }
            }
        }
    }

    static func report(_ what: StaticString, _ rounds: UInt64, _ operation: () -> Void) {
        let start = System.clock
        for _ in 0..<rounds { operation() }
        let end = System.clock
        guard start.frequency > 0 else { return }
        let nanoseconds = end.nanoseconds(since: start) / rounds
        System.print("bench: \(what): \(nanoseconds) ns/op (\(rounds) rounds)")
    }

    /// Asks init, through the power control right it gave this shell, to stop the services and
    /// power the machine off.
    static func shutdown(_ words: inout Words) {
        guard let power = ProgramStart.handle(.powerControl) else {
            System.print("shutdown: this shell was not given power control (devices=power in the manifest)")
            return
        }
        System.print("shutdown: stopping the services and powering off")
        var message = IPCMessage(label: PowerControl.shutdown)
        do throws(KernelError) {
            try IPC.call(power, &message)
        } catch {
            System.print("shutdown: init did not answer: \(error)")
            return
        }
        if message.label != 0 { System.print("shutdown: refused (\(KernelError(rawValue: message.label) ?? .invalidArgument))") }
        // Init now stops every service, this shell among them.
        while true { System.sleep(nanoseconds: 1_000_000_000) }
    }
}

extension ProcessCommands {
    static func zeroPadded(_ value: UInt64, _ width: Int) -> Printable {
        var text = pad(value, width)
        for index in 0..<text.count where text.bytes[index] == 0x20 { text.bytes[index] = UInt8(ascii: "0") }
        return text
    }
}
