// The rules of a port, apart from threads and scheduling: a bounded FIFO of messages, each with
// its payload in the buffer of its queue slot; the threads waiting to receive, oldest first; and
// the port's life, which ends (it closes) when the last handle with the receive right is
// released. Closing drops the queued messages, releasing every handle they carry (so their
// calls fail and their ports may close in turn), and wakes every waiter to find it closed.
// Because receive rights live only in handle tables, never in a queue, a port cannot keep
// itself (or a ring of ports) alive through its own messages: closing the receive handles
// always closes it and drains what it holds.

/// How the IPC rules wake a waiting thread: the scheduler in the kernel, a counter in tests.
public protocol WaiterWaking {
    associatedtype Waiter: AnyObject
    static func wake(_ waiter: Waiter)
    /// A signal hands `bits` to the notification's waiter as it wakes it, if that waiter takes
    /// them at once (true: they are the waiter's now, and the notification's word is cleared).
    /// By default none does, and the waiter takes them from the word when it runs.
    static func takesBitsAtOnce(_ bits: UInt64, _ waiter: Waiter) -> Bool
    /// The notification `waiter` waits on ends (its last reference went) before any signal woke
    /// it. Only a waiter that does not count the notification can be left waiting so; by default
    /// there is none.
    static func notificationEnded(waiter: Waiter)
    /// The machine's count of ports moved: `alive` ports made (+1) or ended (-1), and `closed`
    /// ones, whose receiver is gone while send rights still name them, closed (+1) or ended (-1).
    /// A closed port is no leak while it is named, and a client that has not yet used its send
    /// right since the receiver went still names it; leak checks set such ports apart.
    static func portsCounted(alive: Int, closed: Int)
    /// What a port's charge comes down to once it closes, when its queue and payload buffers
    /// are freed (`MessagePort.close`): the object alone. By default the charge stays whole.
    static var closedPortCharge: UInt64 { get }
    /// Whether `waiter` is one of `holder`'s, waiting to take a message straight into its buffer
    /// (`MessagePort.receiveRightLeft`). By default none is.
    static func receives(_ waiter: Waiter, for holder: AnyObject) -> Bool
    /// Such a waiter, taken off the port's waiters: its receive ends (`peerClosed`) as it wakes.
    static func dismiss(_ waiter: Waiter)
}

extension WaiterWaking {
    public static func takesBitsAtOnce(_ bits: UInt64, _ waiter: Waiter) -> Bool { false }
    public static func notificationEnded(waiter: Waiter) {}
    public static func portsCounted(alive: Int, closed: Int) {}
    public static var closedPortCharge: UInt64 { .max }
    public static func receives(_ waiter: Waiter, for holder: AnyObject) -> Bool { false }
    public static func dismiss(_ waiter: Waiter) { wake(waiter) }
}

/// How many messages a port queues before `send` and `call` get `queueFull`.
public let portQueueCapacity = 16

public final class MessagePort<Waking: WaiterWaking>: KernelObject, KernelObjectType {
    public static var objectKind: KernelObjectKind { .port }
    public typealias Waiter = Waking.Waiter
    public typealias Message = InFlightMessage<KernelObject>

    public var queue = MessageRing<Message>(capacity: portQueueCapacity)
    /// One payload buffer per queue slot; a queued message points into the buffer of its slot.
    /// Freed when the port closes (nil after): nothing is queued on a closed port again.
    private var payloads: UnsafeMutableRawPointer? = UnsafeMutableRawPointer.allocate(
        byteCount: portQueueCapacity * IPCMessageLayout.maximumPayload, alignment: 16)
    /// Threads blocked in `receive` or `waitAny` here, oldest first, linked through their own
    /// wait links.
    public let receivers = WaitList<Waiter>()
    /// Capabilities with the receive right, all in handle tables (a receive right never travels in
    /// a message: MessageTransfer.readIn); when the last is released, the port closes.
    public private(set) var receiveRights = 0
    public private(set) var isClosed = false
    /// What the port's creator paid for it (given back when the port goes).
    public var charge = MemoryCharge()

    public init() {
        super.init(kind: Self.objectKind)
        Waking.portsCounted(alive: 1, closed: 0)
    }

    /// The buffer for the message the next `enqueue` will queue.
    @inline(__always)
    public var nextPayload: UnsafeMutableRawPointer { payload(ofSlot: queue.nextIndex) }

    @inline(__always)
    func payload(ofSlot slot: Int) -> UnsafeMutableRawPointer {
        // Unchecked: every caller found the port open first (a send checks, a receive's message
        // came from the queue), and the check cost the IPC paths an instruction.
        payloads.unsafelyUnwrapped + slot * IPCMessageLayout.maximumPayload
    }

