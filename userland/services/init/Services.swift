// init starts the system's services: the process manager, loaded here with the program loader,
// then, through it, every service of the manifest (`manifest` in the initial ramdisk) in
// dependency order. Each start is reported on the boot log; each manifest line that cannot be used
// is reported with its number and reason, and the valid entries still start.

enum SystemStart {
    /// The process manager, once started: init's send right to it and its process handle.
    nonisolated(unsafe) static var processManager: ProcessManager?
    nonisolated(unsafe) static var processManagerProcess = Handle.none

    nonisolated(unsafe) static var deviceAccess: Handle?
    /// Whether the console belongs to the services (not in test mode, where it carries the test
    /// log): services given the console device or power control start only then.
    nonisolated(unsafe) static var interactive = false
    /// The receive right of init's power control port, made when a service asks for power.
    nonisolated(unsafe) static var powerControl: Handle?
    /// A send right to the terminal: the private port of the service given the console device,
    /// whose copies go to the services given `terminal` (so they start after it).
    nonisolated(unsafe) static var terminal: Handle?
    /// A send right to the disk: the private port of the service given the virtio devices (the
    /// block service), whose copies go to the services given `disk` (so they start after it)
    /// and to the disk test.
    nonisolated(unsafe) static var disk: Handle?
    /// The services started, to stop them at the end of a test run.
    nonisolated(unsafe) static var startedNames = InlineArray<32, ServiceName>(repeating: ServiceName())
    nonisolated(unsafe) static var startedCount = 0

    /// Stops every service and then the process manager, so that a test run ends with nothing
    /// of theirs left (each service's process ends with its stop).
    static func stop() {
        guard let manager = processManager else { return }
        for index in (0..<startedCount).reversed() {
            _ = try? startedNames[index].withBytes { name throws(KernelError) in try manager.stopService(name) }
        }
        try? ProcessHandles.kill(processManagerProcess)
        _ = try? ProcessHandles.wait(processManagerProcess)
        try? IPC.close(processManagerProcess)
        manager.close()
        processManager = nil
    }
    nonisolated(unsafe) static var done = Handle.none

    /// Starts the process manager and the manifest's services, on a thread with a stack large
    /// enough for the manifest reader's fixed storage (init's own stack is 64 KiB), and waits
    /// for it. A service that cannot start is reported and the others still start.
    static func start(deviceAccess: Handle?, interactive: Bool) {
        self.deviceAccess = deviceAccess
        self.interactive = interactive
        do throws(KernelError) {
            done = try IPC.createNotification()
            _ = try System.createThread(stackBytes: 512 * 1024) { _ in
                SystemStart.start()
                try? IPC.signal(SystemStart.done, bits: 1)
            }
            _ = try IPC.wait(done)
            try? IPC.close(done)
        } catch {
            System.print("init: cannot start the services: \(error)")
        }
    }

    /// The work of `start(deviceAccess:)`; false if the process manager could not be started.
    @discardableResult
    static func start() -> Bool {
        guard let ramdisk = System.initialRamdisk else {
            System.print("init: no ramdisk object: no services started")
            return false
        }
        let loader: ProgramLoader
        do throws(KernelError) {
            loader = try ProgramLoader(ramdisk: ramdisk)
        } catch {
            System.print("init: the ramdisk cannot be read: \(error)")
            return false
        }
        defer { loader.close() }
        guard let manager = startProcessManager(loader, ramdisk: ramdisk) else { return false }
        processManager = manager
        guard let text = loader.file(named: UnsafeRawBufferPointer(start: ("manifest" as StaticString).utf8Start, count: 8)) else {
            System.print("init: no manifest in the ramdisk: no services started")
            return true
        }
        let manifest = ServiceManifest(parsing: text)
        for index in 0..<manifest.problemCount { System.print("init: manifest \(manifest.problem(index))") }
        if manifest.problemsLeftOut > 0 { System.print("init: manifest: \(manifest.problemsLeftOut) more problems") }
        let order = manifest.startOrder()
        for index in 0..<order.problemCount { System.print("init: manifest \(order.problem(index))") }
        for position in 0..<order.count {
            let entry = manifest[order[position]]
            if !interactive && !entry.devices.intersection([.console, .power, .terminal]).isEmpty { continue }
            startService(entry, through: manager, deviceAccess: deviceAccess)
        }
        return true
    }

