// bench: user-space benchmarks in instructions per operation (make bench, -icount shift=0): a null
// system call from EL0, a yield that switches between two processes, IPC (call+reply to a server
// process, asynchronous send+receive, notification signal+wait by one thread and a signal waking
// another process), a device interrupt delivered to a
// handler thread (with the device-access capability init passes in bench mode), spawn+exit+wait,
// and 4 KiB reads and writes through the block service when a disk is attached. Bits 8-15 of its
// start argument select other benchmarks instead (`BenchmarkSelection`, from `bench=NAME`):
// call+reply between two cores, or CPU-bound work in several processes timed for scaling. The low
// byte gives the other roles of this program: 1, the partner for the yield benchmark; 2, one
// process of the CPU-bound work (its rounds in bits 8-63); 3, the waiting side of the notification
// wake-up benchmark.

import UserSystemCall

/// The loop's count; `profiled` also marks it as a region for `make profile` (tools/profile), outside
/// the counted span (the empty loops that give the overhead are not).
@inline(never)
func measure(_ iterations: Int, profiled: Bool = true, _ body: () -> Void) -> UInt64 {
    if profiled { user_profile_region_start() }
    let begin = user_cycle_count()
    for _ in 0..<iterations { body() }
    let total = user_cycle_count() - begin
    if profiled { user_profile_region_stop() }
    return total
}

func report(_ name: StaticString, _ total: UInt64, overhead: UInt64, operations: UInt64) {
    // The row's operations, for `make profile`: the marker once for each.
    user_profile_region_stop()
    for _ in 0..<operations { user_profile_operation() }
    System.print("bench: \(name) \(total > overhead ? (total - overhead) / operations : 0) insns/op")
}

@main
struct Bench {
    static let iterations = 2000

    static func main() {
        let argument = System.startArgument
        switch argument & 0xFF {
        case 1:
            for _ in 0..<iterations { System.yield() }
            System.exit(0)
        case 2:
            System.exit(cpuBoundWork(rounds: argument >> 8))
        case NotificationPartner.role:
            NotificationPartner.run()
        default:
            break
        }
        switch BenchmarkSelection(rawValue: argument >> 8 & 0xFF) ?? .operations {
        case .crossCore:
            benchmarkCrossCore()
            System.exit(0)
        case .scaling:
            benchmarkScaling()
            System.exit(0)
        case .operations:
            break
        }
        let overhead = measure(iterations, profiled: false) {}
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
        benchmarkRegisterIPC(overhead: overhead)

        let rounds = 50
        let spawnTotal = measure(rounds) {
            if let child = try? System.spawn("crasher", argument: 0) { _ = try? System.wait(child) }
        }
        report("spawn-exit-wait", spawnTotal, overhead: overhead * UInt64(rounds) / UInt64(iterations), operations: UInt64(rounds))
        benchmarkProcessManager(overhead: overhead, rounds: rounds)
        benchmarkMemoryManager(overhead: overhead)
        benchmarkLargeUnmap()
        benchmarkBlock(overhead: overhead)
        // Last: its handler thread's stack stays mapped, and nothing measured after it should
        // see a larger address space.
        benchmarkInterrupt()
        System.exit(0)
    }
}

/// Call+reply with the messages in registers (`callRegisters` to the echo server serving with
/// `replyReceiveRegisters`, its start argument 4), as seL4's figures are: 0, 32 and 64 bytes.
func benchmarkRegisterIPC(overhead: UInt64) {
    guard let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
          let server = try? System.spawn("echo", argument: 4, handle: serverSide) else {
        System.print("bench: IPC in registers: setup failed")
        return
    }
    let rounds = 500
    for size in [0, 32, 64] {
        var message = RegisterMessage(label: 10)
        message.fill(count: size) { UInt8(truncatingIfNeeded: $0) }
        _ = try? IPC.callInRegisters(port, &message) // warm up: the server waiting
        let total = measure(rounds) {
            message.label = 10
            _ = try? IPC.callInRegisters(port, &message)
        }
        if message.label != 11 || message.length != size { System.print("bench: IPC in registers: a wrong answer") }
        switch size {
        case 0: report("ipc-call-reply-registers-0", total, overhead: overhead / 4, operations: UInt64(rounds))
        case 32: report("ipc-call-reply-registers-32", total, overhead: overhead / 4, operations: UInt64(rounds))
        default: report("ipc-call-reply-registers-64", total, overhead: overhead / 4, operations: UInt64(rounds))
        }
    }
    var stop = RegisterMessage(label: 0)
    _ = try? IPC.callInRegisters(port, &stop)
    _ = try? System.wait(server)
    try? IPC.close(port)
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
    benchmarkNotificationWake(overhead: overhead, rounds: rounds)
}

