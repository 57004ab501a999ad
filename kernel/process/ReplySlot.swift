// A thread's reply slot: the call it took in registers and has not answered, outside its
// process's handle table. Here, beside the thread, since a thread's release empties it.

/// A thread's reply slot: where a call it takes in registers goes while the slot is empty,
/// instead of its process's handle table; the message's reply handle is then `Handle.replySlot`.
/// This is L4's and seL4's reply slot: a server that answers each call before taking the next,
/// as a server looping in `replyReceiveRegisters` does, never has the capability installed in
/// its table, found there again and removed, nor counted. A second call taken while the slot is
/// full gets a table handle as before, and so does every call taken in memory, so a server that
/// keeps calls to answer later, or hands them to another thread, keeps that way.
///
/// The slot does not count the capability: the caller holds it for as long as it lives, and
/// points back at the slot (`replySlotHolder`). A caller released before the answer gives the
/// slot its reference (`replySlotCounts`); a server thread released with a call in its slot lets
/// it go, which fails the call with `peerClosed` as closing a reply handle does. All of it under
/// the big kernel lock, as every IPC state.
enum ReplySlot {
    /// Puts `reply`, the call of `caller`, in `server`'s empty slot.
    @inline(__always)
    static func fill(_ server: Thread, with reply: ReplyCapability, of caller: Thread) {
        server.replySlot = Unmanaged.passUnretained(reply)
        caller.replySlotHolder = Unmanaged.passUnretained(server)
    }

    /// `fill` by the general path, for a call that may have waited in a port's queue: its
    /// caller may have been released meanwhile (killed), and then nothing but the message held
    /// the capability, so the slot counts it, as `threadReleased` would have had it.
    static func fillGeneral(_ server: Thread, with reply: ReplyCapability) {
        let caller = reply.caller
        guard caller.replyCapability == nil else {
            fill(server, with: reply, of: caller)
            return
        }
        server.replySlot = Unmanaged.passRetained(reply)
        server.replySlotCounts = true
    }

    /// Empties `server`'s slot, whose call the answer used up, while its caller still waits for
    /// the answer (so nothing is kept).
    @inline(__always)
    static func emptyAnswered(_ server: Thread, caller: Thread) {
        server.replySlot = nil
        caller.replySlotHolder = nil
    }

    /// The capability in `thread`'s slot, counted; `invalidHandle` when the slot is empty.
    static func capability(of thread: Thread) throws(KernelError) -> ReplyCapability {
        guard let slot = thread.replySlot else { throw .invalidHandle }
        return slot.takeUnretainedValue()
    }

    /// Empties `thread`'s slot; `lettingGo` also fails its call, as closing a reply handle does
    /// (the answer uses it up instead). `invalidHandle` when the slot is empty.
    static func empty(_ thread: Thread, lettingGo: Bool) throws(KernelError) {
        let reply = try capability(of: thread)
        reply.caller.replySlotHolder = nil
        if thread.replySlotCounts { thread.replySlot.unsafelyUnwrapped.release() }
        thread.replySlot = nil
        thread.replySlotCounts = false
        if lettingGo { reply.fail() }
    }

    /// `thread` is being released, with a call in its slot or in another thread's: the call in
    /// its slot fails, and its own call, still in a server's slot, leaves the capability there,
    /// counted. Out of line: a thread's release tests the two fields first.
    @inline(never)
    static func threadReleased(_ thread: Thread) {
        if thread.replySlot != nil { try? empty(thread, lettingGo: true) }
        if let holder = thread.replySlotHolder, let reply = thread.replyCapability {
            holder._withUnsafeGuaranteedRef { $0.replySlotCounts = true }
            _ = Unmanaged.passUnretained(reply).retain()
            thread.replySlotHolder = nil
        }
    }
}
