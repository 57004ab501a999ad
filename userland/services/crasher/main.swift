// crasher: fails on purpose, in the way its start argument names, so that tests can check the
// kernel isolates the failure. 0 exits with code 42; 7 exits while another thread spins; 8 maps
// memory until refused and exits with the KiB it got; 9 exits leaving a port that holds its own
// send handle in its queue; 10 serves its start block's service port until a call labelled 3
// makes it fault; 11 exits leaving children it never started that only they hold (one holds its
// own handle, two hold each other's); 12 sleeps until killed, taking no CPU time; 13 is a
// lineage: generation N (start argument 13 + 256 N) starts generation N + 1 and waits for it, and
// the last exits with its generation when the kernel refuses it a child; 14 waits for ever on its
// start handle, a notification or else a port, until killed (14 + 256: first kept to CPU 0 at
// the lowest level); 17 asks the memory manager under `.memoryManager` for 4 KiB paid by itself,
// reports on its start handle (a port: label 1 served, 2 refused) and sleeps until killed; 18
// tries to stop the timer of the kernel's tick; 19 raises the breakpoint of the kernel's self-test,
// which the kernel skips only at EL1; 20 starts sleepers (crasher 12) through the process manager
// until it is refused, ends them, and exits with how many it started (or 1000 + the error's code
// if the refusal was not `queueFull`); the others fault.

import UserSystemCall

