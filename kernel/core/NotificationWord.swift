// The rules of a notification: a word of bits that any holder of the signal right sets, and
// that one waiting thread takes and clears. Signals never queue: bits set twice before a wait
// are seen once. The kernel's device interrupts and process ends signal it too.

public final class NotificationWord<Waking: WaiterWaking>: KernelObject, KernelObjectType {
    public static var objectKind: KernelObjectKind { .notification }
    public var bits: UInt64 = 0
    /// The one thread waiting for bits, if any. Not counted: a waiter is held elsewhere while it
    /// waits (a thread by its process), and takes itself off before it leaves its wait, woken or
    /// not, so signalling and waiting cost no reference counting.
    public var waiter: Unmanaged<Waking.Waiter>?
    /// What its creator paid for it.
    public var charge = MemoryCharge()

    public init() { super.init(kind: Self.objectKind) }

    deinit { charge.release() }

    /// Sets `bits` and wakes the waiter, which takes the bits when it runs. Inlined: out of line,
    /// the signal system call also pays for the call and for keeping the caller's process
    /// retained across it (about 30 instructions).
    @inline(__always)
    public func signal(_ bits: UInt64) {
        signal(bits) { Waking.wake($0) }
    }

    /// `signal` with the waiter woken by `wake` (the kernel's interrupt path hands it the CPU).
    @inline(__always)
    public func signal(_ bits: UInt64, wakingWith wake: (Waking.Waiter) -> Void) {
        self.bits |= bits
        if let waiter {
            self.waiter = nil
            waiter._withUnsafeGuaranteedRef { wake($0) }
        }
    }

    /// Whether `thread` is the waiter.
    @inline(__always)
    public func isWaiter(_ thread: Waking.Waiter) -> Bool {
        waiter?.toOpaque() == Unmanaged.passUnretained(thread).toOpaque()
    }

    /// The bits set since the last take, now clear.
    public func take() -> UInt64 {
        defer { bits = 0 }
        return bits
    }
}
