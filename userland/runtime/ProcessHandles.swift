// Typed wrappers over the calls that build and watch a process through a process handle
// (docs/SYSCALLS.md, "Building processes"). ProgramLoader.swift builds programs with them.

public enum ProcessHandles {
    /// A new empty process named `name`: its handle (control, wait, duplicate, transfer) and id.
    /// Its memory account hangs under `account`'s (a process handle with the account right), or
    /// under this process's.
    public static func create(_ name: UnsafeRawBufferPointer, memoryLimit: UInt64 = 0,
                              account: Handle = .none) throws(KernelError) -> (handle: Handle, id: ProcessID) {
        guard let base = name.baseAddress else { throw .invalidArgument }
        let result = try System.invoke(SystemCall.ProcessCreate(name: UserAddress(base), nameLength: UInt64(name.count),
                                                                memoryLimit: memoryLimit, account: account))
        return (result.handle, ProcessID(result.process))
    }

    public static func create(_ name: StaticString, memoryLimit: UInt64 = 0,
                              account: Handle = .none) throws(KernelError) -> (handle: Handle, id: ProcessID) {
        try create(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), memoryLimit: memoryLimit,
                   account: account)
    }

    /// Maps memory object `memory` at `address` in `process`: from byte `offset` (page-aligned),
    /// `bytes` of it (0: through its end).
    public static func map(_ memory: Handle, into process: Handle, at address: UInt64, access: MemoryAccess,
                           offset: UInt64 = 0, bytes: UInt64 = 0) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessMap(process: process, memory: memory, address: UserAddress(address),
                                                    access: access, offset: offset, bytes: bytes))
    }

    /// Moves `handle` into `process`'s table; its value there.
    public static func give(_ handle: Handle, to process: Handle) throws(KernelError) -> Handle {
        try System.invoke(SystemCall.ProcessGive(process: process, handle: handle)).given
    }

    /// Starts `process`'s first thread; its id.
    @discardableResult
    public static func start(_ process: Handle, entry: UInt64, stackTop: UInt64, argument: UInt64 = 0,
                             handle: Handle? = nil, startBlock: UInt64 = 0) throws(KernelError) -> UInt64 {
        try System.invoke(SystemCall.ProcessStart(process: process, entry: UserAddress(entry), stackTop: UserAddress(stackTop),
                                                  argument: argument, handle: handle ?? .none,
                                                  startBlock: UserAddress(startBlock))).thread
    }

    /// How `process` ended, waiting for it unless `poll` (then `wouldBlock` while it runs).
    public static func wait(_ process: Handle, poll: Bool = false) throws(KernelError) -> (reason: ExitReason, code: UInt64) {
        let result = try System.invoke(SystemCall.ProcessWait(process: process, options: poll ? .poll : []))
        return (result.reason, result.code)
    }

    /// `process`'s live threads and its CPU time (sampled at each timer tick).
    public static func info(_ process: Handle) throws(KernelError) -> (threads: UInt64, cpuNanoseconds: UInt64) {
        let result = try System.invoke(SystemCall.ProcessInfo(process: process))
        return (result.threads, result.cpuNanoseconds)
    }

    public static func kill(_ process: Handle) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessKill(process: process))
    }

    /// Has the end of `process` signal `bits` on `notification`.
    public static func notify(_ notification: Handle, bits: UInt64, whenEnds process: Handle) throws(KernelError) {
        _ = try System.invoke(SystemCall.ProcessNotify(process: process, notification: notification, bits: bits))
    }
}
