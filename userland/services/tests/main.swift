// tests: the user-space test suite, run by init in test mode. Each case prints a check mark only
// after its checks passed; the last line is "tests: N passed, N failed" and the exit code is
// the number of failures. It covers the system calls, bad pointers and arguments, and programs
// that crash, checking that this process and the kernel survive and that memory comes back.

import UserSystemCall

struct Suite {
    var passed = 0
    var failed = 0

    mutating func check(_ condition: Bool, _ description: FormattedText) {
        var line = TextLine()
        line.write(condition ? "tests: \u{2713} " : "tests: \u{2717} FAILED: ")
        description.line.forEachByte { line.write(byte: $0) }
        System.print(FormattedText(line: line))
        if condition { passed += 1 } else { failed += 1 }
    }
}

/// Runs `name` with `argument` to its end.
func run(_ name: StaticString, _ argument: UInt64 = 0) -> (reason: ExitReason, code: UInt64)? {
    guard let child = try? System.spawn(name, argument: argument) else { return nil }
    return try? System.wait(child)
}

func raw(_ number: UInt64, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0) -> (status: UInt64, value0: UInt64) {
    let result = user_system_call(number, a0, a1, a2, 0, 0, 0)
    return (result.status, result.value0)
}

@main
struct Tests {
    static func main() {
        var suite = Suite()
        let error = { (code: KernelError) in code.rawValue }

        // Identity and time.
        let me = System.processID
        suite.check(me.value > 1 && System.parentID.value == 1 && System.threadID > 0,
                    "process \(me.value), parent \(System.parentID.value) (init), thread \(System.threadID)")
        let first = System.clock
        System.yield()
        let second = System.clock
        suite.check(first.frequency > 0 && second.ticks >= first.ticks, "clock is monotonic at \(first.frequency) Hz; yield returns")
        let before = System.clock.ticks
        System.sleep(nanoseconds: 30_000_000)
        let slept = (System.clock.ticks - before) * 1000 / first.frequency
        suite.check(slept >= 30 && slept < 1000, "sleep of 30 ms took \(slept) ms")

        // Bad input gets an error, never a crash.
        suite.check(raw(999).status == error(.unknownSystemCall), "system call 999 is unknown")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0, 16).status == error(.badAddress),
                    "write from address 0 is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0xFFFF_0000_4020_0000, 16).status == error(.badAddress),
                    "write from kernel memory is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0x7000_0000_0000, 16).status == error(.badAddress),
                    "write from unmapped user memory is a bad address")
        suite.check(raw(SystemCallNumber.debugWrite.rawValue, 0x40_0000, UInt64.max).status == error(.badAddress),
                    "write with a length that wraps the address space is a bad address")
        suite.check(raw(SystemCallNumber.spawn.rawValue, 0x10, 4).status == error(.badAddress),
                    "spawn with a bad name pointer is a bad address")
        suite.check((try? System.spawn("no-such-program")) == nil && raw(SystemCallNumber.spawn.rawValue, 0x40_0000, 1000).status == error(.invalidArgument),
                    "spawn of a missing program is not found; an overlong name is invalid")
        suite.check(raw(SystemCallNumber.wait.rawValue, 1).status == error(.notFound) && raw(SystemCallNumber.kill.rawValue, 1).status == error(.notFound),
                    "wait for and kill of a process that is not a child are refused")

        // Memory: map, use, unmap; refusals for bad requests.
        let framesBefore = System.memory.freeFrames
        var mapped = false
        if let block = try? System.map(bytes: 64 * 1024, access: .write) {
            let words = block.bindMemory(to: UInt64.self, capacity: 8192)
            for index in 0..<8192 { words[index] = UInt64(index) &* 2654435761 }
            var intact = true
            for index in 0..<8192 where words[index] != UInt64(index) &* 2654435761 { intact = false }
            let inUse = System.processes.mappedBytes
            mapped = intact && (try? System.unmap(block, bytes: 64 * 1024)) != nil
                && System.processes.mappedBytes == inUse - 64 * 1024
                && raw(SystemCallNumber.unmap.rawValue, UInt64(UInt(bitPattern: block)), 64 * 1024).status == error(.invalidArgument)
        }
        suite.check(mapped && System.memory.freeFrames == framesBefore, "map 64 KiB, fill, verify, unmap; frames returned")
        suite.check(raw(SystemCallNumber.map.rawValue, 4096, 3).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 0, 1).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 1 << 40, 1).status == error(.invalidArgument)
                    && raw(SystemCallNumber.map.rawValue, 4096, 8).status == error(.invalidArgument),
                    "map refuses writable+executable, zero, 1 TiB and unknown access bits")

        // The heap over `map`: a growing Swift array and many blocks.
        var values: [UInt64] = []
        for index in 0..<5000 { values.append(UInt64(index) * 3) }
        var total: UInt64 = 0
        for value in values { total += value }
        values = []
        suite.check(total == 37_492_500, "Swift array of 5000 elements on the user heap (sum \(total))")

        // Programs that end: normally, by fault, by kill; memory comes back each time.
        let exited = run("crasher", 0)
        suite.check(exited?.reason == .exited && exited?.code == 42, "child exits with code 42 and wait reports it")
        let faults: [(UInt64, StaticString, UInt64)] = [
            (1, "null pointer read", 0x24), (2, "kernel memory read", 0x24), (3, "write to its own text", 0x24),
            (4, "illegal instruction", 0x00), (5, "stack overflow", 0x24), (6, "fault with 1 MiB mapped", 0x24),
        ]
        for (kind, name, expectedClass) in faults {
            let framesBeforeCrash = System.memory.freeFrames
            let status = run("crasher", kind)
            let exceptionClass = (status?.code ?? 0xFFFF_FFFF) >> 26 & 0x3F
            suite.check(status?.reason == .faulted && exceptionClass == expectedClass
                        && System.memory.freeFrames == framesBeforeCrash,
                        "crasher killed for \(name) (ESR class \(hex: exceptionClass, digits: 2)); all its frames returned")
        }
        let framesBeforeKill = System.memory.freeFrames
        var killed = false
        if let spinner = try? System.spawn("spinner") {
            System.sleep(nanoseconds: 20_000_000) // it runs: preemption gives this process the CPU back
            killed = (try? System.kill(spinner)) != nil && (try? System.wait(spinner))?.reason == .killed
        }
        suite.check(killed && System.memory.freeFrames == framesBeforeKill,
                    "a spinning child is preempted, killed and collected; frames returned")

        // FP/SIMD state survives switches between processes using it at the same time.
        let checkers = [try? System.spawn("fpcheck"), try? System.spawn("fpcheck"), try? System.spawn("fpcheck")]
        var fpOK = true
        for checker in checkers {
            guard let checker, let status = try? System.wait(checker), status.reason == .exited, status.code == 0 else {
                fpOK = false
                continue
            }
        }
        suite.check(fpOK, "3 processes keep their FP registers across yields and preemption")
        suite.check(System.processes.live >= 2, "process table: \(System.processes.live) live (init and tests)")

        System.print("tests: \(suite.passed) passed, \(suite.failed) failed")
        System.exit(UInt64(suite.failed))
    }
}
