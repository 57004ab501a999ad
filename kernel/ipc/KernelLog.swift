// The kernel log as a capability: the console service, once it drives the UART, takes the
// kernel's lines and the programs' debug writes from a queue (core/LogRing.swift) instead of having
// them written to the UART under it, so that each comes out whole between the lines it writes
// itself. Opening the log needs the device-access capability (the authority over the console's
// hardware); the open binds the queue to a notification, signalled when records wait, and gives a
// reader handle. One reader at a time: the queue lasts as long as its reader object, and when the
// last handle goes (closed, or with the console's process) whatever waits is written out straight
// to the UART, and the kernel writes there directly again. A panic always writes directly, after
// the records queued before it.

import Synchronization

/// The reader of the kernel log and its queue.
final class KernelLogReader: KernelObject, KernelObjectType, ChargedObject {
    static var objectKind: KernelObjectKind { .kernelLog }

    /// Room for about a hundred lines written while the console service is busy.
    static let queueBytes = 16 * 1024
    var queue = LogRing(capacity: KernelLogReader.queueBytes)
    let notification: Notification
    let bits: UInt64
    var charge = MemoryCharge()

    init(notification: Notification, bits: UInt64) {
        self.notification = notification
        self.bits = bits
        super.init(kind: Self.objectKind)
    }

    deinit {
        Console.detach(self)
        queue.destroy()
        charge.release()
    }
}

enum KernelLog {
    static let readerRights: Rights = [.receive, .duplicate, .transfer]
    /// The notification bits to signal once the timer tick or a debug write comes by: records were
    /// queued where waking a thread is not safe (under other locks, in the scheduler).
    /// Atomic: set under `Console.lock` on any CPU, taken by `deliverPending` without it.
    static let signalPending = Atomic<Bool>(false)

    /// Makes the log's reader, bound to `notificationHandle` with `bits`, through the
    /// device-access capability behind `accessHandle` (open right).
    static func open(through accessHandle: Handle, notification notificationHandle: Handle, bits: UInt64,
                     process: Process) throws(KernelError) -> Handle {
        let (object, rights) = try Handles.lookup(accessHandle, in: process, requiring: [])
        guard object.isKind(DeviceAccessCapability.self) else { throw .invalidHandle }
        guard rights.contains(.open) else { throw .accessDenied }
        guard bits != 0 else { throw .invalidArgument }
        let notification = try IPC.notification(notificationHandle, in: process, requiring: .signal)
        guard !Console.hasReader else { throw .accessDenied }
        let reader = try KernelMemory.make(.kernelLogReader, for: process.account) {
            KernelLogReader(notification: notification, bits: bits)
        }
        let handle = try Handles.install(reader, rights: readerRights, in: process)
        Console.attach(reader)
        return handle
    }

    /// Moves whole records into the caller's buffer at `buffer` (`capacity` bytes, at least
    /// `LogRing.maximumRecord`); the bytes moved, 0 when none wait. Records that do not reach
    /// the caller (a bad buffer) stay queued; a buffer that faults after some did reach it ends
    /// the read with those (`badAddress` only when none did).
    static func read(_ handle: Handle, into buffer: UserAddress, capacity: UInt64,
                     process: Process) throws(KernelError) -> UInt64 {
        let (object, rights) = try Handles.lookup(handle, in: process, requiring: [])
        guard let reader = object.downcast(to: KernelLogReader.self) else { throw .invalidHandle }
        guard rights.contains(.receive) else { throw .accessDenied }
        guard capacity >= UInt64(LogRing.maximumRecord) else { throw .invalidArgument }
        guard UserMemory.isUserRange(buffer, capacity) else { throw .badAddress }
        // Through a kernel buffer, a record at a time, taken from the queue only once it has
        // reached the caller: a copy that faults loses nothing.
        var staging = InlineArray<512, UInt8>(repeating: 0)
        var moved: UInt64 = 0
        while true {
            let length = withUnsafeMutableBytes(of: &staging) { bytes in Console.copyFirstRecord(of: reader, into: bytes) }
            guard length > 0, moved + UInt64(length) <= capacity else { break }
            do throws(KernelError) {
                try withUnsafeBytes(of: &staging) { bytes throws(KernelError) in
                    try UserMemory.copyOut(to: buffer.advanced(by: moved), from: bytes.baseAddress!, count: UInt64(length))
                }
            } catch {
                // The records before this one reached the caller and left the queue: it must
                // hear of them, so a fault past them ends the read there instead of failing it.
                guard moved > 0 else { throw error }
                break
            }
            Console.dropFirstRecord(of: reader)
            moved += UInt64(length)
        }
        return moved
    }

    /// Signals the reader if records were queued where it could not be (see `signalPending`).
    static func deliverPending() {
        guard signalPending.exchange(false, ordering: .acquiringAndReleasing) else { return }
        if let (notification, bits) = Console.readerNotification() { notification.signal(bits) }
    }
}
