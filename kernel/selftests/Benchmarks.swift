// `bench` on the command line: micro-benchmarks counted in instructions. Under QEMU with
// `-icount shift=0` every guest instruction advances virtual time by 1 ns and the PMU cycle
// counter by one, so PMCCNTR_EL0 counts instructions exactly. Each figure is the loop's count
// minus an empty loop's, divided by the iterations.

import AArch64

enum InstructionCounter {
    static func start() {
        aarch64_write_pmcr(aarch64_read_pmcr() | 1 | 1 << 2 | 1 << 6) // E, C (reset cycles), LC
        aarch64_write_pmcntenset(1 << 31)                              // enable the cycle counter
        aarch64_isb()
    }

    static var now: UInt64 {
        aarch64_isb()
        return aarch64_read_cycle_count()
    }
}

/// The loop's count; `profiled` also marks it as a region for `make profile` (tools/profile), outside
/// the counted span (the empty loop that gives the overhead is not one).
@inline(never)
func measure(_ iterations: Int, profiled: Bool = true, _ body: () -> Void) -> UInt64 {
    if profiled { aarch64_profile_region_start() }
    let begin = InstructionCounter.now
    for _ in 0..<iterations { body() }
    let total = InstructionCounter.now - begin
    if profiled { aarch64_profile_region_stop() }
    return total
}

@inline(never)
func emptyBody() {}

func report(_ name: StaticString, _ iterations: Int, _ total: UInt64, overhead: UInt64) {
    // The row's operations, for `make profile`: the marker once for each.
    aarch64_profile_region_stop()
    for _ in 0..<iterations { aarch64_profile_operation() }
    let perOperation = total > overhead ? (total - overhead) / UInt64(iterations) : 0
    log("bench: \(name) \(perOperation) insns/op")
}

func runBenchmarks() {
    // No tick may land inside a measured loop.
    aarch64_disable_interrupts()
    InstructionCounter.start()
    let iterations = 2000
    let overhead = measure(iterations, profiled: false, emptyBody)

    report("null-syscall-el1", iterations, measure(iterations) {
        _ = aarch64_system_call(SystemCallNumber.null.rawValue, 0, 0, 0)
    }, overhead: overhead)

    report("frame-allocate-free", iterations, measure(iterations) {
        if let frame = try? PhysicalFrames.allocate(.general) { try? PhysicalFrames.free(frame) }
    }, overhead: overhead)

    // A fresh frame mapped at an address whose intermediate tables already exist, then unmapped.
    let window = VirtualAddress(0xFFFF_8000_0010_0000)
    let frame = try? PhysicalFrames.allocate(.general)
    let keeper = VirtualAddress(window.value + pageSize)
    if let frame {
        try? KernelAddressSpace.map(keeper, to: frame.address, size: pageSize, permissions: .readWrite, type: .normal)
        report("map-unmap-4k", iterations, measure(iterations) {
            try? KernelAddressSpace.map(window, to: frame.address, size: pageSize, permissions: .readWrite, type: .normal)
            try? KernelAddressSpace.unmap(window, size: pageSize)
        }, overhead: overhead)
        try? KernelAddressSpace.unmap(keeper, size: pageSize)
        try? PhysicalFrames.free(frame)
    }

    report("heap-allocate-free-64", iterations, measure(iterations) {
        if let block = Heap.allocate(size: 64, alignment: 16) { Heap.free(block) }
    }, overhead: overhead)
    report("heap-allocate-free-4k", iterations, measure(iterations) {
        if let block = Heap.allocate(size: 4096, alignment: 16) { Heap.free(block) }
    }, overhead: overhead)
}
