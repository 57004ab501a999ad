// smpstress: every CPU busy with kernel work at once, for the multiprocessor tests. Threads of this
// one process: two servers answering calls on two ports and two callers per CPU making calls and
// checking every answer, all free to run on any CPU, and one mapper kept to each CPU mapping,
// filling, checking and unmapping memory (so that every CPU does kernel work, however the
// scheduler spreads the others); meanwhile the main thread spawns children and kills them while they run
// (wherever that is), and runs others to their exit. Every count is checked at the end: calls
// made = calls answered = messages the servers received, every round of memory intact, every
// child ended as it should. The exit code is the number of errors (0: all well). Start argument 1
// runs another check instead: a page unmapped while another CPU reads it (`unmapWhileRead`).
//
// The worker threads touch no heap (the runtime's heap is the main thread's alone): they share
// one mapped page, `Shared`, and their bodies capture nothing.

import UserSystemCall

@main
struct SMPStress {
    static let callsPerCaller: UInt64 = 300
    static let mapRounds: UInt64 = 60
    static let killRounds = 12
    static let exitRounds = 12

    static func main() {
        if System.startArgument == 1 { unmapWhileRead() }
        let cpus = max(System.onlineCPUs.nonzeroBitCount, 1)
        guard let page = try? System.map(bytes: 4096, access: .write),
              let first = try? IPC.createPort(), let second = try? IPC.createPort() else { System.exit(200) }
        let shared = Shared(base: page.bindMemory(to: UInt64.self, capacity: 512))
        shared.ports = (first.value, second.value)
        let callers = 2 * cpus
        let mappers = cpus
        // Errors by where they were found, for the report of a failed run.
        var setup: UInt64 = 0, kills: UInt64 = 0, exits: UInt64 = 0, unfinished: UInt64 = 0, counts: UInt64 = 0
        // The first kill round that went wrong: 0x1EE spawn refused with error EE, 0x2EE kill
        // refused, 0x3EE wait refused, 0x4RC ended otherwise (reason R, exit code C).
        var firstKillFailure: UInt64 = 0
        var started = 0
        for server in 0..<2 {
            if (try? System.createThread(argument: shared.argument(server)) { SMPStress.serve(Shared(argument: $0)) }) != nil { started += 1 }
        }
        for index in 0..<callers {
            if (try? System.createThread(argument: shared.argument(2 + index)) { SMPStress.callServer(Shared(argument: $0)) }) != nil {
                started += 1
            }
        }
        for index in 0..<mappers {
            if (try? System.createThread(argument: shared.argument(2 + callers + index)) { SMPStress.mapMemory(Shared(argument: $0)) }) != nil {
                started += 1
            }
        }
        if started != 2 + callers + mappers { setup += 100 }

        // The main thread's share: children killed while they run, and children that exit.
        for _ in 0..<killRounds {
            let spinner: ChildProcess
            do throws(KernelError) { spinner = try System.spawn("spinner") } catch {
                kills += 1
                if firstKillFailure == 0 { firstKillFailure = 0x100 | error.rawValue }
                continue
            }
            System.sleep(nanoseconds: 2_000_000)
            let killError = catching { () throws(KernelError) in try System.kill(spinner) }
            var status: (reason: ExitReason, code: UInt64)?
            // Waited for only once killed: a spinner that was not would be waited for for ever.
            let waitError = killError == nil ? catching { () throws(KernelError) in status = try System.wait(spinner) } : nil
            guard killError == nil, waitError == nil, let status, status.reason == .killed else {
                kills += 1
                if firstKillFailure == 0 {
                    firstKillFailure = killError.map { 0x200 | $0.rawValue } ?? waitError.map { 0x300 | $0.rawValue }
                        ?? status.map { 0x400 | $0.reason.rawValue << 4 | $0.code & 0xf } ?? 0x500
                }
                continue
            }
        }
        for _ in 0..<exitRounds {
            guard let child = try? System.spawn("crasher", argument: 9), let status = try? System.wait(child),
                  status.reason == .exited, status.code == 9 else {
                exits += 1
                continue
            }
        }

        // Every worker but the servers reports done; then the servers are told to stop.
        let deadline = System.clock.adding(milliseconds: 60_000)
        while (2..<(2 + callers + mappers)).contains(where: { shared.done($0) == 0 }) && System.clock.ticks < deadline {
            System.sleep(nanoseconds: 1_000_000)
        }
        for port in [first, second] {
            var stop = IPCMessage(label: Shared.stopLabel)
            if (try? IPC.send(port, &stop)) == nil { setup += 1 }
        }
        while (shared.done(0) == 0 || shared.done(1) == 0) && System.clock.ticks < deadline {
            System.sleep(nanoseconds: 1_000_000)
        }
        for index in 0..<(2 + callers + mappers) where shared.done(index) == 0 { unfinished += 1 }

        var answered: UInt64 = 0
        for index in 0..<callers { answered += shared.count(2 + index) }
        let received = shared.count(0) + shared.count(1)
        let expected = UInt64(callers) * callsPerCaller
        if answered != expected || received != expected { counts += 1 }
        for index in 0..<mappers where shared.count(2 + callers + index) != mapRounds { counts += 1 }
        let servers = shared.errors(0) + shared.errors(1)
        var calling: UInt64 = 0
        for index in 0..<callers { calling += shared.errors(2 + index) }
        var mapping: UInt64 = 0
        for index in 0..<mappers { mapping += shared.errors(2 + callers + index) }
        let errors = setup + kills + exits + unfinished + counts + servers + calling + mapping
        System.print("smpstress: \(callers) callers, \(mappers) mappers on \(cpus) CPUs: \(answered) calls answered, \(received) received, \(killRounds) children killed while running, \(exitRounds) exited; \(errors) errors")
        if errors > 0 {
            System.print("smpstress: errors: setup \(setup), kills \(kills) (first 0x\(hex: UInt(firstKillFailure))), exits \(exits), unfinished \(unfinished), counts \(counts), servers \(servers), callers \(calling), mappers \(mapping)")
        }
        try? IPC.close(first)
        try? IPC.close(second)
        System.exit(errors)
    }

