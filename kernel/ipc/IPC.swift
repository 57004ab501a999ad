// Port-based IPC with capabilities. Ports are bounded message queues; notifications are bit sets
// to signal and wait on; a call carries a one-time reply capability. Objects live as long as a
// handle or a queued message refers to them (reference counting), and the death of the other side
// is an error for whoever waits (`peerClosed`), never a hang.

/// What a handle can name.
enum KernelObject {
    case port(Port)
    case notification(Notification)
    case reply(ReplyCapability)
    case memory(MemoryObject)
    case deviceAccess(DeviceAccessCapability)
    case interrupt(InterruptLine)

    /// The port named, without counting a reference: for the fast path, which reads it in
    /// place from a handle table entry that keeps holding it.
    var unretainedPort: Unmanaged<Port>? {
        if case .port(let port) = self { return Unmanaged.passUnretained(port) }
        return nil
    }

    var unretainedReply: Unmanaged<ReplyCapability>? {
        if case .reply(let reply) = self { return Unmanaged.passUnretained(reply) }
        return nil
    }
}

/// Physical memory that can be mapped into several address spaces: for data too large for a
/// message. Its frames are freed when the last handle and the last mapping are gone.
final class MemoryObject {
    static let maximumPages = 256 // 1 MiB

    let frames: UnsafeMutablePointer<UInt64>
    let pageCount: Int
    /// Device registers rather than RAM: mapped as Device-nGnRE, and not the object's to free.
    let isDevice: Bool

    /// The MMIO pages of a device, for a userspace driver.
    init(device registers: PhysicalRange) {
        let first = alignDown(registers.start.value, to: pageSize)
        let last = alignUp(registers.start.value + registers.size, to: pageSize) ?? first + pageSize
        pageCount = Int((last - first) / pageSize)
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pageCount)
        for page in 0..<pageCount { frames[page] = first + UInt64(page) * pageSize }
        isDevice = true
    }

    /// Zeroed frames for `pages` pages, or nil when memory is short (nothing is kept then).
    init?(pages: Int) {
        guard pages > 0, pages <= Self.maximumPages else { return nil }
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pages)
        pageCount = pages
        isDevice = false
        for page in 0..<pages {
            guard let frame = try? PhysicalFrames.allocate(.user) else {
                for earlier in 0..<page { try? PhysicalFrames.free(PageFrame(number: frames[earlier] >> pageShift)) }
                frames.deallocate()
                return nil
            }
            let pointer = PhysicalWindow.pointer(to: frame.address)
            for word in 0..<Int(pageSize / 8) { pointer.storeBytes(of: UInt64(0), toByteOffset: word * 8, as: UInt64.self) }
            frames[page] = frame.address.value
        }
    }

    deinit {
        if !isDevice {
            for page in 0..<pageCount { try? PhysicalFrames.free(PageFrame(number: frames[page] >> pageShift)) }
        }
        frames.deallocate()
    }
}

/// A handle moved with a message: the object and the rights it had in the sender's table.
struct TransferredHandle {
    var object: KernelObject
    var rights: Rights
}

/// Up to four handles moving with a message. Plain fields rather than an inline array: indexing
/// an inline array stored in a struct can copy the whole array, on every access.
struct HandleSlots {
    var first: TransferredHandle?
    var second: TransferredHandle?
    var third: TransferredHandle?
    var fourth: TransferredHandle?

    subscript(index: Int) -> TransferredHandle? {
        get {
            switch index {
            case 0: return first
            case 1: return second
            case 2: return third
            default: return fourth
            }
        }
        set {
            switch index {
            case 0: first = newValue
            case 1: second = newValue
            case 2: third = newValue
            default: fourth = newValue
            }
        }
    }
}

/// A message inside the kernel, between the copy from the sender and the copy to the receiver.
struct KernelMessage {
    var label: UInt64 = 0
    var length = 0
    var sender: UInt64 = 0
    var handles = HandleSlots()
    var handleCount = 0
    /// The payload's bytes: a 256-byte buffer owned by the port's queue slot or the waiting
    /// caller's thread, so the message itself stays a few words and user data is copied once in
    /// and once out.
    var payload: UnsafeMutableRawPointer?
    var reply: ReplyCapability?
}

final class Port {
    static let queueCapacity = 16

