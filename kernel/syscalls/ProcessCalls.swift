// The calls that build, watch and end a process through a process handle: what a user-space
// loader and supervisor need (docs/SYSCALLS.md, "Building processes"). The kernel checks the
// handle's rights and every address; which program goes where is the caller's business.

enum ProcessCalls {
    /// The process `handle` names in `caller`'s table, if the handle holds `rights`.
    static func process(_ handle: Handle, in caller: Process, requiring rights: Rights) throws(KernelError) -> Process {
        try Handles.object(handle, of: Process.self, in: caller, requiring: rights)
    }

    static func create(_ call: SystemCall.ProcessCreate, caller: Process) throws(KernelError) -> SystemCall.ProcessCreate.Result {
        guard call.nameLength > 0, call.nameLength <= UInt64(SystemCalls.maximumNameLength) else { throw .invalidArgument }
        var name = InlineArray<64, UInt8>(repeating: 0)
        try withUnsafeMutableBytes(of: &name) { bytes throws(KernelError) in
            try UserMemory.copyIn(to: bytes.baseAddress!, from: call.name, count: call.nameLength)
        }
        // Whose account it hangs under: a process manager starts its clients' programs on their
        // accounts, not its own.
        let payer = call.account == .none ? caller : try process(call.account, in: caller, requiring: .account)
        guard payer.state == .alive else { throw .notFound }
        // Room in the caller's table first: a process nobody holds would be made for nothing.
        guard caller.handles.freeSlots > 0 else { throw .handleTableFull }
        let process = try withUnsafeBytes(of: &name) { bytes throws(KernelError) in
            try Processes.create(name: UnsafeRawBufferPointer(rebasing: bytes[0..<Int(call.nameLength)]), parent: caller,
                                 account: payer.account, memoryLimit: call.memoryLimit)
        }
        process.createdByHandle = true
        do throws(KernelError) {
            let handle = try Handles.install(process, rights: .newProcess, in: caller, isNew: true)
            return .init(handle: handle, process: process.id)
        } catch {
            Processes.discard(process)
            throw error
        }
    }

    static func map(_ call: SystemCall.ProcessMap, caller: Process) throws(KernelError) {
        guard call.access.isSubset(of: [.write, .execute]), call.access != [.write, .execute] else { throw .invalidArgument }
        let target = try process(call.process, in: caller, requiring: .control)
        // A program is built before it runs: once started, nothing more is placed in it. (What
        // was placed stays shared: its builder may still write an object it mapped executable.)
        guard !target.started else { throw .invalidArgument }
        let needed: Rights = call.access.contains(.write) ? [.map, .write] : [.map]
        let object = try Handles.object(call.memory, of: MemoryObject.self, in: caller, requiring: needed)
        guard object.isRAM else { throw .invalidHandle }
        // Instructions are written before they are mapped, so an on-demand page would be empty.
        guard !(object.onDemand && call.access.contains(.execute)) else { throw .invalidArgument }
        let pages = try pageRange(of: object, offset: call.offset, bytes: call.bytes)
        guard target.state == .alive, let space = target.addressSpace else { throw .notFound }
        var permissions: MappingPermissions = []
        if call.access.contains(.write) { permissions.insert(.write) }
        if call.access.contains(.execute) { permissions.insert(.execute) }
        try space.place(object, pages: pages, at: call.address.value, permissions: permissions)
        if call.access.contains(.execute) {
            // Its builder wrote the instructions through a data mapping of its own; the ramdisk's
            // were made fetchable at boot, and nothing writes them since.
            if !object.isFetchable {
                for page in pages {
                    CPU.cleanToPointOfUnification(PhysicalWindow.pointer(to: PhysicalAddress(object.frames[page])),
                                                  size: Int(pageSize))
                }
            }
            // Even for those: an instruction cache tagged by ASID and address (AIVIVT) may hold an
            // earlier program's lines for this ASID and address.
            CPU.invalidateInstructionCaches()
        }
    }

