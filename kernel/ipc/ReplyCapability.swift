// Reply capabilities: the one-time right to answer a call, made for the caller and handed to the
// server with the message. A thread makes one on its first call and reuses it.

/// The caller's side of a call: the server answers through it once, straight into the caller's
/// buffer. If the server lets go of it unanswered (closes it, dies, or the message is dropped
/// with its port), the caller wakes with `peerClosed`.
final class ReplyCapability {
    /// Strong: a server may hold the reply handle after the caller was killed and released, and
    /// `reply` must still find the thread (dead) to refuse. The thread's own reference to this
    /// capability is dropped when the thread is released, which breaks the cycle.
    let caller: Thread
    /// The call's life (core/CallState.swift).
    var call = CallState()

    init(caller: Thread) { self.caller = caller }

    /// Whether the caller still waits for this answer (it may have been killed meanwhile).
    var isAwaited: Bool {
        !call.finished && caller.callAddress != .none && caller.state == .blocked && !caller.killed
    }

    /// Ends the call unanswered with `failure`, if it had not ended, and wakes the caller.
    func fail(_ failure: KernelError = .peerClosed) {
        if call.failUnanswered(failure) { Scheduler.wake(caller) }
    }

    deinit { fail() }
}

extension IPC {
    /// The reply capability for `thread`'s next call. A thread has at most one call outstanding,
    /// so the capability is reused: the server's handle to it is removed by the answer (or fails
    /// the call when let go), and a stale handle number never matches again (generations).
    /// It is made with the thread (Thread.init), so a call never allocates, and dropped only when
    /// the thread is released, after which it never calls again.
    static func replyCapability(of thread: Thread) -> ReplyCapability {
        thread.replyCapability.unsafelyUnwrapped
    }
}