    var queue = MessageRing<KernelMessage>(capacity: Port.queueCapacity)
    /// One payload buffer per queue slot; a queued message points into the buffer of its slot.
    let payloads = UnsafeMutableRawPointer.allocate(byteCount: Port.queueCapacity * IPCMessageLayout.maximumPayload,
                                                    alignment: 16)

    /// The buffer for the message the next push will queue.
    var nextPayload: UnsafeMutableRawPointer { payloads + queue.nextIndex * IPCMessageLayout.maximumPayload }
    /// Threads blocked in `receive` or `waitAny` on this port, oldest first, linked through
    /// their own wait links (one per port a thread can wait on at once, see `Thread.waitLinks`).
    let receivers = WaitList<Thread>()
    /// Handles with the receive right; when the last goes, the port is closed.
    var receiveHandles = 0
    var isClosed = false

    /// No receiver is left: queued messages are dropped (their reply capabilities fail their
    /// callers) and blocked receivers, if any, are woken to find the port closed.
    func close() {
        isClosed = true
        queue.drain { message in
            for index in 0..<message.handleCount { if let handle = message.handles[index] { IPC.released(handle) } }
            message.reply?.fail()
        }
        receivers.removeAll { waiter in Scheduler.wake(waiter.takeUnretainedValue()) }
    }

    /// The first thread blocked in a plain `receive` here, taken off the list: a message can go
    /// straight into its buffer. (Threads in `waitAny` only learn that something is queued.)
    func takeDirectReceiver() -> Thread? {
        guard let link = receivers.first(where: { $0._withUnsafeGuaranteedRef { $0.isAwaitingDirectMessage } }) else {
            return nil
        }
        receivers.remove(link)
        return link.pointee.waiter.takeUnretainedValue()
    }

    /// `thread` waits here in `receive`, ready to take a message straight into `address`.
    func addReceiver(_ thread: Thread, buffer address: UserAddress) {
        thread.receiveAddress = address
        thread.receiveResult = nil
        receivers.append(thread.receiveLink)
    }

    /// Queues `message` (the caller checked there is room), its payload moved into the buffer
    /// of the slot it takes.
    func enqueue(_ message: inout KernelMessage) {
        if message.length > 0, let payload = message.payload, payload != nextPayload {
            nextPayload.copyMemory(from: payload, byteCount: message.length)
        }
        message.payload = nextPayload
        try? queue.push(message)
    }

    /// The oldest waiter, unretained (the list holds it), for the fast path.
    var firstReceiver: Unmanaged<Thread>? { receivers.first?.pointee.waiter }

    /// Drops the oldest waiter from the list (the fast path has just handed it a message).
    func takeFirstReceiver() {
        _ = receivers.removeFirst()
    }

    /// Wakes the oldest live waiter; threads killed while waiting are dropped on the way.
    func wakeOneReceiver() {
        while let waiter = receivers.removeFirst() {
            let thread = waiter.takeUnretainedValue()
            if thread.state != .dead {
                Scheduler.wake(thread)
                return
            }
        }
    }

    deinit {
        queue.destroy()
        receivers.destroy()
        payloads.deallocate()
    }
}

/// A word of bits to signal and wait on: for events without data (device interrupts, wake-ups).
final class Notification {
    var bits: UInt64 = 0
    /// The one thread waiting for bits, if any.
    var waiter: Thread?

    /// Sets `bits` and wakes the waiter: the one signal of `notificationSignal` and of a device
    /// interrupt bound to this notification. Inlined: out of line, `notificationSignal` also pays
    /// for the call and for keeping the caller's process retained across it (about 30 instructions).
    @inline(__always)
    func signal(_ bits: UInt64) {
        self.bits |= bits
        if let waiter {
            self.waiter = nil
            Scheduler.wake(waiter)
        }
    }
}

/// The caller's side of a call: the server answers through it once, straight into the caller's
/// buffer. If the server lets go of it unanswered (closes it, dies, or the message is dropped
/// with its port), the caller wakes with `peerClosed`.
final class ReplyCapability {
    /// Strong: a server may hold the reply handle after the caller was killed and released, and
    /// `reply` must still find the thread (dead) to refuse. The thread's own reference to this
    /// capability is dropped when the thread is released, which breaks the cycle.
    let caller: Thread
    /// Why the call failed, once finished: the answer could not be delivered, or never came.
    var failure: KernelError?
    var finished = false

    init(caller: Thread) { self.caller = caller }

