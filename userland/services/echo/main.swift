// echo: a small IPC server for the tests and benchmarks. It serves the port handle it was started
// with: a call is answered with the same payload, label + 1, and the caller's process id in the
// first payload word when the label asks for it; label 0 ends the server. Label 20 hands it a
// memory object, which it maps; label 21 asks for the sum of the first N bytes of that memory
// (N in the first payload word), answered in the first payload word. With start argument 2 the
// handle is a notification instead, which it signals (bit 1) after 20 ms. With start argument 1 it
// exits on its first call without replying, to show that callers of a dead server are not left
// waiting. With start argument 3 it serves from CPU 1 (the cross-core benchmark's server). Label 6
// is answered with 256 bytes (an answer too long for a caller that takes it in registers). With
// start argument 4 it serves with messages in registers (`serveInRegisters`). With start argument
// 5 it is a client instead: one call in registers (label 9) to the port, waiting for the answer
// for as long as it takes (the tests kill it while it waits).
//
// Started as a service (its port in the start block), anyone may look it up and call it, so there
// label 0 is answered like any other and ends nothing, every handle a message carries is closed
// (label 20's once its object is mapped, in place of the one mapped before), and label 21 sums
// no further than the mapped object.

@main
struct Echo {
    static func main() {
        // As a service its port comes in the start block; the tests start it with the port as start handle.
        let servicePort = ProgramStart.handle(.service)
        guard let port = servicePort ?? System.startHandle else { System.panic("echo: started without a port") }
        // Only the tests' own instances end when a caller asks.
        let endsOnRequest = servicePort == nil
        if System.startArgument == 2 {
            // Signal mode: the handle is a notification; set bit 1 after 20 ms.
            System.sleep(nanoseconds: 20_000_000)
            try? IPC.signal(port, bits: 1 << 1)
            System.exit(0)
        }
        if System.startArgument == 3 && (try? System.setAffinity(1 << 1)) == nil {
            System.panic("echo: CPU 1 does not run threads")
        }
        if System.startArgument == 4 { serveInRegisters(port) }
        if System.startArgument == 5 {
            var call = RegisterMessage(label: 9)
            let failed = (try? IPC.callInRegisters(port, &call)) == nil
            System.exit(failed ? 1 : 0)
        }
        var message = IPCMessage()
        var shared: (address: UnsafeMutableRawPointer, bytes: Int)?
        // Each answer goes out with the wait for the next request: one system call per request.
        var answer: Handle?
        while true {
            do throws(KernelError) {
                try IPC.replyAndReceive(answer, port, &message)
            } catch {
                System.panic("echo: receive failed: \(error)")
            }
            answer = nil
            if System.startArgument == 1 { System.exit(3) }
            guard let reply = message.replyHandle else {
                // A plain send: nothing to answer, and nothing kept of what it carries.
                for index in 0..<message.handleCount { try? IPC.close(message.handle(index)) }
                continue
            }
            let label = message.label
            if label == 2 { // "who am I": the sender's id as the kernel reported it
                let sender = message.sender.value
                message.fill(count: 8) { UInt8(truncatingIfNeeded: sender >> (8 * UInt64($0))) }
            } else if label == 20, message.handleCount == 1 {
                // One mapping at a time: the mapping keeps the object, the handle is closed below.
                if let old = shared { try? System.unmap(old.address, bytes: UInt64(old.bytes)) }
                shared = try? IPC.mapWithSize(message.handle(0), writable: false)
            } else if label == 21, let shared {
                // At most the object: its size is the mapping's, whatever the caller asks.
                let count = Int(min(message.word(atByte: 0), UInt64(shared.bytes)))
                var sum: UInt64 = 0
                let words = shared.address.assumingMemoryBound(to: UInt64.self)
                for index in 0..<count / 8 { sum &+= words[index] }
                message.fill(count: 8) { UInt8(truncatingIfNeeded: sum >> (8 * UInt64($0))) }
            } else if label == 6 {
                message.fill(count: IPCMessageLayout.maximumPayload) { UInt8(truncatingIfNeeded: $0) }
            }
            message.label = label &+ 1
            if message.handleCount != 0 {
                message.closeHandles()
                message.handleCount = 0
            }
            if label == 0 && endsOnRequest {
                try? IPC.reply(reply, &message)
                System.exit(0)
            }
            answer = reply
        }
    }

    /// Serves with messages in registers: the same answers (label + 1, the same payload; label 2
    /// the sender's id; label 0 ends it), and label 4 is answered with all 64 bytes of the
    /// payload registers as they arrived, to show the words past the length came as zero. Label 8
    /// ends it (exit code 3) without an answer, holding the call. A
    /// message that does not fit in registers stays queued (`messageTooLong`): it is taken with
    /// `receive` and answered in memory, label + 1, its handles closed.
    static func serveInRegisters(_ port: Handle) -> Never {
        var message = RegisterMessage()
        var answer: Handle?
        while true {
            do throws(KernelError) {
                try IPC.replyAndReceiveInRegisters(answer, port, &message)
            } catch {
                answer = nil
                guard error == .messageTooLong else { System.panic("echo: receive in registers failed: \(error)") }
                var long = IPCMessage()
                do throws(KernelError) {
                    try IPC.receive(port, into: &long, timeout: 0)
                } catch {
                    System.panic("echo: a message too long for registers was not queued: \(error)")
                }
                // Written out: `closeHandles()` here changed the registers of the serving loop
                // above and cost each call in registers 16 instructions.
                for index in 0..<long.handleCount { try? IPC.close(long.handle(index)) }
                long.handleCount = 0
                long.label &+= 1
                if let reply = long.replyHandle { try? IPC.reply(reply, &long) }
                continue
            }
            answer = message.replyHandle
            guard let reply = answer else { continue } // a plain send: nothing to answer
            let label = message.label
            if label == 8 { System.exit(3) }
            if label == 2 {
                message.length = 8
                message.setWord(0, message.sender.value)
            } else if label == 4 {
                message.length = RegisterMessageLayout.maximumPayload
            }
            message.label = label &+ 1
            if label == 0 {
                var last = IPCMessage(label: 1)
                try? IPC.reply(reply, &last)
                System.exit(0)
            }
        }
    }
}
