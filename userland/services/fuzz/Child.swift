// The children a worker starts from this program: victims that block in the kernel until they
// are killed, servers that answer calls on the port they were given, probes that unmap ranges of
// their own that `map` never returned, and floods of sleeping threads (Flood.swift). Every child ends by itself once orphaned (its
// parent id reads 0: a worker that was killed for hanging), so none outlives a campaign.

import UserSystemCall

enum Child {
    static let victim: UInt64 = 1
    static let server: UInt64 = 2
    static let probe: UInt64 = 3
    static let flood: UInt64 = 4
    static let probeKinds = 3
    /// The victim mode that waits on a notification nobody signals, without a timeout: only a
    /// kill ends it.
    static let waitForEver: UInt64 = 7
    /// How long a victim lives if nobody kills it.
    static let victimLifetime: UInt64 = 3_000_000_000
    static let poll: UInt64 = 20_000_000

    static func run(_ options: FuzzOptions) -> UInt64 {
        switch options.calls {
        case victim: return victim(mode: options.seed)
        case server: return serve()
        case probe: return probe(options.seed)
        case flood: return Flood.child(sleeping: options.seed * 1_000_000)
        default: return 1
        }
    }

    static func probeName(_ kind: UInt64) -> StaticString {
        switch kind {
        case 0: return "initial stack"
        case 1: return "program text"
        default: return "program data"
        }
    }

    static var orphaned: Bool { System.parentID.value == 0 }

    static func nanoseconds(since start: UInt64) -> UInt64 {
        System.clock.elapsed(sinceTicks: start, perSecond: 1_000_000_000)
    }

    /// Blocks in one way or another (mode 0-6) until killed, orphaned, or its lifetime is over;
    /// mode 7 (`waitForEver`) until killed.
    static func victim(mode: UInt64) -> UInt64 {
        let start = System.clock.ticks
        let bell = try? IPC.createNotification()
        let port = try? IPC.createPort()
        var message = IPCMessage()
        if mode == 5, let port {
            // A call on its own port, which nobody serves: it waits until killed, or until a
            // second thread closes the port at the end of the victim's life.
            victimPort = port
            _ = try? System.createThread(stackBytes: 16 << 10) { _ in
                let start = System.clock.ticks
                while !Child.orphaned && Child.nanoseconds(since: start) < Child.victimLifetime {
                    System.sleep(nanoseconds: Child.poll)
                }
                try? IPC.close(Child.victimPort)
            }
            try? IPC.call(port, &message)
            return 0
        }
        if mode == waitForEver {
            _ = try? IPC.wait(bell ?? .none)
            return 0
        }
        if mode == 6 {
            // Waits for a victim of its own, which outlives it if it is killed first (and then
            // ends, orphaned).
            let argument = FuzzOptions(role: .child, flags: [], calls: victim, seed: 0).argument
            if let child = try? System.spawn("fuzz", argument: argument) { _ = try? System.wait(child) }
            return 0
        }
        while !orphaned && nanoseconds(since: start) < victimLifetime {
            switch mode {
            case 0: System.sleep(nanoseconds: poll)
            case 1: _ = try? IPC.wait(bell ?? .none, timeout: poll)
            case 2: try? IPC.receive(port ?? .none, into: &message, timeout: poll)
            case 3:
                // Spins in user space for a while: killed while running, not blocked.
                let spinStart = System.clock.ticks
                while nanoseconds(since: spinStart) < poll {}
                System.sleep(nanoseconds: poll)
            default: System.sleep(nanoseconds: victimLifetime)
            }
        }
        return 0
    }

    /// Answers calls on its start handle with label + 1 and the same payload, closing the handles
    /// that arrive (after mapping the memory objects among them); label 0 ends it, and a label
    /// with `Worker.dropLabel` is not answered (its reply handle is closed).
    static func serve() -> UInt64 {
        guard let port = System.startHandle else { return 2 }
        var message = IPCMessage()
        var answer: Handle?
        while true {
            do throws(KernelError) {
                try IPC.replyAndReceive(answer, port, &message, timeout: poll)
            } catch {
                answer = nil
                if error == .timedOut { if orphaned { return 0 } else { continue } }
                return 3
            }
            answer = nil
            // Memory objects stay mapped until this child ends: their frames must outlive the
            // handles, here and in the worker, and go when the last mapping does.
            for index in 0..<min(message.handleCount, IPCMessageLayout.maximumHandles) {
                if let mapped = try? IPC.map(message.handle(index), writable: false) {
                    _ = mapped.load(as: UInt64.self)
                }
                try? IPC.close(message.handle(index))
            }
            guard let reply = message.replyHandle else { continue }
            let label = message.label
            if label & Worker.dropLabel != 0 {
                try? IPC.close(reply)
                continue
            }
            message.label = label &+ 1
            message.handleCount = 0
            if label == 0 {
                try? IPC.reply(reply, &message)
                return 0
            }
            answer = reply
        }
    }

    /// Unmaps its own stack, text or data with the exact ranges the kernel made for them at
    /// spawn: each must be refused. Exits 0 if all were; an accepted one ends it with a fault
    /// (the stack or text is gone) or exit code 1.
    static func probe(_ kind: UInt64) -> UInt64 {
        let unmap = SystemCallNumber.unmap.rawValue
        switch kind {
        case 0:
            let status = user_system_call(unmap, UserSpace.stackTop - UserSpace.stackSize, UserSpace.stackSize, 0, 0, 0, 0).status
            return status == systemCallSuccess ? 1 : 0
        case 1:
            for pages: UInt64 in 1...64 {
                if user_system_call(unmap, Worker.textStart, pages * pageSize, 0, 0, 0, 0).status == systemCallSuccess { return 1 }
            }
            return 0
        default:
            let data = withUnsafeMutablePointer(to: &probeData) { UInt64(UInt(bitPattern: $0)) }
            let page = alignDown(data, to: pageSize)
            for below: UInt64 in 0...8 {
                for pages: UInt64 in 1...16 {
                    if user_system_call(unmap, page - below * pageSize, pages * pageSize, 0, 0, 0, 0).status == systemCallSuccess {
                        return 1
                    }
                }
            }
            return probeData == 0 ? 0 : 4
        }
    }

    /// The port a victim in mode 5 calls, for its second thread to close.
    nonisolated(unsafe) static var victimPort = Handle.none
    /// A variable in the program's data, for the data probe.
    nonisolated(unsafe) static var probeData: UInt64 = 0
}
