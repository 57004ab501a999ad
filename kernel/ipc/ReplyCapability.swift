// Reply capabilities (core/CallState.swift: `CallReply`): the one-time right to answer a call,
// made for the caller and handed to the server with the message. A thread makes one when it is
// made (Thread.init) and reuses it for every call.

extension CallReply where Waking == SchedulerWaking {
    /// Whether the caller still waits for this answer (it may have been killed meanwhile).
    var isAwaited: Bool {
        !call.finished && caller.callAddress != .none && caller.state == .blocked && !caller.killed
    }

    /// `isAwaited`, by a caller that waits for the answer in its registers: one compare for both.
    var isAwaitedInRegisters: Bool {
        !call.finished && caller.callAddress == .registers && caller.state == .blocked && !caller.killed
    }
}

extension IPC {
    /// The reply capability for `thread`'s next call. A thread has at most one call outstanding,
    /// so the capability is reused: the server's handle to it is removed by the answer (or fails
    /// the call when let go), and a stale handle number never matches again (generations).
    /// It is made with the thread, so a call never allocates, and dropped only when the thread is
    /// released, after which it never calls again.
    static func replyCapability(of thread: Thread) -> ReplyCapability {
        thread.replyCapability.unsafelyUnwrapped
    }
}