    /// Whether one more message may be sent: a receiver is left and the queue has room.
    public func checkCanSend() throws(KernelError) {
        guard !isClosed else { throw .peerClosed }
        guard !queue.isFull else { throw .queueFull }
    }

    /// Whether a receiver has something to take without waiting: a message, or the news that
    /// the port closed (what `waitAny` waits for).
    public var isReady: Bool { !queue.isEmpty || isClosed }

    /// Queues `message` (the caller checked there is room) at the tail, its payload moved into
    /// the buffer of the slot it takes.
    public func enqueue(_ message: inout Message) {
        let slotPayload = nextPayload
        if message.length > 0, let payload = message.payload, payload != slotPayload {
            slotPayload.copyMemory(from: payload, byteCount: message.length)
        }
        message.payload = slotPayload
        try? queue.push(Self.take(&message))
    }

    /// Gives back a message taken with `queue.pop()` that its receiver could not take: it goes
    /// back to the head, so the port's order is kept and the next receive gets it again.
    public func putBack(_ message: inout Message) {
        let slotPayload = payload(ofSlot: queue.frontIndex)
        if message.length > 0, let payload = message.payload, payload != slotPayload {
            slotPayload.copyMemory(from: payload, byteCount: message.length)
        }
        message.payload = slotPayload
        try? queue.pushFront(Self.take(&message))
    }

    /// `message` moved out, an empty one left in its place. A copy would count a reference up for
    /// every object the message holds, and down again when the caller's message goes.
    @inline(__always)
    static func take(_ message: inout Message) -> Message {
        var taken = Message()
        swap(&taken, &message)
        return taken
    }

    /// A new capability with the receive right (created or duplicated; moving one changes nothing).
    public override func capabilityAdded(rights: Rights) {
        if rights.contains(.receive) { receiveRights += 1 }
    }

    /// `holder` has no receive right here any more (moved or closed): its threads waiting to
    /// receive stop, so that no message goes on into their buffers on the authority it gave up.
    /// (Threads in `waitAny` take nothing: they only learn that something is queued.)
    public override func receiveRightLeft(holder: AnyObject, holdsAnother: () -> Bool) {
        guard receivers.first != nil, !holdsAnother() else { return }
        while let waiter = takeReceiver(where: { Waking.receives($0, for: holder) }) { Waking.dismiss(waiter) }
    }

    /// A capability with the receive right left every table for good; the last one closes the port.
    public override func capabilityReleased(rights: Rights) {
        guard rights.contains(.receive) else { return }
        receiveRights -= 1
        if receiveRights == 0 { close() }
    }

    /// No receiver is left: queued messages are dropped, every handle they carry released, and
    /// every waiter is woken to find the port closed. The queue and payload buffers go at once,
    /// and with them most of the charge: send rights may keep a closed port for as long as their
    /// holders like, and its creator should not pay more than the object for it meanwhile.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Waking.portsCounted(alive: 0, closed: 1)
        queue.drain { message in
            var message = message
            message.releaseAll()
        }
        queue.destroy()
        payloads?.deallocate()
        payloads = nil
        charge.shrink(to: Waking.closedPortCharge)
        receivers.removeAll { waiter in Waking.wake(waiter.takeUnretainedValue()) }
    }

    /// The oldest waiter that `isDirect` accepts, taken off the list (a message can go straight
    /// into its buffer; the others only learn that something is queued).
    public func takeReceiver(where isDirect: (Waiter) -> Bool) -> Waiter? {
        guard let link = receivers.first(where: { $0._withUnsafeGuaranteedRef(isDirect) }) else { return nil }
        receivers.remove(link)
        return link.pointee.waiter.takeUnretainedValue()
    }

    /// The oldest waiter, unretained (the list holds it), for the fast path.
    @inline(__always)
    public var firstReceiver: Unmanaged<Waiter>? { receivers.first?.pointee.waiter }

    /// Drops the oldest waiter from the list (the fast path has just handed it a message, having
    /// found it there with `firstReceiver`).
    @inline(__always)
    public func takeFirstReceiver() {
        if let head = receivers.first { receivers.removeFirst(head) }
    }

    /// Wakes the oldest waiter that `isGone` does not reject; the rejected ones (threads that
    /// ended while waiting) are dropped on the way.
    public func wakeOneReceiver(skipping isGone: (Waiter) -> Bool) {
        while let link = receivers.removeFirst() {
            let waiter = link.takeUnretainedValue()
            if !isGone(waiter) {
                Waking.wake(waiter)
                return
            }
        }
    }

    deinit {
        queue.destroy()
        receivers.destroy()
        payloads?.deallocate()
        charge.release()
        Waking.portsCounted(alive: -1, closed: isClosed ? -1 : 0)
    }
}