    /// The caller, unretained (this capability holds it), for the fast path.
    var unretainedCaller: Unmanaged<Thread> { Unmanaged.passUnretained(caller) }

    /// Whether the caller still waits for this answer (it may have been killed meanwhile).
    var isAwaited: Bool {
        !finished && caller.callAddress != .none && caller.state == .blocked && !caller.killed
    }

    /// Makes the capability ready for another call of its thread.
    func arm() {
        finished = false
        failure = nil
    }

    /// Ends the call: answered (`failure` nil) or not. The caller is woken by whoever answered.
    func finish(failure: KernelError?) {
        self.failure = failure
        finished = true
    }

    /// Ends the call unanswered and wakes the caller.
    func fail() {
        guard !finished else { return }
        finish(failure: .peerClosed)
        Scheduler.wake(caller)
    }

    /// What the woken caller's `call` returns: nothing once answered, else why not.
    func outcome() throws(KernelError) {
        guard finished else { throw .peerClosed }
        if let failure { throw failure }
    }

    deinit { fail() }
}

enum IPC {
    static let handleTableCapacity = 64

    static func status(_ error: HandleError) -> KernelError {
        switch error {
        case .invalidHandle: return .invalidHandle
        case .accessDenied: return .accessDenied
        case .tableFull: return .handleTableFull
        }
    }

    // MARK: Handles

    /// Installs `object` in `process`'s table. A port counts its receive-right capabilities wherever
    /// they are (in a table or moving inside a message), so only a new capability (created or
    /// duplicated, not moved) adds to the count, and only a final release takes from it.
    static func install(_ object: KernelObject, rights: Rights, in process: Process, isNew: Bool = false) throws(KernelError) -> Handle {
        do throws(HandleError) {
            let handle = try process.handles.insert(object, rights: rights)
            if isNew, case .port(let port) = object, rights.contains(.receive) { port.receiveHandles += 1 }
            return handle
        } catch {
            throw status(error)
        }
    }

    /// Takes `handle` out of `process`'s table, closing a port whose last receiver this was.
    static func uninstall(_ handle: Handle, from process: Process, requiring rights: Rights = []) throws(KernelError) -> TransferredHandle {
        do throws(HandleError) {
            let (object, held) = try process.handles.remove(handle, requiring: rights)
            return TransferredHandle(object: object, rights: held)
        } catch {
            throw status(error)
        }
    }

