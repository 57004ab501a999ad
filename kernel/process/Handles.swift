// Handles: how a process names kernel objects, through its own table, each with rights
// (core/HandleTable.swift). Objects live as long as a handle or a queued message refers to them
// (reference counting). The table holds them as `KernelObject` (core/KernelObject.swift), so this
// layer needs no kind of object: a handle that leaves every table for good tells its object,
// which may end something (the last receive right closes its port, an unanswered reply
// capability fails its call, the last handle to a process never started ends it).

/// A handle moved with a message or given to a new process: the object and the rights it had in
/// the table it left.
typealias TransferredHandle = MovedHandle<KernelObject>

enum Handles {
    static let tableCapacity = 64

    /// Installs `object` in `process`'s table. A new capability (created or duplicated, not
    /// moved) is counted by its object: a port counts its receive rights wherever they are (in a
    /// table, or on the way to a new process as its start handle), and only a final release
    /// takes one away.
    static func install(_ object: KernelObject, rights: Rights, in process: Process, isNew: Bool = false) throws(KernelError) -> Handle {
        do throws(HandleError) {
            let handle = try process.handles.insert(object, rights: rights)
            if isNew { object.capabilityAdded(rights: rights) }
            return handle
        } catch {
            throw KernelError(error)
        }
    }

    /// Takes `handle` out of `process`'s table, to move it or to release it. A port's last
    /// receive right in the table takes with it the process's threads waiting to receive there
    /// (`KernelObject.receiveRightLeft`).
    static func uninstall(_ handle: Handle, from process: Process, requiring rights: Rights = []) throws(KernelError) -> TransferredHandle {
        do throws(HandleError) {
            let (object, held) = try process.handles.remove(handle, requiring: rights)
            if held.contains(.receive) { receiveRightLeft(object, process) }
            return TransferredHandle(object: object, rights: held)
        } catch {
            throw KernelError(error)
        }
    }

    /// A receive right to `object` left `process`'s table: if it was the last there, the
    /// process's threads waiting to receive on the port stop (`KernelObject.receiveRightLeft`).
    /// Out of line: rare, and the many callers of `uninstall` stay as short as they were.
    @inline(never)
    private static func receiveRightLeft(_ object: KernelObject, _ process: Process) {
        object.receiveRightLeft(holder: process) { holdsReceiveRight(to: object, in: process) }
    }

    /// Whether `process` holds a receive right to `object` (a port) in any of its handles.
    static func holdsReceiveRight(to object: KernelObject, in process: Process) -> Bool {
        process.handles.contains { $0 === object && $1.contains(.receive) }
    }

    /// A second handle to the same object with `rights`, a subset of the original's (which must
    /// hold `.duplicate`): rights only ever shrink.
    static func duplicate(_ handle: Handle, rights: Rights, in process: Process) throws(KernelError) -> Handle {
        let held = try lookup(handle, in: process, requiring: .duplicate)
        guard held.rights.isSuperset(of: rights) else { throw .accessDenied }
        return try install(held.object, rights: rights, in: process, isNew: true)
    }

    static func close(_ handle: Handle, in process: Process) throws(KernelError) {
        try uninstall(handle, from: process).release()
    }

    /// Closes every handle of an ending process, one at a time: ending a process must not need
    /// memory.
    static func closeAll(in process: Process) {
        while let (object, rights) = process.handles.removeAny() {
            object.capabilityReleased(rights: rights)
        }
    }

    /// The object behind `handle` in `process`'s table and the handle's rights, if it holds `rights`.
    @inline(__always)
    static func lookup(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> (object: KernelObject, rights: Rights) {
        do throws(HandleError) {
            return try process.handles.lookup(handle, requiring: rights)
        } catch {
            throw KernelError(error)
        }
    }

    /// The object of kind `Kind` behind `handle`, if the handle holds `rights`; `invalidHandle`
    /// when it names another kind. Inlined: every system call on an object starts here.
    @inline(__always)
    static func object<Kind: KernelObjectType>(_ handle: Handle, of kind: Kind.Type, in process: Process,
                                               requiring rights: Rights) throws(KernelError) -> Kind {
        let object = try lookup(handle, in: process, requiring: rights).object
        guard let object = object.downcast(to: Kind.self) else { throw .invalidHandle }
        return object
    }
}
