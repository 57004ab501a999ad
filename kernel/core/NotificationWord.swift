// The rules of a notification: a word of bits that any holder of the signal right sets, and
// that one waiting thread takes and clears. Signals never queue: bits set twice before a wait
// are seen once. The kernel's device interrupts and process ends signal it too.

public final class NotificationWord<Waking: WaiterWaking>: KernelObject, KernelObjectType {
    public static var objectKind: KernelObjectKind { .notification }
    public var bits: UInt64 = 0
    /// The one thread waiting for bits, if any. Not counted: a waiter is held elsewhere while it
    /// waits (a thread by its process), and takes itself off before it leaves its wait, woken or
    /// not, so signalling and waiting cost no reference counting. A waiter need not count the
    /// notification either: one that takes its bits at once (`WaiterWaking.takesBitsAtOnce`) is
    /// done with it when a signal wakes it, and one still waiting when the notification ends is
    /// told so (`WaiterWaking.notificationEnded`).
    public var waiter: Unmanaged<Waking.Waiter>?
    /// What its creator paid for it.
    public var charge = MemoryCharge()
    /// Handles with the wait right, wherever they are: created or duplicated ones, until each
    /// leaves every table for good (a move changes nothing). A wait needs one, so once none is
    /// left no wait can begin, and the one under way ends (`isEnded`).
    public private(set) var waitRights = 0

    public init() { super.init(kind: Self.objectKind) }

    deinit {
        if let waiter {
            self.waiter = nil
            waiter._withUnsafeGuaranteedRef { Waking.notificationEnded(waiter: $0) }
        }
        charge.release()
    }

    /// Whether waiting here is over for good: no handle with the wait right is left, though
    /// something else keeps the notification (a thread in a timed wait or `waitAny`, an interrupt
    /// or a process's end bound to it), and signals may still set bits. For `waitAny` it is
    /// ready, as a closed port is; a plain wait ends with `peerClosed`.
    public var isEnded: Bool { waitRights == 0 }

    public override func capabilityAdded(rights: Rights) {
        if rights.contains(.wait) { waitRights += 1 }
    }

    /// The last wait right gone, the waiter (if any) is told, as when the notification itself
    /// ends: nothing could wake it otherwise unless a signal came, and it waits on authority its
    /// process no longer holds.
    public override func capabilityReleased(rights: Rights) {
        guard rights.contains(.wait) else { return }
        waitRights -= 1
        if waitRights == 0, let waiter {
            self.waiter = nil
            waiter._withUnsafeGuaranteedRef { Waking.notificationEnded(waiter: $0) }
        }
    }

    /// Sets `bits` and wakes the waiter, which takes the bits when it runs (or here, if it takes
    /// them at once). Inlined, with the waking out of line: out of line, the signal system call
    /// also pays for the call and for keeping the caller's process retained across it (about 30
    /// instructions), and with the waking inlined, for a larger frame when nothing waits.
    @inline(__always)
    public func signal(_ bits: UInt64) {
        self.bits |= bits
        if waiter != nil { Self.wakeWaiter(of: self) }
    }

    /// `signal` with the waiter woken by `wake` (the kernel's interrupt path hands it the CPU).
    @inline(__always)
    public func signal(_ bits: UInt64, wakingWith wake: (Waking.Waiter) -> Void) {
        self.bits |= bits
        wakeWaiter(wakingWith: wake)
    }

    /// Static, so that the signal's caller need not set aside its own `self` register for it.
    @inline(never)
    static func wakeWaiter(of word: NotificationWord) {
        word.wakeWaiter { Waking.wake($0) }
    }

    /// The waiter, if any, off and woken, with the bits if it takes them at once. Not while no
    /// bit is set: a signal of no bits changes nothing, and its waiter waits on.
    @inline(__always)
    func wakeWaiter(wakingWith wake: (Waking.Waiter) -> Void) {
        guard bits != 0, let waiter else { return }
        self.waiter = nil
        waiter._withUnsafeGuaranteedRef { waiter in
            if Waking.takesBitsAtOnce(bits, waiter) { bits = 0 }
            wake(waiter)
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
