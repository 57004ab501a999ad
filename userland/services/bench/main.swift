// bench: user-space benchmarks in instructions per operation (make bench, -icount shift=0): a null
// system call from EL0, a yield that switches between two processes, and spawn+exit+wait.
// Started with argument 1 it is the partner for the yield benchmark instead.

import UserSystemCall

@inline(never)
func measure(_ iterations: Int, _ body: () -> Void) -> UInt64 {
    let begin = user_cycle_count()
    for _ in 0..<iterations { body() }
    return user_cycle_count() - begin
}

func report(_ name: StaticString, _ total: UInt64, overhead: UInt64, operations: UInt64) {
    System.print("bench: \(name) \(total > overhead ? (total - overhead) / operations : 0) insns/op")
}

@main
struct Bench {
    static let iterations = 2000

    static func main() {
        if System.startArgument == 1 {
            for _ in 0..<iterations { System.yield() }
            System.exit(0)
        }
        let overhead = measure(iterations) {}
        report("null-syscall-el0", measure(iterations) { _ = user_system_call(0, 0, 0, 0, 0, 0, 0) },
               overhead: overhead, operations: UInt64(iterations))

        // Each yield here runs the partner until it yields back: two switches across address spaces.
        if let partner = try? System.spawn("bench", argument: 1) {
            System.yield()
            let total = measure(iterations) { System.yield() }
            report("yield-switch", total, overhead: overhead, operations: UInt64(2 * iterations))
            _ = try? System.wait(partner)
        }

        let rounds = 50
        let spawnTotal = measure(rounds) {
            if let child = try? System.spawn("crasher", argument: 0) { _ = try? System.wait(child) }
        }
        report("spawn-exit-wait", spawnTotal, overhead: overhead * UInt64(rounds) / UInt64(iterations), operations: UInt64(rounds))
        System.exit(0)
    }
}
