// The shell's commands about programs and services, all through the process manager: ps,
// services, spawn, kill, jobs, crash, test.

enum ProcessCommands {
    /// The programs this shell started in the background and has not seen end: their process
    /// handles, the shell's authority over them (`kill` works on these only).
    nonisolated(unsafe) static var jobs = InlineArray<16, Handle>(repeating: .none)
    nonisolated(unsafe) static var jobIDs = InlineArray<16, UInt64>(repeating: 0)
    nonisolated(unsafe) static var jobNames = InlineArray<16, Printable>(repeating: Printable())

    static var manager: ProcessManager? {
        guard let manager = SystemServices.processManager else {
            System.print("shell: no process manager was given to this shell")
            return nil
        }
        return manager
    }

    /// Calls `body` with every entry of the process manager's list.
    static func forEachEntry(_ manager: ProcessManager, _ body: (ProcessEntry) -> Void) throws(KernelError) {
        var entries = InlineArray<4, ProcessEntry>(repeating: ProcessEntry())
        var first = 0
        while true {
            let (count, total) = try manager.list(from: first, into: &entries)
            for index in 0..<count { body(entries[index]) }
            first += count
            if count == 0 || first >= total { return }
        }
    }

    static func stateName(_ state: ManagedState) -> StaticString {
        switch state {
        case .running: return "running"
        case .exited: return "exited"
        case .faulted: return "faulted"
        case .killed: return "killed"
        case .restartPending: return "restarting"
        case .stopped: return "stopped"
        }
    }

    static func ps(_ words: inout Words) {
        guard let manager else { return }
        // MEMORY is what the kernel holds for it; BY, who asked for it; CPU, sampled at each tick.
        System.print("  PID   BY  STATE        MEMORY  THREADS  CPU ms  KIND     NAME")
        do throws(KernelError) {
            try forEachEntry(manager) { entry in
                let kind: StaticString = entry.isService ? "service" : "program"
                System.print("  \(pad(entry.id, 3))  \(pad(entry.requester, 3))  \(padded(stateName(entry.state), 10))  \(pad(entry.memoryInUse >> 10, 5)) KiB  \(pad(entry.threads, 7))  \(pad(entry.cpuNanoseconds / 1_000_000, 6))  \(padded(kind, 7))  \(Printable(entry.name, entry.nameLength))")
            }
        } catch {
            System.print("ps: the process manager did not answer: \(error)")
        }
        cpus()
    }

    /// One line per online CPU, from the kernel's own counts (`cpuStatistics`): ticks, the share
    /// of them that found the CPU idle, thread switches, system calls, interrupts, threads it
    /// took from other CPUs' queues.
    static func cpus() {
        System.print("  CPU   TICKS  IDLE  SWITCHES  SYSCALLS  INTERRUPTS  STOLEN")
        var online = System.onlineCPUs
        while online != 0 {
            let cpu = online.trailingZeroBitCount
            online &= online - 1
            guard let figures = try? System.cpuStatistics(cpu) else {
                System.print("  \(pad(UInt64(cpu), 3))  figures refused")
                continue
            }
            let idle = figures.ticks == 0 ? 0 : figures.idleTicks * 100 / figures.ticks
            System.print("  \(pad(UInt64(cpu), 3))  \(pad(figures.ticks, 6))  \(pad(idle, 3))%  \(pad(figures.switches, 8))  \(pad(figures.systemCalls, 8))  \(pad(figures.interrupts, 10))  \(pad(figures.steals, 6))")
        }
    }

    static func services(_ words: inout Words) {
        guard let manager else { return }
        System.print("  SERVICE         PID  STATE       RESTARTS  LAST DELAY")
        do throws(KernelError) {
            try forEachEntry(manager) { entry in
                guard entry.isService else { return }
                var name = Printable(entry.name, entry.nameLength)
                while name.count < 14 { name.add(0x20) }
                System.print("  \(name)  \(pad(entry.id, 3))  \(padded(stateName(entry.state), 10))  \(pad(UInt64(entry.restarts), 8))  \(entry.restartDelayMilliseconds) ms")
            }
        } catch {
            System.print("services: the process manager did not answer: \(error)")
        }
    }

