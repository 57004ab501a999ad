// The calls that make and map memory objects (docs/SYSCALLS.md, "Memory"): a zeroed object
// installed as a handle, and a handle's object mapped where the caller's address space has room.

enum MemoryCalls {
    /// `memoryCreate`: a zeroed memory object of `bytes` (rounded up to pages), installed in the
    /// caller's table and paid for by the caller, or by the process its account handle names (a
    /// memory manager's clients pay for what it gives them).
    @inline(never)
    static func create(_ call: SystemCall.MemoryCreate, caller: Process) throws(KernelError) -> Handle {
        let payer = call.account == .none ? caller : try ProcessCalls.process(call.account, in: caller, requiring: .account)
        guard call.bytes > 0, let size = alignUp(call.bytes, to: pageSize),
              size / pageSize <= UInt64(MemoryObject.maximumPages) else { throw .invalidArgument }
        let pages = Int(size / pageSize)
        guard payer.state == .alive else { throw .notFound }
        var charge = try KernelMemory.charge(.memoryObject(pages: pages), to: payer.account)
        guard let object = MemoryObject.allocate(pages: pages, charge: charge) else {
            charge.release()
            throw .outOfMemory
        }
        return try Handles.install(object, rights: .newMemory, in: caller, isNew: true)
    }

    /// `memoryMap`: maps the object behind `call.memory` (needs map; writable also needs write;
    /// never executable): where, and how many bytes.
    static func map(_ call: SystemCall.MemoryMap, caller: Process) throws(KernelError) -> SystemCall.MemoryMap.Result {
        guard call.access.isSubset(of: .write), let space = caller.addressSpace else { throw .invalidArgument }
        let needed: Rights = call.access.contains(.write) ? [.map, .write] : [.map]
        let object = try Handles.object(call.memory, of: MemoryObject.self, in: caller, requiring: needed)
        let address = try space.mapShared(object, permissions: call.access.contains(.write) ? .readWrite : .readOnly)
        return .init(address: address, bytes: UInt64(object.pageCount) * pageSize)
    }
}
