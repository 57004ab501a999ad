// Waiting on several objects at once (`waitAny`) and the timeouts every wait shares.

extension IPC {
    static let maximumWaitHandles = Thread.waitLinkCount

    /// Whether `object` has something for the caller: a message (or a closed port), or bits (or
    /// a notification no handle can wait on any more, `isEnded`).
    static func isReady(_ object: KernelObject) -> Bool {
        if let port = object.downcast(to: Port.self) { return port.isReady }
        if let notification = object.downcast(to: Notification.self) { return notification.bits != 0 || notification.isEnded }
        return false
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
        // Fixed storage: a wait must not allocate.
        var objects = InlineArray<8, KernelObject?>(repeating: nil)
        let count = Int(count)
        for index in 0..<count {
            let (object, rights) = try Handles.lookup(Handle(values[index]), in: process, requiring: [])
            if object.isKind(Port.self) {
                guard rights.contains(.receive) else { throw .accessDenied }
            } else if let notification = object.downcast(to: Notification.self) {
                guard rights.contains(.wait) else { throw .accessDenied }
                guard notification.waiter == nil || notification.isWaiter(thread) else { throw .accessDenied }
            } else {
                throw .invalidHandle
            }
            objects[index] = object
        }
        // Inlined: a call for each look costs the wait more than the code it repeats.
        @inline(__always)
        func firstReady() -> Int? {
            for index in 0..<count where isReady(objects[index]!) { return index }
            return nil
        }
        if let ready = firstReady() { return UInt64(ready) }
        guard timeout > 0 else { throw .wouldBlock }
        let armed = try armTimeout(timeout, for: thread)
        var ready = firstReady()
        while ready == nil && !thread.sleepExpired && !thread.killed {
            // A signal clears a notification's waiter as it wakes it: another thread may have
            // begun waiting on one since (and taken its bits). That thread keeps it, as the first
            // look did; nothing of this wait is registered at this point.
            for index in 0..<count {
                if let notification = objects[index]?.downcast(to: Notification.self),
                   notification.waiter != nil && !notification.isWaiter(thread) {
                    if armed { Clock.cancelDeadline(token: thread.id) }
                    throw .accessDenied
                }
            }
            // Wait on all of them; whichever becomes ready first wakes this thread.
            for index in 0..<count {
                if let port = objects[index]?.downcast(to: Port.self) {
                    port.receivers.append(thread.waitLinks + index)
                } else if let notification = objects[index]?.downcast(to: Notification.self) {
                    notification.waiter = Unmanaged.passUnretained(thread)
                }
            }
            Scheduler.block()
            for index in 0..<count {
                if let port = objects[index]?.downcast(to: Port.self) {
                    removeWaiter(thread, from: port)
                } else if let notification = objects[index]?.downcast(to: Notification.self), notification.isWaiter(thread) {
                    notification.waiter = nil
                }
            }
            ready = firstReady()
        }
        if armed { Clock.cancelDeadline(token: thread.id) }
        guard let ready else { throw .timedOut }
        return UInt64(ready)
    }

    /// Arms a deadline `nanoseconds` from now unless it is "for ever"; returns whether it did.
    /// A deadline that cannot be armed fails the wait (`Clock.addDeadline` says why) instead of
    /// letting it wait for ever.
    static func armTimeout(_ nanoseconds: UInt64, for thread: Thread) throws(KernelError) -> Bool {
        thread.sleepExpired = false
        guard nanoseconds != UInt64.max else { return false }
        let ticks = max(Clock.ticks(forNanoseconds: nanoseconds), 1)
        try Clock.addDeadline(at: Clock.now &+ ticks, token: thread.id)
        return true
    }

    static func removeWaiter(_ thread: Thread, from port: Port) {
        for index in 0..<Thread.waitLinkCount { port.receivers.remove(thread.waitLinks + index) }
    }
}
