// The calls that make, map and fill memory objects (docs/SYSCALLS.md, "Memory"): a zeroed
// object installed as a handle, a handle's object mapped where the caller's address space has
// room, and bytes copied between an object and the caller without a mapping.

enum MemoryCalls {
    /// `memoryCreate`: a zeroed memory object of `bytes` (rounded up to pages), its pages there
    /// now or taken on first touch (`MemoryOptions.onDemand`), installed in the caller's table and
    /// paid for by the caller, or by the process its account handle names (a memory manager's
    /// clients pay for what it gives them).
    @inline(never)
    static func create(_ call: SystemCall.MemoryCreate, caller: Process) throws(KernelError) -> Handle {
        let payer = call.account == .none ? caller : try ProcessCalls.process(call.account, in: caller, requiring: .account)
        guard call.bytes > 0, let size = alignUp(call.bytes, to: pageSize),
              size / pageSize <= UInt64(MemoryObject.maximumPages), call.options.isSubset(of: .onDemand) else {
            throw .invalidArgument
        }
        let pages = Int(size / pageSize)
        guard payer.state == .alive else { throw .notFound }
        var charge = try KernelMemory.charge(.memoryObject(pages: pages), to: payer.account)
        let made = call.options.contains(.onDemand) ? MemoryObject.allocateOnDemand(pages: pages, charge: charge)
            : MemoryObject.allocate(pages: pages, charge: charge)
        guard let object = made else {
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

    /// `memoryWrite` and `memoryRead`: copies `bytes` between the caller's memory
    /// at `address` and the object's, from byte `offset`, through the kernel's linear map. No
    /// mapping is made or removed, so no table changes and no TLB entry is invalidated: for a
    /// loader, a few pages written this way cost a fraction of a window mapped, filled and
    /// unmapped. Only RAM objects (device registers and DMA memory are mapped with other memory
    /// types, which an alias through the linear map would contradict). A page of an on-demand
    /// object not yet touched is taken here, either way. A source or destination that faults
    /// part-way is `badAddress`; bytes before the fault may have been copied (the copy moves up to
    /// 64 bytes a step).
    static func copy<Direction>(_ call: SystemCall.MemoryCopy<Direction>, caller: Process) throws(KernelError) {
        let (memory, offset, address, bytes) = (call.memory, call.offset, call.address, call.bytes)
        let intoObject = Direction.number == .memoryWrite
        let object = try Handles.object(memory, of: MemoryObject.self, in: caller, requiring: intoObject ? .write : .map)
        let size = UInt64(object.pageCount) * pageSize
        guard object.isRAM, offset <= size, bytes <= size - offset else { throw .invalidArgument }
        guard UserMemory.isUserRange(address, bytes) else { throw .badAddress }
        var done: UInt64 = 0
        var pages: UInt64 = 0
        while done < bytes {
            let position = offset + done
            let inPage = min(pageSize - (position & (pageSize - 1)), bytes - done)
            guard let frame = object.page(Int(position >> pageShift)) else { throw .outOfMemory }
            let kernel = PhysicalWindow.pointer(to: frame) + Int(position & (pageSize - 1))
            if intoObject {
                try UserMemory.copyIn(to: kernel, from: address.advanced(by: done), count: inPage)
            } else {
                try UserMemory.copyOut(to: address.advanced(by: done), from: kernel, count: inPage)
            }
            done += inPage
            pages += 1
            if Interrupts.isTimeToServe(afterPages: pages) { Interrupts.servePending() }
        }
    }
}