    /// A handle leaving every table for good (closed, dropped with a message, or with its
    /// process): a port loses a receiver; an unanswered call fails.
    static func released(_ transferred: TransferredHandle) {
        switch transferred.object {
        case .port(let port) where transferred.rights.contains(.receive):
            port.receiveHandles -= 1
            if port.receiveHandles == 0 { port.close() }
        case .reply(let capability):
            capability.fail()
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

    /// Closes every handle of an ending process.
    static func closeAll(in process: Process) {
        var held: [TransferredHandle] = []
        process.handles.forEach { object, rights in held.append(TransferredHandle(object: object, rights: rights)) }
        process.handles.removeAll()
        for handle in held { released(handle) }
    }

    // MARK: Messages

    /// Whether a whole `IPCMessage` at `address` lies in user space, 8-byte aligned.
    @inline(__always)
    static func isMessageAddress(_ address: UserAddress) -> Bool {
        address.value & 7 == 0 && UserMemory.isUserRange(address, UInt64(IPCMessageLayout.size))
    }

    /// Reads a message from user memory and takes the handles it lists out of the sender's table.
    /// All or nothing: on an error, the sender keeps every handle. The header passes through the
    /// current thread's `messageHeader`; the payload goes to `payload`.
    static func copyIn(_ message: inout KernelMessage, from address: UserAddress, sender: Process, thread: Thread,
                       payload: UnsafeMutableRawPointer) throws(KernelError) {
        guard address.value & 7 == 0 else { throw .badAddress }
        // The header first; then only as much payload as the message says it carries.
        let header = thread.messageHeader
        try UserMemory.copyIn(to: header, from: address, count: UInt64(IPCMessageLayout.payload))
        let length = header[IPCMessageLayout.length / 8]
        let count = header[IPCMessageLayout.handleCount / 8]
        guard length <= UInt64(IPCMessageLayout.maximumPayload), count <= UInt64(IPCMessageLayout.maximumHandles) else {
            throw .invalidArgument
        }
        if length > 0 {
            let padded = (length + 7) & ~7
            try UserMemory.copyIn(to: payload, from: address.advanced(by: UInt64(IPCMessageLayout.payload)), count: padded)
        }
        // Check every handle first, then move them all.
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<Int(count) {
            for earlier in 0..<index where handles[earlier] == handles[index] { throw .invalidArgument }
            _ = try lookup(Handle(handles[index]), in: sender, requiring: .transfer)
        }
        for index in 0..<Int(count) {
            message.handles[index] = try uninstall(Handle(handles[index]), from: sender)
        }
        message.label = header[IPCMessageLayout.label / 8]
        message.length = Int(length)
        message.handleCount = Int(count)
        message.sender = sender.id
        message.payload = payload
    }

    /// Writes a message to user memory (the current TTBR0's), installing its handles (and reply
    /// capability) in the receiver's table. All or nothing: if they do not fit or the memory is
    /// not writable, the message keeps everything and the error says why. (Handles that reach
    /// the receiver were moved, so counts stay as they are.) The header is built in the current
    /// thread's `messageHeader`, `header`.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, receiver: Process,
                        header: UnsafeMutablePointer<UInt64>) throws(KernelError) {
        guard isMessageAddress(address) else { throw .badAddress }
        let needed = message.handleCount + (message.reply == nil ? 0 : 1)
        guard receiver.handles.capacity - receiver.handles.count >= needed else { throw .handleTableFull }
        header[IPCMessageLayout.label / 8] = message.label
        header[IPCMessageLayout.length / 8] = UInt64(message.length)
        header[IPCMessageLayout.handleCount / 8] = UInt64(message.handleCount)
        header[IPCMessageLayout.sender / 8] = message.sender
        header[IPCMessageLayout.replyHandle / 8] = 0
        let handles = header + IPCMessageLayout.handles / 8
        for index in 0..<IPCMessageLayout.maximumHandles { handles[index] = 0 }
        // Room was checked, so every install succeeds.
        for index in 0..<message.handleCount {
            guard let transferred = message.handles[index],
                  let handle = try? install(transferred.object, rights: transferred.rights, in: receiver) else { continue }
            handles[index] = handle.value
            message.handles[index] = nil
        }
        if let reply = message.reply, let handle = try? install(.reply(reply), rights: .reply, in: receiver) {
            header[IPCMessageLayout.replyHandle / 8] = handle.value
        }
        do throws(KernelError) {
            try UserMemory.copyOut(to: address, from: header, count: UInt64(IPCMessageLayout.payload))
            if message.length > 0, let payload = message.payload {
                let padded = UInt64((message.length + 7) & ~7)
                try UserMemory.copyOut(to: address.advanced(by: UInt64(IPCMessageLayout.payload)), from: payload,
                                       count: padded)
            }
        } catch {
            // Not taken: the handles come back out of the receiver's table into the message.
            for index in 0..<message.handleCount where handles[index] != 0 {
                message.handles[index] = try? uninstall(Handle(handles[index]), from: receiver)
            }
            if header[IPCMessageLayout.replyHandle / 8] != 0 {
                _ = try? uninstall(Handle(header[IPCMessageLayout.replyHandle / 8]), from: receiver)
            }
            throw error
        }
        message.reply = nil
    }

    /// Delivers `message` into `target`'s memory at `address` while `thread` runs: with the
    /// target's address space in TTBR0 for the copy.
    static func deliver(_ message: inout KernelMessage, to address: UserAddress, of target: Thread,
                        by thread: Thread) throws(KernelError) {
        guard let process = target.process, target.translationBase != .none else { throw .peerClosed }
        target.translationBase.activate()
        defer { thread.translationBase.activate() }
        try deliver(&message, to: address, receiver: process, header: thread.messageHeader)
    }

    /// Gives a message to the first thread blocked in `receive` on `port`, straight into its
    /// buffer, or else queues it (the caller checked there is room). Returns the receiver that
    /// took it, still blocked, for the caller to hand the CPU to or wake.
    static func post(_ message: inout KernelMessage, on port: Port, by thread: Thread) -> Thread? {
        if port.queue.isEmpty, let receiver = port.takeDirectReceiver() {
            do throws(KernelError) {
                try deliver(&message, to: receiver.receiveAddress, of: receiver, by: thread)
                receiver.finishReceive(.delivered)
                return receiver
            } catch {
                // Its receive fails with the reason, and the message waits in the queue instead.
                receiver.finishReceive(.failed(error))
                Scheduler.wake(receiver)
            }
        }
        port.enqueue(&message)
        port.wakeOneReceiver()
        return nil
    }

    // MARK: Calls

    /// The object behind `handle` in `process`'s table and the handle's rights, if it holds `rights`.
    static func lookup(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> (object: KernelObject, rights: Rights) {
        do throws(HandleError) {
            return try process.handles.lookup(handle, requiring: rights)
        } catch {
            throw status(error)
        }
    }

    static func port(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Port {
        guard case .port(let port) = try lookup(handle, in: process, requiring: rights).object else { throw .invalidHandle }
        return port
    }

    /// The port behind send handle `handle`, if it can take one more message: a receiver is left
    /// and the queue has room.
    static func portForSending(_ handle: Handle, in process: Process) throws(KernelError) -> Port {
        let port = try port(handle, in: process, requiring: .send)
        guard !port.isClosed else { throw .peerClosed }
        guard !port.queue.isFull else { throw .queueFull }
        return port
    }

    static func send(port handle: Handle, message address: UserAddress, thread: Thread, sender: Process) throws(KernelError) {
        let port = try portForSending(handle, in: sender)
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: sender, thread: thread, payload: port.nextPayload)
        if let receiver = post(&message, on: port, by: thread) { Scheduler.wake(receiver) }
    }

    static func receive(port handle: Handle, message address: UserAddress, timeout: UInt64, thread: Thread,
                        receiver: Process) throws(KernelError) {
        let port = try port(handle, in: receiver, requiring: .receive)
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: receiver)
    }

    /// Takes the next message from `port` into `address`, waiting up to `timeout` nanoseconds.
    /// While the thread waits, a sender delivers straight into its buffer (`post`). `partner`, a
    /// caller just answered by `replyReceive`, runs next if this thread waits, or is woken.
    static func receive(from port: Port, into address: UserAddress, timeout: UInt64, thread: Thread, receiver: Process,
                        handingOffTo partner: Thread? = nil) throws(KernelError) {
        var partner = partner
        defer { if let partner { Scheduler.wake(partner) } }
        // An address that cannot be user memory is refused before waiting; one that is not
        // mapped is found when a message is delivered, which then stays queued.
        guard isMessageAddress(address) else { throw .badAddress }
        var armed = false
        defer { if armed { Clock.cancelDeadline(token: thread.id) } }
        while true {
            // A thread whose process ended only unwinds: its memory is gone.
            if thread.killed { throw .peerClosed }
            if var message = port.queue.pop() {
                do throws(KernelError) {
                    try deliver(&message, to: address, receiver: receiver, header: thread.messageHeader)
                    return
                } catch {
                    // Not taken: the message goes back (it came from the queue, so there is room).
                    port.enqueue(&message)
                    throw error
                }
            }
            if port.isClosed { throw .peerClosed }
            guard timeout > 0 else { throw .wouldBlock }
            if !armed {
                armed = armTimeout(timeout, for: thread)
            } else if thread.sleepExpired {
                throw .timedOut
            }
            port.addReceiver(thread, buffer: address)
            Scheduler.block(handingOffTo: partner)
            partner = nil
            // A sender delivered (or tried to) straight into the buffer.
            switch thread.takeReceiveResult() {
            case .delivered: return
            case .failed(let error): throw error
            case nil: removeWaiter(thread, from: port)
            }
        }
    }

    static func call(port handle: Handle, message address: UserAddress, thread: Thread, caller: Process) throws(KernelError) {
        let port = try portForSending(handle, in: caller)
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: caller, thread: thread, payload: port.nextPayload)
        let reply = replyCapability(of: thread)
        reply.arm()
        message.reply = reply
        thread.callAddress = address
        // A server waiting in `receive` has the message already and runs next.
        var server = post(&message, on: port, by: thread)
        while !reply.finished && !thread.killed {
            Scheduler.block(handingOffTo: server)
            server = nil
        }
        if let server { Scheduler.wake(server) }
        thread.callAddress = .none
        try reply.outcome()
    }