/// A signal that wakes a thread of another process waiting on a notification, and the switch to
/// it: this process signals `ping` and waits on `pong`; the partner (role 3) waits on `ping` and
/// signals `pong`. A round is two such wake-ups (each a signal, the waiter's wait returning, and a
/// switch between address spaces when the signaller blocks in its own wait).
func benchmarkNotificationWake(overhead: UInt64, rounds: Int) {
    guard let ping = try? IPC.createNotification(), let pong = try? IPC.createNotification(),
          let port = try? IPC.createPort(), let partnerPort = try? IPC.duplicate(port, rights: [.receive, .transfer]),
          let pingThere = try? IPC.duplicate(ping, rights: [.wait, .transfer]),
          let pongThere = try? IPC.duplicate(pong, rights: [.signal, .transfer]),
          let partner = try? System.spawn("bench", argument: NotificationPartner.role, handle: partnerPort) else {
        System.print("bench: notification setup failed")
        return
    }
    defer {
        for handle in [ping, pong, port] { try? IPC.close(handle) }
    }
    var hand = IPCMessage(label: 0)
    hand.attach(pingThere)
    hand.attach(pongThere)
    guard (try? IPC.send(port, &hand)) != nil else {
        System.print("bench: notification setup failed")
        return
    }
    // One round not counted: the partner has started and waits on `ping`.
    _ = try? IPC.signal(ping, bits: NotificationPartner.wake)
    _ = try? IPC.wait(pong)
    let total = measure(rounds) {
        _ = try? IPC.signal(ping, bits: NotificationPartner.wake)
        _ = try? IPC.wait(pong)
    }
    report("notification-signal-wake", total, overhead: overhead / 4, operations: UInt64(2 * rounds))
    _ = try? IPC.signal(ping, bits: NotificationPartner.stop)
    _ = try? System.wait(partner)
}

/// Role 3 of this program: the other side of `benchmarkNotificationWake`. Its start handle is a
/// port on which the two notifications arrive.
enum NotificationPartner {
    static let role: UInt64 = 3
    static let wake: UInt64 = 1
    static let stop: UInt64 = 2

