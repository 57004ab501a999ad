// Typed wrappers over the process-building calls (processCreate ... processNotify): what a loader
// needs to make a process from memory objects, and a supervisor to learn of and end it. A process
// handle names one process; its rights say who may build and end it (control) or wait for it.

public enum ProcessControl {
    /// A new, empty process named `name` (1-64 bytes), a child of the caller, with no memory and
    /// no thread; its kernel memory is capped at `memoryLimit` bytes (0: only the caller's caps).
    public static func create(name: UnsafeRawBufferPointer, memoryLimit: UInt64 = 0) throws(KernelError)
        -> (process: Handle, id: UInt64) {
        guard let base = name.baseAddress else { throw .invalidArgument }
        let result = try System.invoke(SystemCall.ProcessCreate(name: UserAddress(base), nameLength: UInt64(name.count),
                                                                memoryLimit: memoryLimit))
        return (result.handle, result.process)
    }

    /// Maps all of memory object `memory` at page-aligned `address` in `process`.
    public static func map(_ process: Handle, _ memory: Handle, at address: UInt64, access: MemoryAccess) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessMap(process: process, memory: memory, address: UserAddress(address),
                                                    access: access))
    }

    /// Starts the first thread of `process` at `entry` with SP = `stackTop`, x0 = `argument`,
    /// x1 = `handle` as moved there, x2 = `startBlock`. Returns the thread's id.
    @discardableResult
    public static func start(_ process: Handle, entry: UInt64, stackTop: UInt64, argument: UInt64, handle: Handle?,
                             startBlock: UInt64) throws(KernelError) -> UInt64 {
        try System.invoke(SystemCall.ProcessStart(process: process, entry: UserAddress(entry), stackTop: UserAddress(stackTop),
                                                  argument: argument, handle: handle ?? .none,
                                                  startBlock: UserAddress(startBlock))).thread
    }

    /// Moves `handle` into `process`'s handle table; its value there.
    public static func give(_ process: Handle, _ handle: Handle) throws(KernelError) -> Handle {
        try System.invoke(SystemCall.ProcessGive(process: process, handle: handle)).given
    }

    /// How `process` ended; with `poll`, `wouldBlock` while it still runs.
    public static func wait(_ process: Handle, poll: Bool = false) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        let result = try System.invoke(SystemCall.ProcessWait(process: process, poll: poll))
        return (result.reason, result.code)
    }

    public static func kill(_ process: Handle) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessKill(process: process))
    }

    /// Makes the end of `process` set `bits` on `notification`.
    public static func notify(_ process: Handle, _ notification: Handle, bits: UInt64) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessNotify(process: process, notification: notification, bits: bits))
    }

    /// Ends `process` if it still runs, waits until it has (collecting it if it is the caller's
    /// child) and closes the handle: nothing of it is left behind. The handle needs control and
    /// wait, as `create` gives it.
    public static func discard(_ process: Handle) {
        // Only a process this kill ended is sure to end: otherwise look, and leave it to the
        // close (which ends one that never started).
        let killed = (try? kill(process)) != nil
        _ = try? wait(process, poll: !killed)
        try? IPC.close(process)
    }
}