    /// The reply capability for `thread`'s next call. A thread has at most one call outstanding,
    /// so the capability is reused: the server's handle to it is removed by the answer (or fails
    /// the call when let go), and a stale handle number never matches again (generations).
    static func replyCapability(of thread: Thread) -> ReplyCapability {
        if let reusable = thread.replyCapability { return reusable }
        let reply = ReplyCapability(caller: thread)
        thread.replyCapability = reply
        return reply
    }

    /// `replyCapability(of:)` unretained (the thread holds it), for the fast path.
    static func reusableReplyCapability(of thread: Thread) -> Unmanaged<ReplyCapability> {
        if let reusable = thread.replyCapability { return Unmanaged.passUnretained(reusable) }
        return Unmanaged.passUnretained(replyCapability(of: thread))
    }

    static func reply(_ handle: Handle, message address: UserAddress, thread: Thread, server: Process) throws(KernelError) {
        Scheduler.wake(try answer(handle, message: address, thread: thread, server: server))
    }

    /// `replyReceive`: answers call `handle` (none if 0), then waits on `port` for the next
    /// message into the same buffer. The answered caller runs while this thread waits, with no
    /// pass through the run queue. With a bad port handle the call is not answered either; a
    /// caller that died meanwhile is no error for the server, which goes on to receive.
    static func replyReceive(reply handle: Handle, message address: UserAddress, port portHandle: Handle,
                             timeout: UInt64, thread: Thread, server: Process) throws(KernelError) {
        let port = try port(portHandle, in: server, requiring: .receive)
        var caller: Thread?
        if handle != .none {
            do throws(KernelError) {
                caller = try answer(handle, message: address, thread: thread, server: server)
            } catch where error != .peerClosed {
                throw error
            }
        }
        try receive(from: port, into: address, timeout: timeout, thread: thread, receiver: server, handingOffTo: caller)
    }

