// Starting programs as children: `System.spawn` loads a program from the initial ramdisk in this
// process with the program loader (the kernel has no spawn call) and hands the child a read-only
// copy of the ramdisk, so that it may start programs in turn. Programs the process manager starts
// get no ramdisk: they ask the process manager (ProcessManagerProtocol.swift).

/// A child this process started: its process handle (control, wait, duplicate, transfer) and id.
public struct ChildProcess {
    public let process: Handle
    public let id: ProcessID
}

/// The ramdisk this process loads programs from, mapped on first use and kept: init's initial
/// ramdisk, or the copy its parent put in its start block under `.ramdisk`.
enum ProgramSource {
    nonisolated(unsafe) static var loader: ProgramLoader?
    nonisolated(unsafe) static var handle = Handle.none

    static func prepared() throws(KernelError) -> ProgramLoader {
        if let loader { return loader }
        guard let ramdisk = System.initialRamdisk ?? ProgramStart.handle(.ramdisk) else { throw .notFound }
        let made = try ProgramLoader(ramdisk: ramdisk)
        loader = made
        handle = ramdisk
        return made
    }
}

extension System {
    /// Maps the ramdisk `spawn` loads from now, rather than at the first spawn: a program that
    /// compares what it holds before and after some work calls this first. False if there is
    /// none.
    @discardableResult
    public static func prepareSpawn() -> Bool { (try? ProgramSource.prepared()) != nil }

    /// The handle `spawn`'s loader keeps to the ramdisk, once prepared (nil if it has none): for
    /// a program that accounts for every handle it holds.
    public static var spawnHandle: Handle? { ProgramSource.loader?.shared }

    /// Unmaps the ramdisk `spawn` loaded from (the next spawn maps it again).
    public static func releaseSpawn() {
        ProgramSource.loader?.close()
        ProgramSource.loader = nil
    }

    /// Starts program `name` from the ramdisk as a child with `argument` in its x0, moving
    /// `handle` (needs transfer) to it as its start handle. `memoryLimit` caps what the kernel
    /// may hold for it and its descendants, in bytes (0: no cap of its own; this process's still
    /// applies). `notFound` without a ramdisk or without such a program; a handle that was to
    /// move stays here when the spawn fails.
    public static func spawn(_ name: StaticString, argument: UInt64 = 0, handle: Handle? = nil,
                             memoryLimit: UInt64 = 0) throws(KernelError) -> ChildProcess {
        let loader = try ProgramSource.prepared()
        var handles = StartHandles()
        // Without a copy (no memory for it) the child still runs; it just cannot spawn.
        let copy = try? IPC.duplicate(ProgramSource.handle, rights: [.map, .duplicate, .transfer])
        if let copy { handles.append(.ramdisk, copy) }
        do throws(KernelError) {
            let started = try loader.spawn(name, argument: argument, startHandle: handle, handles: handles,
                                           memoryLimit: memoryLimit)
            return ChildProcess(process: started.process, id: ProcessID(started.id))
        } catch {
            if let copy { try? IPC.close(copy) }
            throw error
        }
    }

    /// Waits for `child` to end and collects it; its handle is closed.
    public static func wait(_ child: ChildProcess) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        let status = try ProcessHandles.wait(child.process)
        try? IPC.close(child.process)
        return status
    }

    /// Ends `child`; `wait` still collects it.
    public static func kill(_ child: ChildProcess) throws(KernelError) {
        try ProcessHandles.kill(child.process)
    }
}