    static func run() -> Never {
        var message = IPCMessage()
        guard let port = System.startHandle, (try? IPC.receive(port, into: &message)) != nil,
              message.handleCount == 2 else { System.exit(1) }
        let ping = message.handle(0)
        let pong = message.handle(1)
        while true {
            guard let bits = try? IPC.wait(ping), bits & stop == 0 else { System.exit(0) }
            _ = try? IPC.signal(pong, bits: wake)
        }
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
    guard let ramdisk = ProgramStart.handle(.ramdisk), let loader = try? ProgramLoader(ramdisk: ramdisk) else {
        System.print("bench: process manager setup failed")
        return
    }
    guard let started = try? ProcessManager.start(with: loader, ramdisk: ramdisk) else {
        System.print("bench: process manager setup failed")
        loader.close()
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

/// Sequential 4 KiB reads, then writes, through the block service (userland/services/virtio-blk),
/// started here with a copy of the device access and a port of its own: each request is a call
/// in which the driver copies between this buffer and its transfer buffer, hands the request to
/// the device and answers when the device's interrupt says it is done. Two figures each: the
/// instructions per request (event counter 0, INST_RETIRED, which stands still while the CPU
/// waits for the device) and the virtual nanoseconds per request (the cycle counter, which
/// icount runs on while the CPU waits), 10^9 divided by which is requests per second.
func benchmarkBlock(overhead: UInt64) {
    guard let access = System.startHandle, let ramdisk = ProgramStart.handle(.ramdisk),
          let loader = try? ProgramLoader(ramdisk: ramdisk) else {
        System.print("bench: block-read-4k not measured: no device access or ramdisk")
        return
    }
    defer { loader.close() }
    // The driver gets the only receive right: if it ends (no disk), calls fail instead of waiting.
    guard let receiver = try? IPC.createPort(), let port = try? IPC.duplicate(receiver, rights: [.send]),
          let devices = try? IPC.duplicate(access, rights: [.open, .duplicate, .transfer]) else {
        System.print("bench: block-read-4k not measured: no port")
        return
    }
    defer { try? IPC.close(port) }
    var handles = StartHandles(.deviceAccess, devices)
    handles.append(.service, receiver)
    guard let driver = try? loader.spawn("virtio-blk", handles: handles) else {
        System.print("bench: block-read-4k not measured: the driver did not start")
        return
    }
    defer {
        try? ProcessHandles.kill(driver.process)
        _ = try? ProcessHandles.wait(driver.process)
        try? IPC.close(driver.process)
    }
    let bytes = 4096
    guard let memory = try? IPC.createMemory(bytes: UInt64(bytes)), let buffer = try? IPC.map(memory, writable: true) else {
        System.print("bench: block-read-4k not measured: no buffer")
        return
    }
    defer {
        try? System.unmap(buffer, bytes: UInt64(bytes))
        try? IPC.close(memory)
    }
    var attach = IPCMessage(label: BlockServiceRequest.attach.rawValue)
    guard let lent = try? IPC.duplicate(memory, rights: [.map, .write, .transfer]) else { return }
    attach.attach(lent)
    // A machine without a disk: the driver ends at once and the call finds the port unanswered.
    guard (try? IPC.call(port, &attach)) != nil, attach.label == 0 else {
        System.print("bench: block-read-4k not measured: no disk (the driver did not attach the buffer)")
        return
    }
    let sectors = UInt64(bytes / BlockProtocol.sectorSize)
    func request(_ kind: BlockServiceRequest, _ index: Int) -> Bool {
        var message = IPCMessage(label: kind.rawValue)
        message.setWord(atByte: 0, UInt64(index) * sectors)
        message.setWord(atByte: 8, sectors)
        message.setWord(atByte: 16, 0)
        message.length = 24
        return (try? IPC.call(port, &message)) != nil && message.label == 0
    }
    let rounds = 200
    var failed = !request(.read, 0)
    /// `rounds` requests of `kind`: the virtual time they took and the instructions run meanwhile.
    func run(_ kind: BlockServiceRequest) -> (time: UInt64, instructions: UInt64) {
        user_profile_region_start()
        let time = user_cycle_count(), instructions = user_instruction_count()
        for index in 0..<rounds where !request(kind, index) { failed = true }
        let spent = (user_cycle_count() - time, user_instruction_count() - instructions)
        user_profile_region_stop()
        return spent
    }
    let loop = overhead * UInt64(rounds) / UInt64(Bench.iterations)
    // Each kind reported as soon as it has run, so that `make profile` gives each its own loop.
    let reads = run(.read)
    guard !failed, reads.instructions > 0 else {
        System.print("bench: block-read-4k not measured: \(failed ? "a request failed" : "no instruction counter")")
        return
    }
    report("block-read-4k", reads.instructions, overhead: loop, operations: UInt64(rounds))
    let writes = run(.write)
    guard !failed else {
        System.print("bench: block-write-4k not measured: a request failed")
        return
    }
    report("block-write-4k", writes.instructions, overhead: loop, operations: UInt64(rounds))
    System.print("bench: block-read-4k-time \(reads.time / UInt64(rounds)) ns/op")
    System.print("bench: block-write-4k-time \(writes.time / UInt64(rounds)) ns/op")
}

/// `unmap` of a 16 MiB region (4096 pages) that `map` made, timed alone: the kernel's walk over
/// the tables that exist, one invalidation of the ASID per batch of pages, and the frames freed.
func benchmarkLargeUnmap() {
    let bytes: UInt64 = 16 << 20
    let rounds = 4
    var total: UInt64 = 0
    for _ in 0..<rounds {
        guard let region = try? System.map(bytes: bytes, access: .write) else { return }
        user_profile_region_start()
        let begin = user_cycle_count()
        try? System.unmap(region, bytes: bytes)
        total += user_cycle_count() - begin
        user_profile_region_stop()
    }
    report("unmap-16m", total, overhead: 0, operations: UInt64(rounds))
}

/// What the interrupt benchmark's two threads share: the UART's registers, the handles, the time
/// the interrupt was raised and the handler's sum of delays.
enum InterruptBench {
    static let interruptMask: UInt64 = 0x038
    static let interruptClear: UInt64 = 0x044
    /// UARTIMSC's TXIM and UARTICR's TXIC: the transmit interrupt.
    static let transmitInterrupt: UInt32 = 1 << 5
    /// The notification's bits: the bound interrupt sets the first; the second tells the handler
    /// to end.
    static let interruptBit: UInt64 = 1
    static let stopBit: UInt64 = 2

    nonisolated(unsafe) static var uart: UInt64 = 0
    nonisolated(unsafe) static var restingMask: UInt32 = 0
    nonisolated(unsafe) static var bell = Handle.none
    nonisolated(unsafe) static var line = Handle.none
    nonisolated(unsafe) static var raisedAt: UInt64 = 0
    nonisolated(unsafe) static var total: UInt64 = 0
    nonisolated(unsafe) static var handled = 0
    nonisolated(unsafe) static var ended = false
}

/// The handler thread: waits on the notification the UART's interrupt is bound to; on each
/// wake it reads the counter at once, then masks the transmit interrupt at the UART again and
/// acknowledges the line at the kernel, as a driver would.
let interruptHandler: System.ThreadBody = { _ in
    while true {
        let bits = (try? IPC.wait(InterruptBench.bell, timeout: .max)) ?? 0
        let now = user_cycle_count()
        user_profile_region_stop()
        if bits & InterruptBench.interruptBit != 0 {
            InterruptBench.total &+= now &- InterruptBench.raisedAt
            user_write32(InterruptBench.uart + InterruptBench.interruptMask, InterruptBench.restingMask)
            try? System.acknowledgeInterrupt(InterruptBench.line)
            // Last: the next round may raise it again.
            InterruptBench.handled += 1
        }
        if bits & InterruptBench.stopBit != 0 {
            InterruptBench.ended = true
            System.exitThread()
        }
    }
}

/// A device interrupt to a user-space handler thread: the PL011's transmit interrupt, raised
/// through the GIC by unmasking it at the UART while its raw status is set (QEMU's PL011 sets it
/// with every byte written and keeps it until cleared, as a real one does while its transmit
/// FIFO is below the trigger level). The counter is read just before that store, and by the
/// handler just after its notification wait returns. The thread that raises the interrupt runs
/// below the handler's priority (`threadPriority`), so the kernel switches to the handler on its
/// way out of the interrupt. Needs the device-access capability (init gives it in bench mode);
/// the console's interrupt is left masked, cleared and unbound afterwards.
func benchmarkInterrupt() {
    guard let access = System.startHandle else {
        System.print("bench: interrupt-to-user-handler not measured: no device access")
        return
    }
    let device: (registers: Handle, interrupt: Handle)
    let window: UnsafeMutableRawPointer
    do throws(KernelError) {
        device = try System.openDevice(0, through: access)
        window = try IPC.map(device.registers, writable: true)
        InterruptBench.bell = try IPC.createNotification()
        try System.bindInterrupt(device.interrupt, to: InterruptBench.bell)
    } catch {
        System.print("bench: interrupt-to-user-handler not measured: \(error)")
        return
    }
    let uart = UInt64(UInt(bitPattern: window))
    InterruptBench.uart = uart
    InterruptBench.line = device.interrupt
    InterruptBench.restingMask = user_read32(uart + InterruptBench.interruptMask) & ~InterruptBench.transmitInterrupt
    defer {
        user_write32(uart + InterruptBench.interruptMask, InterruptBench.restingMask)
        user_write32(uart + InterruptBench.interruptClear, InterruptBench.transmitInterrupt)
        // Closing the line's only handle unbinds it; the console driver can bind it again.
        try? IPC.close(device.interrupt)
        try? IPC.close(InterruptBench.bell)
        try? System.unmap(window, bytes: 4096)
        try? IPC.close(device.registers)
    }
    // The cost of reading the counter twice in a row, taken off each delay.
    var clock = UInt64.max
    for _ in 0..<8 {
        let first = user_cycle_count()
        clock = min(clock, user_cycle_count() - first)
    }
    guard (try? System.createThread(stackBytes: 16 * 1024, interruptHandler)) != nil else {
        System.print("bench: interrupt-to-user-handler not measured: no handler thread")
        return
    }
    // Let the handler reach its wait; the raw status is set by the last byte written out.
    System.yield()
    // Below the handler from now on: its wake-up preempts this thread.
    guard let (level, _) = try? System.setPriority(0) else {
        System.print("bench: interrupt-to-user-handler not measured: threadPriority refused")
        return
    }
    defer { _ = try? System.setPriority(level) }
    let rounds = 500
    // A first round warms up the path and is not counted.
    for round in 0...rounds {
        let before = InterruptBench.handled
        if round > 0 { user_profile_region_start() } // from the counter's read to the handler's
        InterruptBench.raisedAt = user_cycle_count()
        user_write32(uart + InterruptBench.interruptMask, InterruptBench.restingMask | InterruptBench.transmitInterrupt)
        // With one CPU the handler has run to its next wait by now; with more, it may run
        // elsewhere, or later.
        var yields = 0
        while InterruptBench.handled == before && yields < 1000 {
            System.yield()
            yields += 1
        }
        if InterruptBench.handled == before { break }
        if round == 0 { InterruptBench.total = 0 }
    }
    let handled = InterruptBench.handled
    let total = InterruptBench.total
    try? IPC.signal(InterruptBench.bell, bits: InterruptBench.stopBit)
    for _ in 0..<16 where !InterruptBench.ended { System.yield() }
    guard handled == rounds + 1 else {
        System.print("bench: interrupt-to-user-handler not measured: \(handled) of \(rounds + 1) interrupts arrived")
        return
    }
    report("interrupt-to-user-handler", total, overhead: clock * UInt64(rounds), operations: UInt64(rounds))
}

/// Call+reply between this thread on CPU 0 and the echo server on CPU 1 (`bench=cores`, which
/// `make bench` runs at -smp 2 under icount). QEMU then runs the cores in turn on one host thread
/// and the cycle counter follows virtual time, so a round's count is the instructions both cores
/// ran for it: the call, the wake-up of the server's core by an interrupt between processors, the
/// server's receive and reply, the same back, and each core's way into and out of its idle wait.
func benchmarkCrossCore() {
    guard waitForCores(0b11), (try? System.setAffinity(1 << 0)) != nil else {
        System.print("bench: ipc-call-reply-cross-core not measured: CPUs 0 and 1 do not both run threads")
        return
    }
    guard let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
          let server = try? System.spawn("echo", argument: 3, handle: serverSide) else {
        System.print("bench: ipc-call-reply-cross-core not measured: no server")
        return
    }
    let overhead = measure(Bench.iterations, profiled: false) {}
    let rounds = 500
    for size in [0, 64] {
        var message = IPCMessage(label: 10)
        message.fill(count: size) { UInt8(truncatingIfNeeded: $0) }
        // Warm up: the server on its core and waiting.
        for _ in 0..<4 { _ = try? IPC.call(port, &message) }
        var failed = false
        let total = measure(rounds) {
            message.label = 10
            message.length = size
            if (try? IPC.call(port, &message)) == nil || message.label != 11 { failed = true }
        }
        guard !failed else {
            System.print("bench: ipc-call-reply-cross-core not measured: a call failed")
            break
        }
        if size == 0 {
            report("ipc-call-reply-cross-core-0", total, overhead: overhead / 4, operations: UInt64(rounds))
        } else {
            report("ipc-call-reply-cross-core-64", total, overhead: overhead / 4, operations: UInt64(rounds))
        }
    }
    var stop = IPCMessage(label: 0)
    _ = try? IPC.call(port, &stop)
    _ = try? System.wait(server)
    try? IPC.close(port)
}

/// The same CPU-bound work, 2^28 rounds of a xorshift generator, split over 1, 2 and 4 processes
/// that start together; the wall time until all have ended (`bench=scaling`). `make bench` runs it
/// without icount at -smp 1 and -smp 2, where QEMU gives each core a host thread, and reports the
/// ratio: how much a second core speeds up work spread over processes (the scheduler's balancing
/// included). The clock is the generic timer, which follows host time then.
func benchmarkScaling() {
    let work: UInt64 = 1 << 28
    let clock = System.clock
    guard clock.frequency > 0 else { return }
    _ = waitForCores(0b11)
    // A first small round is not timed: the emulator translates the loop's code once.
    if let child = try? System.spawn("bench", argument: 2 | (work >> 6) << 8) { _ = try? System.wait(child) }
    for processes in [1, 2, 4] {
        var children = InlineArray<4, ChildProcess?>(repeating: nil)
        let begin = System.clock
        for index in 0..<processes {
            children[index] = try? System.spawn("bench", argument: 2 | (work / UInt64(processes)) << 8)
        }
        var ended = 0
        for index in 0..<processes {
            if let child = children[index], let status = try? System.wait(child), status.reason == .exited { ended += 1 }
        }
        let elapsed = System.clock.microseconds(since: begin)
        guard ended == processes else {
            System.print("bench: scaling-\(processes) not measured: \(processes - ended) of the processes did not run to the end")
            return
        }
        System.print("bench: scaling-\(processes) \(elapsed) us")
    }
}

/// Whether the CPUs in `cpus` run threads, waiting up to about a second for them: a secondary
/// core joins the scheduler when it next wakes (its timer tick) once the boot core starts
/// multiprocessing, which may be after init has started.
func waitForCores(_ cpus: UInt64) -> Bool {
    for _ in 0..<100 where System.onlineCPUs & cpus != cpus { System.sleep(nanoseconds: 10_000_000) }
    return System.onlineCPUs & cpus == cpus
}

/// One process's share of the scaling work; the generator's last value's low byte is its exit
/// code, so the loop cannot be left out.
func cpuBoundWork(rounds: UInt64) -> UInt64 {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<rounds {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
    }
    return state & 0xFF
}
