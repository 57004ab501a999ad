// The rules of a notification: a word of bits that any holder of the signal right sets, and
// that one waiting thread takes and clears. Signals never queue: bits set twice before a wait
// are seen once. The kernel's device interrupts and process ends signal it too.

public final class NotificationWord<Waking: WaiterWaking>: KernelObject, KernelObjectType {
    public static var objectKind: KernelObjectKind { .notification }
    public var bits: UInt64 = 0
    /// The one thread waiting for bits, if any.
    public var waiter: Waking.Waiter?
    /// What its creator paid for it.
    public var charge = MemoryCharge()

    public init() { super.init(kind: Self.objectKind) }

    deinit { charge.release() }

    /// Sets `bits` and wakes the waiter, which takes the bits when it runs. Inlined: out of line,
    /// the signal system call also pays for the call and for keeping the caller's process
    /// retained across it (about 30 instructions).
    @inline(__always)
    public func signal(_ bits: UInt64) {
        self.bits |= bits
        if let waiter {
            self.waiter = nil
            Waking.wake(waiter)
        }
    }

    /// The bits set since the last take, now clear.
    public func take() -> UInt64 {
        defer { bits = 0 }
        return bits
    }
}
