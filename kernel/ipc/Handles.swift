// Kernel objects as processes name them: through handles in their own table, each with rights
// (core/HandleTable.swift). Objects live as long as a handle or a queued message refers to them
// (reference counting); a handle that leaves every table for good may end something: the last
// receive right closes its port, an unanswered reply capability fails its call.

/// What a handle can name.
enum KernelObject {
    case port(Port)
    case notification(Notification)
    case reply(ReplyCapability)
    case memory(MemoryObject)
    case deviceAccess(DeviceAccessCapability)
    case interrupt(InterruptLine)
    case process(Process)
    case kernelLog(KernelLogReader)
}

/// A handle moved with a message: the object and the rights it had in the sender's table.
typealias TransferredHandle = MovedHandle<KernelObject>

enum IPC {
    static let handleTableCapacity = 64

    /// Installs `object` in `process`'s table. A port counts its receive-right capabilities wherever
    /// they are (in a table, or on the way to a new process as its start handle), so only a new
    /// capability (created or duplicated, not moved) adds to the count, and only a final release
    /// takes from it.
    static func install(_ object: KernelObject, rights: Rights, in process: Process, isNew: Bool = false) throws(KernelError) -> Handle {
        do throws(HandleError) {
            let handle = try process.handles.insert(object, rights: rights)
            if isNew, case .port(let port) = object, rights.contains(.receive) { port.receiveRightAdded() }
            if isNew, case .process(let target) = object { target.handleCount += 1 }
            return handle
        } catch {
            throw KernelError(error)
        }
    }

    /// Takes `handle` out of `process`'s table, closing a port whose last receiver this was.
    static func uninstall(_ handle: Handle, from process: Process, requiring rights: Rights = []) throws(KernelError) -> TransferredHandle {
        do throws(HandleError) {
            let (object, held) = try process.handles.remove(handle, requiring: rights)
            return TransferredHandle(object: object, rights: held)
        } catch {
            throw KernelError(error)
        }
    }

    /// A handle leaving every table for good (closed, dropped with a message, or with its
    /// process): a port loses a receiver; an unanswered call fails.
    static func released(_ transferred: TransferredHandle) {
        switch transferred.object {
        case .port(let port) where transferred.rights.contains(.receive):
            port.receiveRightReleased(releasing: released)
        case .reply(let capability):
            capability.fail()
        case .process(let target):
            target.handleReleased()
        default:
            break
        }
    }

    /// A second handle to the same object with `rights`, a subset of the original's (which must
    /// hold `.duplicate`): rights only ever shrink.
    static func duplicate(_ handle: Handle, rights: Rights, in process: Process) throws(KernelError) -> Handle {
        let held = try lookup(handle, in: process, requiring: .duplicate)
        guard held.rights.isSuperset(of: rights) else { throw .accessDenied }
        return try install(held.object, rights: rights, in: process, isNew: true)
    }

    static func close(_ handle: Handle, in process: Process) throws(KernelError) {
        released(try uninstall(handle, from: process))
    }

    /// Closes every handle of an ending process, one at a time: ending a process must not need
    /// memory.
    static func closeAll(in process: Process) {
        while let (object, rights) = process.handles.removeAny() {
            released(TransferredHandle(object: object, rights: rights))
        }
    }

    /// The object behind `handle` in `process`'s table and the handle's rights, if it holds `rights`.
    static func lookup(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> (object: KernelObject, rights: Rights) {
        do throws(HandleError) {
            return try process.handles.lookup(handle, requiring: rights)
        } catch {
            throw KernelError(error)
        }
    }
}