@main
struct Crasher {
    static func main() {
        switch System.startArgument & 0xFF {
        case 0: System.exit(42)
        case 1: _ = user_read(0)                                // null pointer
        case 2: _ = user_read(0xFFFF_0000_4020_0000)            // kernel memory
        case 3: user_write(0x40_0000, 0)                        // its own text
        case 4: user_illegal_instruction()
        case 18: user_stop_physical_timer()                     // the kernel's tick
        case 19: user_self_test_breakpoint()                    // the kernel's self-test trap
        case 20: System.exit(spawnSleepersUntilRefused())
        case 5: _ = overflow(1)                                 // its stack
        case 7:
            // A second thread spins; the first exits, which must end the whole process.
            _ = try? System.createThread { _ in
                var counter: UInt64 = 0
                while true { counter &+= 1 }
            }
            System.yield()
            System.exit(7)
        case 6:
            // Touch fresh memory and leave it mapped: the kernel must free it at the fault.
            if let block = try? System.map(bytes: 1 << 20, access: .write) {
                block.storeBytes(of: UInt64(1), as: UInt64.self)
            }
            _ = user_read(8)
        case 8:
            // Until the kernel says no: its exit code is the KiB it mapped, or 0 if the refusal
            // was anything but out-of-memory.
            var kibibytes: UInt64 = 0
            while true {
                do throws(KernelError) {
                    _ = try System.map(bytes: 64 * 1024, access: .write)
                    kibibytes += 64
                } catch {
                    System.exit(error == .outOfMemory ? kibibytes : 0)
                }
            }
        case 9:
            // A port whose queue holds a send handle to itself, left for the kernel to free.
            if let port = try? IPC.createPort(), let sender = try? IPC.duplicate(port, rights: [.send, .transfer]) {
                var message = IPCMessage(label: 9)
                message.attach(sender)
                _ = try? IPC.send(port, &message)
            }
            System.exit(9)
        case 10:
            // A service: answers calls on the port its start block gives under `.service` with
            // label + 1; label 3 makes it fault while holding the call.
            // Given a private port (`.privateService`) too, it answers there with label + 101.
            guard let port = ProgramStart.handle(.service) else { System.exit(10) }
            var message = IPCMessage()
            if let privatePort = ProgramStart.handle(.privateService) {
                while true {
                    guard let ready = try? IPC.waitAny([port, privatePort]),
                          (try? IPC.receive(ready == 1 ? privatePort : port, into: &message, timeout: 0)) != nil else { System.exit(10) }
                    guard let answer = message.replyHandle else { continue }
                    if message.label == 3 { _ = user_read(0) }
                    var reply = IPCMessage(label: message.label + (ready == 1 ? 101 : 1))
                    try? IPC.reply(answer, &reply)
                }
            }
            var answer: Handle?
            while true {
                guard (try? IPC.replyAndReceive(answer, port, &message)) != nil else { System.exit(10) }
                answer = message.replyHandle
                if message.label == 3 { _ = user_read(0) }
                message.label += 1
                message.length = 0
                message.handleCount = 0
            }
        case 11:
            // Nothing but the children themselves keeps them: the kernel must end them with us.
            // The exit code is how many it left, plus 16 for each request for memory refused.
            var left: UInt64 = 0
            var refused: UInt64 = 0
            do throws(KernelError) {
                let selfHeld = try ProcessHandles.create("held-by-itself").handle
                _ = try ProcessHandles.give(selfHeld, to: selfHeld)
                left += 1
                let first = try ProcessHandles.create("cycle").handle
                let second = try ProcessHandles.create("cycle").handle
                let firstCopy = try IPC.duplicate(first, rights: [.control, .transfer])
                _ = try ProcessHandles.give(firstCopy, to: second)
                _ = try ProcessHandles.give(second, to: first)
                left += 2
                // `first` closes at the exit; its copy in `second` keeps the cycle.
            } catch {
                if error == .outOfMemory { refused += 1 }
            }
            System.exit(left + 16 * refused)
        case 13:
            let generation = System.startArgument >> 8
            var refusals = 0
            while true {
                do throws(KernelError) {
                    let child = try System.spawn("crasher", argument: 13 | (generation + 1) << 8)
                    let status = try System.wait(child)
                    System.exit(status.reason == .exited ? status.code : 0)
                } catch {
                    // Refused for good (the lineage's depth) or by chance (fault injection, which
                    // refuses one request in a few): only a refusal that stays is the answer.
                    refusals += 1
                    guard error == .outOfMemory else { System.exit(0) }
                    if refusals == 60 { System.exit(generation) }
                }
            }
        case 14:
            guard let handle = System.startHandle else { System.exit(14) }
            if System.startArgument >> 8 == 1 {
                _ = try? System.setAffinity(1)
                _ = try? System.setPriority(0)
            }
            if (try? IPC.wait(handle)) == nil {
                var message = IPCMessage()
                _ = try? IPC.receive(handle, into: &message)
            }
            System.exit(14)
        case 12:
            while true { System.sleep(nanoseconds: 1_000_000_000) }
        case 15:
            // Asks the process manager (`.processManager`) for crasher 16 with the same bytes,
            // paid by this program, and ends with its code: 0 mapped, 12 refused; 13 if the
            // manager could not start it for want of memory, 14 for any other refusal.
            guard let manager = SystemServices.processManager else { System.exit(14) }
            do throws(KernelError) {
                let child = try manager.spawn("crasher", argument: 16 | (System.startArgument >> 8) << 8)
                let end = try System.wait(child)
                System.exit(end.reason == .exited ? end.code : 14)
            } catch {
                System.exit(error == .outOfMemory ? 13 : 14)
            }
        case 16:
            // Maps `argument >> 8` bytes and touches them: 0 done, 12 refused.
            let bytes = System.startArgument >> 8
            guard let memory = try? System.map(bytes: bytes, access: .write) else { System.exit(12) }
            for offset in stride(from: 0, to: Int(bytes), by: 4096) { memory.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
            System.exit(0)
        case 17:
            guard let report = System.startHandle, let port = ProgramStart.handle(.memoryManager),
                  let own = ProgramStart.handle(.ownProcess) else { System.exit(17) }
            var served = false
            if let payer = try? IPC.duplicate(own, rights: [.account, .wait, .transfer]),
               let object = try? MemoryManager(port).allocate(bytes: 4096, account: payer) {
                served = true
                try? IPC.close(object)
            }
            var message = IPCMessage(label: served ? 1 : 2)
            _ = try? IPC.send(report, &message)
            while true { System.sleep(nanoseconds: 1_000_000_000) }
        default: System.exit(1)
        }
        System.exit(2)
    }

    /// Recursion with an end the compiler cannot see (a volatile read that never matches) and a
    /// use of its frame after the call, so it really grows the stack until the guard page.
    nonisolated(unsafe) static var limit = UInt64.max

    @inline(never)
    static func overflow(_ depth: UInt64) -> UInt64 {
        var frame = InlineArray<64, UInt64>(repeating: depth)
        let end = withUnsafeMutablePointer(to: &limit) { user_read(UInt64(UInt(bitPattern: $0))) }
        if depth == end { return 0 }
        withUnsafeMutablePointer(to: &frame) { pointer in user_write(UInt64(UInt(bitPattern: pointer)), depth) }
        return overflow(depth &+ 1) &+ frame[5]
    }
}

/// Crasher 20: sleepers through the process manager, as many as it will start at once.
func spawnSleepersUntilRefused() -> UInt64 {
    guard let manager = SystemServices.processManager else { return 2000 }
    var sleepers = InlineArray<24, ChildProcess?>(repeating: nil)
    var started = 0
    var refusal = KernelError.invalidArgument
    var attempts = 0
    while started < 24 && attempts < 200 {
        attempts += 1
        do throws(KernelError) {
            sleepers[started] = try manager.spawn("crasher", argument: 12, memoryLimit: 1 << 20)
            started += 1
        } catch {
            // A refusal of memory (under fault injection) is tried again; anything else stops.
            refusal = error
            if error != .outOfMemory { break }
        }
    }
    for index in 0..<started {
        guard let sleeper = sleepers[index] else { continue }
        try? System.kill(sleeper)
        _ = try? System.wait(sleeper)
    }
    return refusal == .queueFull ? UInt64(started) : 1000 + refusal.rawValue
}