    /// Answers call `handle` with the message at `address`, written straight into the waiting
    /// caller's buffer. Returns the caller, answered but not yet woken; `peerClosed` when the
    /// caller no longer waits (the capability is used up all the same).
    static func answer(_ handle: Handle, message address: UserAddress, thread: Thread, server: Process) throws(KernelError) -> Thread {
        guard case .reply(let capability) = try lookup(handle, in: server, requiring: .reply).object else {
            throw .invalidHandle
        }
        let caller = capability.caller
        guard capability.isAwaited else {
            // The caller was killed while waiting: nobody to answer, and its buffer is gone.
            released(try uninstall(handle, from: server))
            throw .peerClosed
        }
        var message = KernelMessage()
        try copyIn(&message, from: address, sender: server, thread: thread, payload: caller.messageBuffer)
        _ = try uninstall(handle, from: server)
        do throws(KernelError) {
            try deliver(&message, to: caller.callAddress, of: caller, by: thread)
            capability.finish(failure: nil)
        } catch {
            // The caller gets the error; handles it could not take are closed.
            for index in 0..<message.handleCount { if let handle = message.handles[index] { released(handle) } }
            capability.finish(failure: error)
        }
        return caller
    }

    static func notification(_ handle: Handle, in process: Process, requiring rights: Rights) throws(KernelError) -> Notification {
        guard case .notification(let notification) = try lookup(handle, in: process, requiring: rights).object else {
            throw .invalidHandle
        }
        return notification
    }

    static func createMemory(bytes: UInt64, in process: Process) throws(KernelError) -> Handle {
        guard bytes > 0, let size = alignUp(bytes, to: pageSize), size / pageSize <= UInt64(MemoryObject.maximumPages) else {
            throw .invalidArgument
        }
        guard let object = MemoryObject(pages: Int(size / pageSize)) else { throw .outOfMemory }
        return try install(.memory(object), rights: .all, in: process, isNew: true)
    }

    /// Maps memory object `handle` (needs map; writable also needs write; never executable).
    static func mapMemory(_ handle: Handle, access: MemoryAccess, in process: Process) throws(KernelError) -> UserAddress {
        guard access.isSubset(of: .write), let space = process.addressSpace else { throw .invalidArgument }
        let needed: Rights = access.contains(.write) ? [.map, .write] : [.map]
        guard case .memory(let object) = try lookup(handle, in: process, requiring: needed).object else {
            throw .invalidHandle
        }
        return try space.mapShared(object, permissions: access.contains(.write) ? .readWrite : .readOnly)
    }