    static func spawn(_ words: inout Words) {
        var last = words.count - 1
        let background = last >= 1 && words.equals(last, "&")
        if background { last -= 1 }
        guard last >= 1 else {
            System.print("usage: spawn NAME [ARGS] [&]")
            return
        }
        guard let manager else { return }
        if background && jobCount() == jobs.count {
            System.print("spawn: \(jobs.count) background programs already; kill one first")
            return
        }
        // The program writes to the console this shell writes to; in the foreground it may also
        // read the terminal, through a loan the shell ends when the program does (whoever holds
        // it then, if the program moved it on, loses it).
        var handles = ClientHandles()
        if let console = ConsoleOutput.current, let copy = try? IPC.duplicate(console, rights: [.send, .duplicate, .transfer]) {
            handles.append(.console, copy)
        }
        if !background, let loan = try? Console(ShellState.terminalPort).lend() {
            handles.append(.terminal, loan)
        }
        let result: ChildProcess
        do throws(KernelError) {
            result = try words.with(1) { name throws(KernelError) in
                if last >= 2 {
                    return try words.with(2, through: last) { arguments throws(KernelError) in
                        try manager.spawn(name, arguments: arguments, handles: handles)
                    }
                }
                return try manager.spawn(name, handles: handles)
            }
        } catch {
            if !background { try? Console(ShellState.terminalPort).endLoan() }
            let reason: StaticString = error == .notFound ? "no such program" : "cannot start it"
            System.print("spawn: \(words.text(1)): \(reason) (\(error))")
            return
        }
        let id = result.id.value
        if background {
            addJob(result, name: words.text(1))
            System.print("[\(id)] \(words.text(1)) running in the background")
            return
        }
        guard let end = ShellState.waitForeground(result) else {
            System.print("spawn: process \(id): its end is unknown")
            return
        }
        report(id, words.text(1), end)
    }

    static func report(_ id: UInt64, _ name: Printable, _ end: (reason: ExitReason, code: UInt64)) {
        switch end.reason {
        case .exited: System.print("[\(id)] \(name) exited with code \(end.code)")
        case .faulted: System.print("[\(id)] \(name) faulted (ESR \(hex: end.code))")
        case .killed: System.print("[\(id)] \(name) was killed")
        }
    }

    static func kill(_ words: inout Words) {
        guard words.count == 2, let id = words.number(1) else {
            System.print("usage: kill PID (a program started through the process manager)")
            return
        }
        guard let job = jobIndex(id) else {
            // Not one of ours: a program another client started (which may have ended and left
            // it running), ended through the process manager's control port.
            guard let manager = SystemServices.processManager else {
                System.print("kill: \(id) is not a program this shell started, and no process manager answers")
                return
            }
            do throws(KernelError) {
                try manager.endProgram(UInt64(id))
                System.print("kill: ended process \(id)")
            } catch {
                System.print(error == .notFound ? "kill: \(id) is not a running program (a service's instance is restarted with crash)"
                                                : "kill: \(id): \(error)")
            }
            return
        }
        let child = ChildProcess(process: jobs[job], id: ProcessID(id))
        do throws(KernelError) {
            try System.kill(child)
        } catch {
            System.print("kill: \(id): \(error)")
            return
        }
        // How it ended (killed, or it had ended by itself); the wait closes the handle.
        let name = jobNames[job]
        jobs[job] = .none
        jobIDs[job] = 0
        if let end = ShellState.collect(child) {
            report(id, name, end)
        } else {
            System.print("[\(id)] killed")
        }
    }

