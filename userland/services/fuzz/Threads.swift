// A worker's other threads. The server thread answers calls on the worker's server port for the
// whole campaign; short-lived extra threads (ThreadSlots) make a few calls of their own and end.
// They share the worker's handle table and address space, so they touch nothing the model keeps,
// and they never allocate: the user heap is not theirs to use (and may be out of memory).

import FuzzRegisters

/// Up to `count` extra threads, each on a stack the main thread maps before and unmaps once the
/// thread has flagged its end (fuzz_finish_thread: nothing touches the stack after the flag).
enum ThreadSlots {
    static let count = 4
    static let stackBytes: UInt64 = 16 << 10
    nonisolated(unsafe) static var records = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    /// 0 while a slot's thread runs; its call count + 1 once it has ended.
    nonisolated(unsafe) static var done = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    /// A slot's stack, 0 when the slot is free.
    nonisolated(unsafe) static var stacks = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    nonisolated(unsafe) static var seeds = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    nonisolated(unsafe) static var calls = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    /// The model's ring of closed handles: values that stay invalid, safe to use from any thread.
    nonisolated(unsafe) static var stale = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    /// A notification and a port (outside the model) that these threads wait on, several at
    /// once, and the main thread signals and sends to; a message buffer per slot.
    nonisolated(unsafe) static var bell: UInt64 = 0
    nonisolated(unsafe) static var port: UInt64 = 0
    nonisolated(unsafe) static var buffers = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    static let bufferWords = 64
    static let pokeLabel: UInt64 = 0x706F_6B65
    nonisolated(unsafe) static var pid: UInt64 = 0
    nonisolated(unsafe) static var mainThread: UInt64 = 0
    /// Calls made by threads that have ended.
    nonisolated(unsafe) static var finishedCalls: UInt64 = 0

    static func prepare(stale: UnsafeMutablePointer<UInt64>, pid: UInt64, mainThread: UInt64, bell: UInt64, port: UInt64) {
        records = Caller.allocateRecords(count)
        buffers = UnsafeMutablePointer<UInt64>.allocate(capacity: count * bufferWords)
        self.bell = bell
        self.port = port
        done = zeroed(count)
        stacks = zeroed(count)
        seeds = zeroed(count)
        calls = zeroed(count)
        self.stale = stale
        self.pid = pid
        self.mainThread = mainThread
    }

    private static func zeroed(_ count: Int) -> UnsafeMutablePointer<UInt64> {
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        storage.initialize(repeating: 0, count: count)
        return storage
    }

    static func freeSlot() -> Int? {
        for slot in 0..<count where stacks[slot] == 0 { return slot }
        return nil
    }

    static func begin(_ slot: Int, stack: UInt64, seed: UInt64, calls: UInt64) {
        stacks[slot] = stack
        done[slot] = 0
        seeds[slot] = seed
        self.calls[slot] = calls
    }

    /// The thread could not be created: the slot is free again (its stack is unmapped by the
    /// caller).
    static func abandon(_ slot: Int) { stacks[slot] = 0 }

    static func finish(_ slot: Int) {
        finishedCalls += done[slot] - 1
        stacks[slot] = 0
        done[slot] = 0
    }

    static func staleHandle(_ index: UInt64) -> UInt64 { stale[Int(index % UInt64(Model.staleCapacity))] }
}

/// The worker's own server: answers every call on its port with the request's label + 1 and
/// payload, closing whatever handles the message brought; a label with `Worker.dropLabel` gets
/// its reply handle closed instead. Now and then it first tries replies the kernel must refuse (a
/// bad buffer, a bad length, a used-up reply handle), which must leave the call unanswered.
enum ServerThread {
    nonisolated(unsafe) static var port: UInt64 = 0
    nonisolated(unsafe) static var buffer: UInt64 = 0
    nonisolated(unsafe) static var record = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    nonisolated(unsafe) static var seed: UInt64 = 0
    /// Messages without a reply handle the main thread sent, and those the server has taken.
    nonisolated(unsafe) static var sent: UInt64 = 0
    nonisolated(unsafe) static var handled: UInt64 = 0
    nonisolated(unsafe) static var calls: UInt64 = 0

    static func start(port: UInt64, seed: UInt64) -> Bool {
        guard let page = try? System.map(bytes: pageSize, access: .write) else { return false }
        self.port = port
        self.seed = seed
        buffer = UInt64(UInt(bitPattern: page))
        record = Caller.allocateRecords(1)
        return (try? System.createThread(stackBytes: 16 << 10) { _ in ServerThread.serve() }) != nil
    }

    static func serve() {
        var caller = Caller(words: record, seed: seed, tag: "server")
        var random = Random(seed: seed ^ 0x7365_7276_6572)
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(buffer))!
        let spare = UnsafeMutablePointer<UInt64>(bitPattern: UInt(buffer + 2048))!
        var answer: UInt64 = 0
        var usedReply: UInt64 = 0
        while true {
            let outcome = caller.make(SystemCallNumber.replyReceive.rawValue, answer, buffer, port, UInt64.max)
            usedReply = answer == 0 ? usedReply : answer
            answer = 0
            calls = UInt64(caller.count)
            guard outcome.succeeded else {
                // A call it has no slot for waits in the queue; anything else is wrong.
                if outcome.status != KernelError.handleTableFull.rawValue {
                    Report.violation("the server thread's replyReceive failed with \(outcome.status)")
                }
                _ = caller.make(SystemCallNumber.sleep.rawValue, 1_000_000, expect: .successUnlessShort)
                continue
            }
            let count = min(Int(words[2]), IPCMessageLayout.maximumHandles)
            for slot in 0..<count {
                _ = caller.make(SystemCallNumber.handleClose.rawValue, words[5 + slot], expect: .success)
            }
            let reply = words[4]
            guard reply != 0 else {
                handled += 1
                continue
            }
            if words[0] & Worker.dropLabel != 0 {
                // Asked to let the call go: closing the reply handle fails it.
                _ = caller.make(SystemCallNumber.handleClose.rawValue, reply, expect: .success)
                usedReply = reply
                continue
            }
            if random.oneIn(4) {
                for word in 0..<IPCMessageLayout.words { spare[word] = words[word] }
                switch random.below(4) {
                case 0:
                    _ = caller.make(SystemCallNumber.reply.rawValue, reply, 0xFFFF_0000_4020_0000, expect: .failure)
                case 1:
                    spare[1] = UInt64(IPCMessageLayout.maximumPayload) + 1
                    _ = caller.make(SystemCallNumber.reply.rawValue, reply, buffer + 2048, expect: .failure)
                case 2:
                    spare[2] = 5
                    _ = caller.make(SystemCallNumber.reply.rawValue, reply, buffer + 2048, expect: .failure)
                default:
                    if usedReply != 0 {
                        _ = caller.make(SystemCallNumber.reply.rawValue, usedReply, buffer, expect: .failure)
                    }
                }
            }
            words[0] &+= 1
            words[2] = 0
            answer = reply
        }
    }
}
