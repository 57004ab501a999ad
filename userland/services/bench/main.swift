// bench: user-space benchmarks in instructions per operation (make bench, -icount shift=0): a null
// system call from EL0, a yield that switches between two processes, IPC (call+reply to a server
// process, asynchronous send+receive, notification signal+wait), and spawn+exit+wait.
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

        benchmarkIPC(overhead: overhead)

        let rounds = 50
        let spawnTotal = measure(rounds) {
            if let child = try? System.spawn("crasher", argument: 0) { _ = try? System.wait(child) }
        }
        report("spawn-exit-wait", spawnTotal, overhead: overhead * UInt64(rounds) / UInt64(iterations), operations: UInt64(rounds))
        benchmarkProcessManager(overhead: overhead, rounds: rounds)
        benchmarkMemoryManager(overhead: overhead)
        benchmarkLargeUnmap()
        System.exit(0)
    }
}

func benchmarkIPC(overhead: UInt64) {
    guard let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
          let server = try? System.spawn("echo", handle: serverSide) else {
        System.print("bench: IPC setup failed")
        return
    }
    let rounds = 500
    for size in [0, 32, 64, 256] {
        var message = IPCMessage(label: 10)
        message.fill(count: size) { UInt8(truncatingIfNeeded: $0) }
        _ = try? IPC.call(port, &message) // warm up: server running, slabs allocated
        let total = measure(rounds) {
            message.label = 10
            message.length = size
            _ = try? IPC.call(port, &message)
        }
        switch size {
        case 0: report("ipc-call-reply-0", total, overhead: overhead / 4, operations: UInt64(rounds))
        case 32: report("ipc-call-reply-32", total, overhead: overhead / 4, operations: UInt64(rounds))
        case 64: report("ipc-call-reply-64", total, overhead: overhead / 4, operations: UInt64(rounds))
        default: report("ipc-call-reply-256", total, overhead: overhead / 4, operations: UInt64(rounds))
        }
    }
    // 4 KiB through shared memory: the client writes it, the server reads all of it (a sum).
    if let memory = try? IPC.createMemory(bytes: 4096), let buffer = try? IPC.map(memory, writable: true),
       let readOnly = try? IPC.duplicate(memory, rights: [.map, .transfer]) {
        var hand = IPCMessage(label: 20)
        hand.attach(readOnly)
        _ = try? IPC.call(port, &hand)
        let words = buffer.assumingMemoryBound(to: UInt64.self)
        var ask = IPCMessage(label: 21)
        let total = measure(rounds) {
            for index in 0..<512 { words[index] = UInt64(index) }
            ask.label = 21
            ask.fill(count: 8) { UInt8(truncatingIfNeeded: 4096 >> (8 * $0)) }
            _ = try? IPC.call(port, &ask)
        }
        report("shared-memory-4k", total, overhead: overhead / 4, operations: UInt64(rounds))
    }
    var stop = IPCMessage(label: 0)
    _ = try? IPC.call(port, &stop)
    _ = try? System.wait(server)

    // Asynchronous messages to a port this process also receives from: 16 sends fill the queue,
    // 16 receives drain it.
    if let local = try? IPC.createPort() {
        var message = IPCMessage(label: 1)
        message.fill(count: 64) { UInt8(truncatingIfNeeded: $0) }
        let batches = 30
        let total = measure(batches) {
            for _ in 0..<16 { _ = try? IPC.send(local, &message) }
            for _ in 0..<16 { _ = try? IPC.receive(local, into: &message, timeout: 0) }
        }
        report("ipc-send-receive-64", total, overhead: overhead * UInt64(batches) / 2000, operations: UInt64(batches * 16))
        try? IPC.close(local)
    }
    if let notification = try? IPC.createNotification() {
        let total = measure(rounds) {
            _ = try? IPC.signal(notification, bits: 1)
            _ = try? IPC.wait(notification, timeout: 0)
        }
        report("notification-signal-wait", total, overhead: overhead / 4, operations: UInt64(rounds))
        try? IPC.close(notification)
    }
}

/// A heap growth through the memory manager: one 64 KiB run asked for (with the process handle
/// that pays), mapped, its handle closed, and later unmapped; against the same run from `map`.
func benchmarkMemoryManager(overhead: UInt64) {
    guard let port = try? IPC.createPort(), let send = try? IPC.duplicate(port, rights: [.send, .transfer]),
          let server = try? System.spawn("memory-manager", handle: port),
          let payer = try? ProcessHandles.create("bench-payer").handle else {
        System.print("bench: memory manager setup failed")
        return
    }
    let manager = MemoryManager(send)
    let rounds = 200
    let bytes: UInt64 = 64 * 1024
    let total = measure(rounds) {
        guard let account = try? IPC.duplicate(payer, rights: [.account, .transfer]),
              let object = try? manager.allocate(bytes: bytes, account: account) else { return }
        if let pointer = try? IPC.map(object, writable: true) {
            try? IPC.close(object)
            try? System.unmap(pointer, bytes: bytes)
        } else {
            try? IPC.close(object)
        }
    }
    report("heap-grow-memory-manager-64k", total, overhead: overhead * UInt64(rounds) / UInt64(Bench.iterations),
           operations: UInt64(rounds))
    let direct = measure(rounds) {
        if let pointer = try? System.map(bytes: bytes, access: .write) { try? System.unmap(pointer, bytes: bytes) }
    }
    report("heap-grow-map-64k", direct, overhead: overhead * UInt64(rounds) / UInt64(Bench.iterations), operations: UInt64(rounds))
    try? System.kill(server)
    _ = try? System.wait(server)
    try? IPC.close(send)
    try? IPC.close(payer)
}

/// spawn+exit+wait of the same program through the process manager, started here with the
/// loader: the requests' IPC and the manager's bookkeeping on top of the loading.
func benchmarkProcessManager(overhead: UInt64, rounds: Int) {
    guard let ramdisk = ProgramStart.handle(.ramdisk), let loader = try? ProgramLoader(ramdisk: ramdisk),
          let started = try? ProcessManager.start(with: loader, ramdisk: ramdisk) else {
        System.print("bench: process manager setup failed")
        return
    }
    let manager = started.client
    // One round first: the manager maps its ramdisk and heap on its first request.
    if let child = try? manager.spawn("crasher") { _ = try? System.wait(child) }
    let total = measure(rounds) {
        if let child = try? manager.spawn("crasher") { _ = try? System.wait(child) }
    }
    report("spawn-exit-wait-process-manager", total, overhead: overhead * UInt64(rounds) / UInt64(Bench.iterations),
           operations: UInt64(rounds))
    ProcessHandles.discard(started.process)
    manager.close()
    loader.close()
}

/// `unmap` of a 16 MiB region (4096 pages) that `map` made, timed alone: the kernel's walk over
/// the tables that exist, one invalidation of the ASID per batch of pages, and the frames freed.
func benchmarkLargeUnmap() {
    let bytes: UInt64 = 16 << 20
    let rounds = 4
    var total: UInt64 = 0
    for _ in 0..<rounds {
        guard let region = try? System.map(bytes: bytes, access: .write) else { return }
        let begin = user_cycle_count()
        try? System.unmap(region, bytes: bytes)
        total += user_cycle_count() - begin
    }
    report("unmap-16m", total, overhead: 0, operations: UInt64(rounds))
}