    /// Start argument 1: a page unmapped on CPU 0 while a thread on CPU 1 reads it in a loop.
    /// The kernel's TLB invalidation reaches CPU 1, and the reader's next read faults, which ends
    /// the process. Exit code 97: no CPU 1; 98: the reader never ran; 99: it read on unharmed.
    static func unmapWhileRead() -> Never {
        guard System.onlineCPUs & 0b11 == 0b11, (try? System.setAffinity(1)) != nil else { System.exit(97) }
        guard let shared = try? System.map(bytes: 4096, access: .write),
              let page = try? System.map(bytes: 4096, access: .write) else { System.exit(96) }
        // Word 0 of `shared`: the reader's count of reads; word 1: the page's address.
        let counter = UInt64(UInt(bitPattern: shared))
        user_write(counter + 8, UInt64(UInt(bitPattern: page)))
        guard (try? System.createThread(argument: counter) { counter in
            _ = try? System.setAffinity(2)
            let page = user_read(counter + 8)
            while true {
                _ = user_read(page)
                user_write(counter, user_read(counter) &+ 1)
            }
        }) != nil else { System.exit(96) }
        // Reading for a while on CPU 1: its TLB holds the page.
        for _ in 0..<2000 where user_read(counter) < 10_000 { System.sleep(nanoseconds: 1_000_000) }
        guard user_read(counter) >= 10_000 else { System.exit(98) }
        try? System.unmap(page, bytes: 4096)
        // The fault ends the process at once; the time is for a CPU the host seldom runs.
        System.sleep(nanoseconds: 2_000_000_000)
        System.exit(99)
    }

