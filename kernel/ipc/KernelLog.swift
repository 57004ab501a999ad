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
    /// The process that opened it (`Console.isRead(by:)`).
    let readerProcess: UInt64
    var charge = MemoryCharge()

    init(notification: Notification, bits: UInt64, readerProcess: UInt64) {
        self.notification = notification
        self.bits = bits
        self.readerProcess = readerProcess
        super.init(kind: Self.objectKind)
    }

    deinit {
        Console.detach(self)
        queue.destroy()
        charge.release()
        // Writes that waited for room go straight to the UART now.
        KernelLog.wakeRoomWaiters()
    }
}

/// A program's `debugWrite` waiting for room in the reader's queue: the thread waits on
/// `KernelLog.roomWaiters` until the reader takes records (`KernelLog.read`) or goes, up to
/// `KernelLog.roomWaitNanoseconds` for the whole write. Past that, or once killed, it no longer
/// waits (`mayWait`), and what is left goes straight to the UART as when there is no reader: a
/// console service that stops reading slows programs' output down, and loses none of it.
struct LogRoomWait {
    let thread: Thread
    private(set) var mayWait: Bool
    private var armed = false

    init(thread: Thread, mayWait: Bool) {
        self.thread = thread
        self.mayWait = mayWait
    }

    /// One wait, until woken, the deadline or a kill. Through the thread's first wait link, which
    /// a thread inside `debugWrite` uses for nothing else.
    mutating func wait() {
        // The reader may not have heard of the records yet (`KernelLog.signalPending`).
        KernelLog.deliverPending()
        if !armed {
            guard (try? IPC.armTimeout(KernelLog.roomWaitNanoseconds, for: thread)) == true else {
                mayWait = false
                return
            }
            armed = true
        }
        let link = thread.receiveLink
        KernelLog.roomWaiters.append(link)
        while link.pointee.isLinked && !thread.sleepExpired && !thread.killed { Scheduler.block() }
        WaitLink.unlink(link)
        if thread.sleepExpired || thread.killed { mayWait = false }
    }

    /// The write is over: its deadline, if one is still due, goes.
    func end() {
        if armed && !thread.sleepExpired { Clock.cancelDeadline(token: thread.id) }
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
            KernelLogReader(notification: notification, bits: bits, readerProcess: process.id)
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
        // Writers waiting for room go on once half the queue is free: woken at every read, each
        // would write a piece and wait again, a switch for every few records.
        if moved > 0 && !roomWaiters.isEmpty && Console.isHalfEmpty(reader) { wakeRoomWaiters() }
        return moved
    }

    /// Threads whose `debugWrite` found the queue full (`LogRoomWait`), through their wait links.
    /// Touched only inside system calls, so under the big kernel lock on a multiprocessor.
    nonisolated(unsafe) static let roomWaiters = WaitList<Thread>()

    /// How long one `debugWrite` waits for room, all its waits together.
    static let roomWaitNanoseconds: UInt64 = 1_000_000_000

    /// The reader took records, or went: every writer waiting for room tries again.
    static func wakeRoomWaiters() {
        roomWaiters.removeAll { Scheduler.wake($0.takeUnretainedValue()) }
    }

    /// Signals the reader if records were queued where it could not be (see `signalPending`).
    static func deliverPending() {
        guard signalPending.exchange(false, ordering: .acquiringAndReleasing) else { return }
        if let (notification, bits) = Console.readerNotification() { notification.signal(bits) }
    }
}