    /// The pages `processMap` maps: from byte `offset` (page-aligned) of `object`, `bytes` of it
    /// rounded up to pages, or through its end for 0; `invalidArgument` unless they lie in it.
    static func pageRange(of object: MemoryObject, offset: UInt64, bytes: UInt64) throws(KernelError) -> Range<Int> {
        let size = UInt64(object.pageCount) * pageSize
        guard offset & (pageSize - 1) == 0, offset < size else { throw .invalidArgument }
        let length = bytes == 0 ? size - offset : bytes
        guard let rounded = alignUp(length, to: pageSize), rounded <= size - offset else { throw .invalidArgument }
        let first = Int(offset >> pageShift)
        return first..<(first + Int(rounded >> pageShift))
    }

    static func start(_ call: SystemCall.ProcessStart, caller: Process) throws(KernelError) -> UInt64 {
        let target = try process(call.process, in: caller, requiring: .control)
        // As for any thread: an instruction's address, and the top 16 bytes of the stack mapped
        // and writable, where the first pushes go.
        guard call.entry.value & 3 == 0, UserMemory.isUserRange(call.entry, 4), call.stackTop.value & 15 == 0,
              call.stackTop.value >= 16, UserMemory.isUserRange(UserAddress(call.stackTop.value - 16), 16),
              let space = target.addressSpace, space.isWritable(start: call.stackTop.value - 16, size: 16) else {
            throw .invalidArgument
        }
        return try Processes.startFirstThread(of: target, entry: call.entry.value, stack: call.stackTop.value,
                                              argument: call.argument,
                                              start: call.handle == .none ? .none : .moved(call.handle), from: caller,
                                              startBlock: call.startBlock.value)
    }

    /// Moves a handle into the process, receive rights included (as a start handle may be).
    static func give(_ call: SystemCall.ProcessGive, caller: Process) throws(KernelError) -> Handle {
        let target = try process(call.process, in: caller, requiring: .control)
        guard target.state == .alive else { throw .notFound }
        _ = try Handles.lookup(call.handle, in: caller, requiring: .transfer)
        guard target.handles.freeSlots > 0 else { throw .handleTableFull }
        let moved = try Handles.uninstall(call.handle, from: caller, requiring: .transfer)
        return try Handles.install(moved.object, rights: moved.rights, in: target)
    }

    static func wait(_ call: SystemCall.ProcessWait, thread: Thread,
                     caller: Process) throws(KernelError) -> (code: UInt64, reason: ExitReason) {
        guard call.options.isSubset(of: .poll) else { throw .invalidArgument }
        let target = try process(call.process, in: caller, requiring: .wait)
        guard target !== caller else { throw .invalidArgument }
        // A poll of an ended process still waits for its threads to leave the kernel (a short
        // wait, `Processes.wait`): a caller told `wouldBlock` then would have to try again, and a
        // retry loop above the priority of the killed threads would keep them from leaving.
        if call.options.contains(.poll) && target.state != .zombie { throw .wouldBlock }
        return try Processes.wait(for: target, thread: thread, collecting: target.parentID == caller.id)
    }

    static func notify(_ call: SystemCall.ProcessNotify, caller: Process) throws(KernelError) {
        guard call.bits != 0 else { throw .invalidArgument }
        let target = try process(call.process, in: caller, requiring: .wait)
        let notification = try IPC.notification(call.notification, in: caller, requiring: .signal)
        if target.state == .zombie {
            notification.signal(call.bits)
        } else {
            // The same notification again changes its bits; another takes a free binding.
            var free: Int?
            for index in 0..<Process.maximumEndNotifications {
                guard let bound = target.endNotifications[index] else {
                    if free == nil { free = index }
                    continue
                }
                if bound.notification === notification {
                    target.endNotifications[index] = (notification, call.bits)
                    return
                }
            }
            guard let free else { throw .queueFull }
            target.endNotifications[free] = (notification, call.bits)
        }
    }

    /// `memoryAccount`: the caller's account, or that of the process its handle names.
    @inline(never)
    static func account(_ call: SystemCall.MemoryAccount, caller: Process) throws(KernelError) -> MemoryAccount {
        call.process == .none ? caller.account : try process(call.process, in: caller, requiring: .account).account
    }
}