    /// A server: answers each call with its label plus one until the stop message.
    static func serve(_ shared: Shared) {
        let port = Handle(shared.index == 0 ? shared.ports.0 : shared.ports.1)
        while true {
            var message = IPCMessage()
            guard (try? IPC.receive(port, into: &message, timeout: 30_000_000_000)) != nil else {
                shared.addError()
                break
            }
            if message.label == Shared.stopLabel { break }
            shared.addCount()
            guard let reply = message.replyHandle else {
                shared.addError()
                continue
            }
            message.label += 1
            if (try? IPC.reply(reply, &message)) == nil { shared.addError() }
        }
        shared.markDone()
    }

    /// A caller: calls one of the two servers, alternating, and checks every answer.
    static func callServer(_ shared: Shared) {
        let port = Handle(shared.index % 2 == 0 ? shared.ports.0 : shared.ports.1)
        for call in 0..<callsPerCaller {
            let label = UInt64(shared.index) << 32 | (call + 1)
            var message = IPCMessage(label: label)
            if (try? IPC.call(port, &message)) != nil && message.label == label + 1 {
                shared.addCount()
            } else {
                shared.addError()
            }
        }
        shared.markDone()
    }

    /// A mapper: on a CPU of its own, maps 16 KiB, fills it with a pattern of its own, checks it
    /// and unmaps it.
    static func mapMemory(_ shared: Shared) {
        // Mapper m takes the m-th online CPU. Left to the scheduler, a CPU that its host runs
        // seldom could see its threads taken by the others and do no work at all.
        var online = System.onlineCPUs
        for _ in 0..<(shared.index - 2 - 2 * online.nonzeroBitCount) { online &= online &- 1 }
        if online == 0 || (try? System.setAffinity(online & (~online &+ 1))) == nil { shared.addError() }
        let bytes: UInt64 = 16 * 1024
        for round in 0..<mapRounds {
            guard let block = try? System.map(bytes: bytes, access: .write) else {
                shared.addError()
                continue
            }
            let words = block.bindMemory(to: UInt64.self, capacity: Int(bytes / 8))
            let seed = UInt64(shared.index) &* 0x9E37_79B9_7F4A_7C15 &+ round
            for index in 0..<Int(bytes / 8) { words[index] = seed &+ UInt64(index) }
            var intact = true
            for index in 0..<Int(bytes / 8) where words[index] != seed &+ UInt64(index) { intact = false }
            if (try? System.unmap(block, bytes: bytes)) == nil { intact = false }
            if intact { shared.addCount() } else { shared.addError() }
        }
        shared.markDone()
    }
}

/// The page the threads share, and a thread's place in it: its argument is the page's address
/// with the thread's index in the low bits. Words: 0-1 the ports; 64 + i thread i's done flag;
/// 128 + i its count; 192 + i its errors. Each thread writes only its own words.
struct Shared {
    static let stopLabel: UInt64 = 0x5709
    let base: UnsafeMutablePointer<UInt64>
    let index: Int

    init(base: UnsafeMutablePointer<UInt64>, index: Int = 0) {
        self.base = base
        self.index = index
    }

    init(argument: UInt64) {
        self.init(base: UnsafeMutablePointer<UInt64>(bitPattern: UInt(argument & ~0xFFF))!, index: Int(argument & 0xFFF))
    }

    func argument(_ index: Int) -> UInt64 { UInt64(UInt(bitPattern: base)) | UInt64(index) }

    var ports: (UInt64, UInt64) {
        get { (base[0], base[1]) }
        nonmutating set { (base[0], base[1]) = newValue }
    }

    /// Thread `thread`'s done flag; once it reads 1, its count and errors are final and seen.
    func done(_ thread: Int) -> UInt64 { user_load_acquire(address(64 + thread)) }
    func count(_ thread: Int) -> UInt64 { base[128 + thread] }
    func errors(_ thread: Int) -> UInt64 { base[192 + thread] }

    func addCount() { base[128 + index] += 1 }
    func addError() { base[192 + index] += 1 }
    func markDone() { user_store_release(address(64 + index), 1) }

    private func address(_ word: Int) -> UInt64 { UInt64(UInt(bitPattern: base + word)) }
}