    static func jobs(_ words: inout Words) {
        guard jobCount() > 0 else {
            System.print("jobs: none")
            return
        }
        for index in 0..<jobs.count where jobs[index] != .none {
            // The process handle says how it stands, without waiting.
            var state: StaticString = "running"
            if let end = try? ProcessHandles.wait(jobs[index], poll: true) {
                state = end.reason == .exited ? "exited" : end.reason == .faulted ? "faulted" : "killed"
            }
            System.print("  [\(jobIDs[index])] \(state) \(jobNames[index])")
        }
    }

    /// Collects the background programs that have ended, reporting each (their process handles
    /// say so without waiting), and closes their handles.
    static func collectEndedJobs() {
        for index in 0..<jobs.count where jobs[index] != .none {
            guard let end = try? ProcessHandles.wait(jobs[index], poll: true) else { continue }
            let (id, name) = (jobIDs[index], jobNames[index])
            removeJob(at: index)
            report(id, name, end)
        }
    }

    static func jobCount() -> Int {
        var count = 0
        for index in 0..<jobs.count where jobs[index] != .none { count += 1 }
        return count
    }

    static func addJob(_ child: ChildProcess, name: Printable) {
        for index in 0..<jobs.count where jobs[index] == .none {
            jobs[index] = child.process
            jobIDs[index] = child.id.value
            jobNames[index] = name
            return
        }
    }

    static func jobIndex(_ id: UInt64) -> Int? {
        for index in 0..<jobs.count where jobs[index] != .none && jobIDs[index] == id { return index }
        return nil
    }

    /// Forgets job `index` and closes its process handle.
    static func removeJob(at index: Int) {
        try? IPC.close(jobs[index])
        jobs[index] = .none
        jobIDs[index] = 0
    }

    static func crash(_ words: inout Words) {
        guard words.count == 2 else {
            System.print("usage: crash NAME (a service: services lists them)")
            return
        }
        guard let manager else { return }
        do throws(KernelError) {
            let id = try words.with(1) { name throws(KernelError) in try manager.crashService(name) }
            System.print("crash: ended \(words.text(1)) (process \(id)); the process manager restarts it")
        } catch {
            let reason: StaticString = error == .notFound ? "no such service running" : "refused"
            System.print("crash: \(words.text(1)): \(reason) (\(error))")
        }
    }

    /// The services' test program (`restarts`, 100 kills as in `make test`): it kills the memory
    /// manager, the name service and the echo service in turn while using each, and checks that
    /// the kernel holds what it held before.
    static func test(_ words: inout Words) {
        System.print("test: running the services' test (restarts: 100 kills of services in use, then a leak check)")
        guard let manager else { return }
        var handles = ClientHandles()
        if let console = ConsoleOutput.current, let copy = try? IPC.duplicate(console, rights: [.send, .duplicate, .transfer]) {
            handles.append(.console, copy)
        }
        do throws(KernelError) {
            // It crashes services on purpose: it gets this shell's control right, if it has one.
            manager.grantControl(to: &handles)
            let child = try manager.spawn("restarts", argument: 100, handles: handles)
            if let end = ShellState.waitForeground(child) { report(child.id.value, padded("restarts", 0), end) }
        } catch {
            System.print("test: cannot start restarts: \(error)")
        }
    }

    static func pad(_ value: UInt64, _ width: Int) -> Printable {
        var digits = InlineArray<20, UInt8>(repeating: 0)
        var count = 0
        var rest = value
        repeat {
            digits[count] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            count += 1
        } while rest > 0
        var printable = Printable()
        for _ in count..<max(width, count) { printable.add(0x20) }
        for index in (0..<count).reversed() { printable.add(digits[index]) }
        return printable
    }

    static func padded(_ text: StaticString, _ width: Int) -> Printable {
        var printable = Printable()
        for index in 0..<text.utf8CodeUnitCount { printable.add(text.utf8Start[index]) }
        while printable.count < width { printable.add(0x20) }
        return printable
    }
}