    /// The process manager, started with the loader (ProcessManager.start).
    static func startProcessManager(_ loader: ProgramLoader, ramdisk: Handle) -> ProcessManager? {
        do throws(KernelError) {
            let started = try ProcessManager.start(with: loader, ramdisk: ramdisk)
            processManagerProcess = started.process
            System.print("init: started process-manager (process \(started.id))")
            return started.client
        } catch {
            System.print("init: cannot start process-manager: \(error)")
            return nil
        }
    }

    static func startService(_ entry: ServiceEntry, through manager: ProcessManager, deviceAccess: Handle?) {
        var handles = ClientHandles()
        if !entry.devices.intersection([.console, .virtio]).isEmpty, let deviceAccess,
           let copy = try? IPC.duplicate(deviceAccess, rights: [.open, .duplicate, .transfer]) {
            handles.append(.deviceAccess, copy)
        }
        // Services keep what they are given across restarts: their copy needs duplicate too.
        if entry.devices.contains(.services) { manager.grantControl(to: &handles, rights: [.send, .duplicate, .transfer]) }
        if entry.devices.contains(.power), let copy = sendRight(to: powerControlPort()) {
            handles.append(.powerControl, copy)
        }
        if entry.devices.contains(.terminal) {
            if let copy = sendRight(to: terminal) {
                handles.append(.terminal, copy)
            } else {
                System.print("init: \(entry.name) is given the terminal, but no console service started before it")
            }
        }
        if entry.devices.contains(.disk) {
            if let copy = sendRight(to: disk) {
                handles.append(.disk, copy)
            } else {
                System.print("init: \(entry.name) is given the disk, but no block service started before it")
            }
        }
        // The console driver serves the terminal, and the block service the disk, on a private
        // port: only those it is handed to may read what is typed or hear Ctrl-C, or read and
        // write sectors.
        let servesTerminal = entry.devices.contains(.console), servesDisk = entry.devices.contains(.virtio)
        let options: ServiceOptions = servesTerminal || servesDisk ? .privatePort : []
        do throws(KernelError) {
            let started = try entry.name.withBytes { name throws(KernelError) in
                try entry.program.withBytes { program throws(KernelError) in
                    try entry.arguments.withBytes { arguments throws(KernelError) in
                        try manager.startService(name, program: program, arguments: arguments, policy: entry.restart,
                                                 options: options, handles: handles, memoryLimit: entry.memoryLimit)
                    }
                }
            }
            try? IPC.close(started.port)
            if let privatePort = started.privatePort {
                if servesTerminal {
                    if let terminal { try? IPC.close(terminal) }
                    terminal = privatePort
                } else {
                    if let disk { try? IPC.close(disk) }
                    disk = privatePort
                }
            }
            if startedCount < startedNames.count {
                startedNames[startedCount] = entry.name
                startedCount += 1
            }
            System.print("init: started \(entry.name) (process \(started.id))")
        } catch {
            System.print("init: cannot start \(entry.name): \(error)")
        }
    }

    /// A send right to `port` for a service or test, which keeps it across restarts (so it may
    /// duplicate it) and may pass it on; nil without a port or a copy.
    static func sendRight(to port: Handle?) -> Handle? {
        port.flatMap { try? IPC.duplicate($0, rights: [.send, .duplicate, .transfer]) }
    }

    /// Init's power control port (its receive right kept here), made on first use.
    static func powerControlPort() -> Handle? {
        if let powerControl { return powerControl }
        powerControl = try? IPC.createPort()
        return powerControl
    }
}
