// The life of one call, as its reply capability keeps it: armed when the call is made, then
// finished exactly once, answered or not. A server that lets the capability go unanswered (closes
// it, dies, or the message is dropped with its port) fails the call with `peerClosed`; a failure
// after the answer changes nothing. The caller's `call` returns what the state says.

public struct CallState: Equatable, Sendable {
    public private(set) var finished = false
    /// Why the call failed, once finished: the answer could not be delivered, or never came.
    public private(set) var failure: KernelError?

    public init() {}

    /// A new call of the same thread: the capability is reused.
    @inline(__always)
    public mutating func arm() {
        finished = false
        failure = nil
    }

    /// The server answered (`failure` nil) or its answer could not be delivered.
    @inline(__always)
    public mutating func finish(failure: KernelError?) {
        self.failure = failure
        finished = true
    }

    /// The call ends unanswered, with `failure`: `peerClosed` when the capability was let go,
    /// `handleTableFull` when the server had no room for it. Whether that ended the call (its
    /// caller is to be woken); false when it had ended already.
    public mutating func failUnanswered(_ failure: KernelError = .peerClosed) -> Bool {
        guard !finished else { return false }
        finish(failure: failure)
        return true
    }

    /// What the caller's `call` returns once it runs again: nothing when answered; `peerClosed`
    /// when woken before the call ended (its process is ending); else the failure.
    public func outcome() throws(KernelError) {
        guard finished else { throw .peerClosed }
        if let failure { throw failure }
    }
}

/// The caller's side of a call: the one-time right to answer it, handed to the server with the
/// message. The server answers through it once, straight into the caller's buffer; if it lets go
/// unanswered (closes it, dies, or the message is dropped with its port), the caller wakes with
/// `peerClosed`. A thread has at most one call outstanding, so its capability is made with it
/// and reused for every call.
public final class CallReply<Waking: WaiterWaking>: KernelObject, KernelObjectType {
    public static var objectKind: KernelObjectKind { .reply }
    /// Strong: a server may hold the reply handle after the caller was killed and released, and
    /// its answer must still find the caller (ended) to refuse. The caller's own reference to
    /// this capability is dropped when the caller is released, which breaks the cycle.
    public let caller: Waking.Waiter
    /// The call's life.
    public var call = CallState()

    public init(caller: Waking.Waiter) {
        self.caller = caller
        super.init(kind: Self.objectKind)
    }

    /// Ends the call unanswered with `failure`, if it had not ended, and wakes the caller.
    public func fail(_ failure: KernelError = .peerClosed) {
        if call.failUnanswered(failure) { Waking.wake(caller) }
    }

    /// Let go of unanswered: the call fails.
    public override func capabilityReleased(rights: Rights) { fail() }

    deinit { fail() }
}