    static func signal(_ handle: Handle, bits: UInt64, process: Process) throws(KernelError) {
        try notification(handle, in: process, requiring: .signal).signal(bits)
    }

    /// Waits up to `timeout` nanoseconds for bits on notification `handle`; returns them, now clear.
    static func wait(_ handle: Handle, timeout: UInt64, thread: Thread, process: Process) throws(KernelError) -> UInt64 {
        let notification = try notification(handle, in: process, requiring: .wait)
        if notification.bits == 0 {
            guard timeout > 0 else { throw .wouldBlock }
            guard notification.waiter == nil else { throw .accessDenied }
            let armed = armTimeout(timeout, for: thread)
            while notification.bits == 0 && !thread.sleepExpired && !thread.killed {
                notification.waiter = thread
                Scheduler.block()
            }
            notification.waiter = nil
            if armed { Clock.cancelDeadline(token: thread.id) }
            if notification.bits == 0 { throw .timedOut }
        }
        let bits = notification.bits
        notification.bits = 0
        return bits
    }

    // MARK: Waiting

    static let maximumWaitHandles = Thread.waitLinkCount

    /// Whether `object` has something for the caller: a message (or a closed port), or bits.
    static func isReady(_ object: KernelObject) -> Bool {
        switch object {
        case .port(let port): return !port.queue.isEmpty || port.isClosed
        case .notification(let notification): return notification.bits != 0
        default: return false
        }
    }

    /// `waitAny`: the index of the first ready object among up to 8 handles (ports need receive,
    /// notifications need wait), waiting up to `timeout` nanoseconds for one to become ready.
    static func waitAny(handles address: UserAddress, count: UInt64, timeout: UInt64, thread: Thread,
                        process: Process) throws(KernelError) -> UInt64 {
        guard count >= 1, count <= UInt64(maximumWaitHandles) else { throw .invalidArgument }
        var values = InlineArray<8, UInt64>(repeating: 0)
        try withUnsafeMutableBytes(of: &values) { bytes throws(KernelError) in
            try UserMemory.copyIn(to: bytes.baseAddress!, from: address, count: count * 8)
        }
        var objects: [KernelObject] = []
        for index in 0..<Int(count) {
            let (object, rights) = try lookup(Handle(values[index]), in: process, requiring: [])
            switch object {
            case .port: guard rights.contains(.receive) else { throw .accessDenied }
            case .notification(let notification):
                guard rights.contains(.wait) else { throw .accessDenied }
                guard notification.waiter == nil || notification.waiter === thread else { throw .accessDenied }
            default: throw .invalidHandle
            }
            objects.append(object)
        }
        func firstReady() -> Int? {
            for (index, object) in objects.enumerated() where isReady(object) { return index }
            return nil
        }
        if let ready = firstReady() { return UInt64(ready) }
        guard timeout > 0 else { throw .wouldBlock }
        let armed = armTimeout(timeout, for: thread)
        var ready = firstReady()
        while ready == nil && !thread.sleepExpired && !thread.killed {
            // Wait on all of them; whichever becomes ready first wakes this thread.
            for (index, object) in objects.enumerated() {
                switch object {
                case .port(let port):
                    port.receivers.append(thread.waitLinks + index)
                case .notification(let notification): notification.waiter = thread
                default: break
                }
            }
            Scheduler.block()
            for object in objects {
                switch object {
                case .port(let port): removeWaiter(thread, from: port)
                case .notification(let notification): if notification.waiter === thread { notification.waiter = nil }
                default: break
                }
            }
            ready = firstReady()
        }
        if armed { Clock.cancelDeadline(token: thread.id) }
        guard let ready else { throw .timedOut }
        return UInt64(ready)
    }

    /// Arms a deadline `nanoseconds` from now unless it is "for ever"; returns whether it did.
    static func armTimeout(_ nanoseconds: UInt64, for thread: Thread) -> Bool {
        thread.sleepExpired = false
        guard nanoseconds != UInt64.max else { return false }
        let ticks = max(Clock.ticks(forNanoseconds: nanoseconds), 1)
        do throws(TimerQueue.Failure) {
            try Clock.addDeadline(at: Clock.now &+ ticks, token: thread.id)
            return true
        } catch {
            return false
        }
    }

    static func removeWaiter(_ thread: Thread, from port: Port) {
        for index in 0..<Thread.waitLinkCount { port.receivers.remove(thread.waitLinks + index) }
    }
}
