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
