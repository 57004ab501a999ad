// The program loader and the process manager, from the ramdisk init hands this suite: hostile
// ELF data is refused, programs started through the manager are waited for, killed and listed,
// hostile requests get errors, a supervised service is restarted with growing delays and then
// left stopped, and at the end the kernel holds what it held before.

func testProcessManager(_ suite: inout Suite) {
    guard let ramdisk = ProgramStart.handle(.ramdisk) else {
        suite.check(false, "started with the ramdisk under its start block's .ramdisk tag")
        return
    }
    let before = KernelFootprint.steady()
    guard let loader = try? ProgramLoader(ramdisk: ramdisk) else {
        suite.check(false, "the program loader maps the ramdisk")
        return
    }
    testHostileProgram(&suite, loader)
    var loaded = false
    if let hello = try? loader.spawn("hello"), let status = try? ProcessHandles.wait(hello.process) {
        loaded = status.reason == .exited && status.code == 0 && hello.id > 0
        try? IPC.close(hello.process)
    }
    suite.check(loaded, "the program loader starts hello from the ramdisk with the process-building calls; it exits 0")
    testSharedSegments(&suite, loader)

    if let manager = try? ProcessManager.start(with: loader, ramdisk: ramdisk) {
        let client = manager.client
        testManagedPrograms(&suite, client)
        testSpawnsArePaid(&suite, client, loader)
        testHostileRequests(&suite, client)
        testSupervision(&suite, client)
        ProcessHandles.discard(manager.process)
        client.close()
    } else {
        suite.check(false, "process-manager started with its service port and the ramdisk")
    }
    loader.close()
    let after = KernelFootprint.settled(toward: before)
    suite.check(after == before,
                "the loader and process manager leave nothing behind: kernel objects \(before.objects) before, \(after.objects) after; free frames and kernel heap pages \(before.frames) before, \(after.frames) after")
}

/// What a client asks the process manager for is paid from the client's account, within its
/// limit: crasher 15, started here with a limit of 1 MiB or none, asks the manager for crasher 16,
/// which maps 2 MiB. Under the limit the mapping is refused (or the program not even started);
/// without it, it is made. (The manager used to start every program on its own account, which
/// no client's limit bounds.)
func testSpawnsArePaid(_ suite: inout Suite, _ manager: ProcessManager, _ loader: ProgramLoader) {
    let mark = System.outOfMemoryResults
    var codes = InlineArray<2, UInt64>(repeating: 99)
    for (index, limit) in [UInt64(0), 1 << 20].enumerated() {
        var handles = StartHandles()
        guard let port = try? IPC.duplicate(manager.port, rights: [.send, .duplicate, .transfer]) else { continue }
        handles.append(.processManager, port)
        guard let child = try? loader.spawn("crasher", argument: 15 | (2 << 20) << 8, handles: handles, memoryLimit: limit) else {
            try? IPC.close(port)
            continue
        }
        if let end = try? ProcessHandles.wait(child.process), end.reason == .exited { codes[index] = end.code }
        try? IPC.close(child.process)
    }
    suite.check(codes[0] == 0 && (codes[1] == 12 || codes[1] == 13),
                "a program started through the process manager is paid by its client: 2 MiB mapped when the client has no limit (code \(codes[0])), refused under the client's 1 MiB (code \(codes[1]))",
                since: mark)
}

/// The loader maps a program's read-only segments from the ramdisk (every file starts on a page
/// there) and copies the rest: a spinner started so is charged for none of those pages, one
/// started from the same bytes copied is charged for all of them; both run until killed.
func testSharedSegments(_ suite: inout Suite, _ loader: ProgramLoader) {
    let name = UnsafeRawBufferPointer("spinner")
    guard let file = loader.file(named: name), let image = try? ProgramLoader.validate(file) else {
        suite.check(false, "spinner in the ramdisk, a valid program")
        return
    }
    var sharedPages: UInt64 = 0
    for index in 0..<image.segmentCount where loader.sharedSource?.pageOffset(of: image.segment(index), in: file) != nil {
        sharedPages += image.segment(index).pageSpan.bytes / 4096
    }
    var children: [(process: Handle, used: UInt64)] = []
    for sharing in [loader.sharedSource, nil] {
        guard let child = try? ProgramLoader.spawn(file: file, name: name, sharing: sharing) else { continue }
        let used = (try? System.invoke(SystemCall.MemoryAccount(process: child.process)))?.used ?? 0
        children.append((child.process, used))
    }
    var killed = 0
    for child in children {
        if (try? ProcessHandles.kill(child.process)) != nil, (try? ProcessHandles.wait(child.process))?.reason == .killed {
            killed += 1
        }
        try? IPC.close(child.process)
    }
    let saved = children.count == 2 ? children[1].used &- children[0].used : 0
    suite.check(killed == 2 && sharedPages >= 2 && children[0].used > 0 && saved >= sharedPages * 4096 && saved < 1 << 20,
                "the loader maps spinner's read-only segments (\(sharedPages) pages) from the ramdisk: its account holds \(children.first?.used ?? 0) bytes, a copy's \(saved) more; both run until killed")
}

/// Truncated, garbage and damaged ELF data, placed in a memory object, is refused by the loader
/// with the validator's reason and nothing made.
func testHostileProgram(_ suite: inout Suite, _ loader: ProgramLoader) {
    guard let hello = loader.file(named: UnsafeRawBufferPointer("hello")), hello.count <= 1 << 20,
          let memory = try? IPC.createMemory(bytes: 1 << 20) else {
        suite.check(false, "hello in the ramdisk and a memory object for hostile ELF data")
        return
    }
    defer { try? IPC.close(memory) }
    guard let window = try? IPC.map(memory, writable: true) else {
        suite.check(false, "a memory object for hostile ELF data maps")
        return
    }
    defer { try? System.unmap(window, bytes: 1 << 20) }
    let objects = KernelFootprint.steadyObjects
    func attempt(_ count: Int, _ damage: (UnsafeMutableRawPointer) -> Void) -> (ELFError?, KernelError?) {
        window.copyMemory(from: hello.baseAddress!, byteCount: hello.count)
        damage(window)
        let bytes = UnsafeRawBufferPointer(start: window, count: count)
        var reason: ELFError?
        do throws(ELFError) { _ = try ProgramLoader.validate(bytes) } catch { reason = error }
        var refusal: KernelError?
        do throws(KernelError) {
            let started = try ProgramLoader.spawn(file: bytes, name: UnsafeRawBufferPointer("hostile"))
            ProcessHandles.discard(started.process)
        } catch {
            refusal = error
        }
        return (reason, refusal)
    }
    let truncated = attempt(40) { _ in }
    let cut = attempt(hello.count / 2) { _ in }
    let garbage = attempt(4096) { window in
        for index in 0..<4096 { window.storeBytes(of: UInt8(truncatingIfNeeded: index &* 131 &+ 7), toByteOffset: index, as: UInt8.self) }
    }
    let machine = attempt(hello.count) { window in window.storeBytes(of: UInt16(62), toByteOffset: 18, as: UInt16.self) }
    let table = attempt(hello.count) { window in window.storeBytes(of: UInt64.max - 8, toByteOffset: 32, as: UInt64.self) }
    let invalid = KernelError.invalidArgument
    suite.check(truncated == (.truncated, invalid) && cut.0 == .segmentOutsideFile && cut.1 == invalid
                && garbage == (.badMagic, invalid) && machine == (.wrongMachine, invalid)
                && table == (.badProgramHeaderTable, invalid) && KernelFootprint.objectsSettled(toward: objects) == objects,
                "the loader refuses truncated, cut, garbage, wrong-machine and bad-table ELF data in a memory object; nothing made")
}

func testManagedPrograms(_ suite: inout Suite, _ manager: ProcessManager) {
    var helloOK = false
    if let hello = try? manager.spawn("hello"), let status = try? System.wait(hello) {
        helloOK = status.reason == .exited && status.code == 0
    }
    var crashOK = false
    if let crasher = try? manager.spawn("crasher", argument: 1), let status = try? System.wait(crasher) {
        crashOK = status.reason == .faulted && status.code >> 26 & 0x3F == 0x24
    }
    suite.check(helloOK && crashOK, "process-manager spawns hello (exits 0) and crasher (faults, ESR class 0x24); their process handles report how they ended")

    var listed = false
    var killed = false
    if let spinner = try? manager.spawn("spinner", memoryLimit: 1 << 20) {
        // Read until it has run (on a machine with several CPUs it may not have been picked up
        // yet), for a second at most.
        for _ in 0..<100 where !listed {
            System.sleep(nanoseconds: 10_000_000)
            if let entry = try? manager.entry(named: "spinner") {
                listed = entry.id == spinner.id.value && entry.state == .running && !entry.isService
                    && entry.memoryLimit == 1 << 20 && entry.memoryInUse > UserSpace.stackSize && entry.threads == 1
                    && entry.cpuNanoseconds > 0 && entry.requester == System.processID.value
            }
        }
        killed = (try? System.kill(spinner)) != nil && (try? System.wait(spinner))?.reason == .killed
    }
    // The manager collects the end on its own, a moment later (a second at most).
    var gone = false
    for _ in 0..<1000 where !gone {
        gone = absent(manager, "spinner")
        if !gone { System.sleep(nanoseconds: 1_000_000) }
    }
    suite.check(listed && killed && gone, "process-manager lists a spinner (running, its limit, the memory its account holds, one thread, some CPU time, this suite as its requester); its process handle kills it and reports the kill; then it is listed no more")

    // The loader charges a program's image, stack and start block to the program's own account.
    let tooSmall = catching { () throws(KernelError) in _ = try manager.spawn("hello", memoryLimit: 32 * 1024) }
    suite.check(tooSmall == .outOfMemory, "a program whose image does not fit its memory limit (32 KiB) is refused with out of memory")

    // The handle is the whole authority over the child: no request names a process by id.
    var handleOK = false
    if let started = try? manager.spawn("crasher") {
        let status = try? System.wait(started)
        let retiredWait = catching { () throws(KernelError) in
            var message = IPCMessage(label: 2)
            message.setWord(atByte: 0, started.id.value)
            message.length = 8
            try IPC.call(manager.port, &message)
            if message.label != 0 { throw KernelError(rawValue: message.label) ?? .invalidArgument }
        }
        handleOK = status?.reason == .exited && status?.code == 42 && retiredWait == .invalidArgument
    }
    suite.check(handleOK, "a spawn's process handle sees exit code 42; a wait by process id (label 2, retired) is refused")
}

/// Requests a client can get wrong: each gets its error reply, and the server goes on.
func testHostileRequests(_ suite: inout Suite, _ manager: ProcessManager) {
    func status(_ message: inout IPCMessage) -> UInt64 {
        guard (try? IPC.call(manager.port, &message)) != nil else { return .max }
        return message.label
    }
    let invalid = KernelError.invalidArgument.rawValue
    var unknown = IPCMessage(label: 99)
    var overlong = IPCMessage(label: ProcessManagerRequest.spawn.rawValue)
    overlong.setWord(atByte: 32, 300)
    overlong.length = 48
    var mismatched = IPCMessage(label: ProcessManagerRequest.spawn.rawValue)
    mismatched.setWord(atByte: 32, 5)
    mismatched.length = 200
    var shortList = IPCMessage(label: ProcessManagerRequest.serviceEndpoint.rawValue)
    shortList.length = 3
    let objects = KernelFootprint.steadyObjects
    var badTag = IPCMessage(label: ProcessManagerRequest.spawn.rawValue)
    if let notification = try? IPC.createNotification() { badTag.attach(notification) }
    badTag.setWord(atByte: 24, 77)
    badTag.setWord(atByte: 32, 5)
    _ = badTag.setBytes(atByte: 48, UnsafeRawBufferPointer("hello"))
    badTag.length = 53
    let statuses = (status(&unknown), status(&overlong), status(&mismatched), status(&shortList), status(&badTag))
    let missing = catching { () throws(KernelError) in _ = try manager.spawn("no-such-program") }
    let noService = catching { () throws(KernelError) in _ = try manager.serviceEndpoint(UnsafeRawBufferPointer("nothing")) }
    // Services are started, stopped and crashed only through the control port: on the client
    // port those requests are refused, whoever sends them.
    // (A client that takes the client port for the control port, so that the request is sent.)
    let uncontrolled = ProcessManager(manager.port, control: manager.port)
    let startRefused = catching { () throws(KernelError) in
        _ = try uncontrolled.startService(UnsafeRawBufferPointer("sneaky"), program: UnsafeRawBufferPointer("hello"),
                                          policy: .never)
    }
    var crashOnClientPort = IPCMessage(label: ProcessManagerRequest.crashService.rawValue)
    crashOnClientPort.setWord(atByte: 0, 5)
    _ = crashOnClientPort.setBytes(atByte: 8, UnsafeRawBufferPointer("flaky"))
    crashOnClientPort.length = 13
    let crashRefused = status(&crashOnClientPort)
    let alive = absent(manager, "nothing") && absent(manager, "sneaky")
    suite.check(statuses == (invalid, invalid, invalid, invalid, invalid) && missing == .notFound && noService == .notFound
                && startRefused == .accessDenied && crashRefused == KernelError.accessDenied.rawValue
                && alive && KernelFootprint.objectsSettled(toward: objects) == objects,
                "process-manager refuses an unknown label, bad lengths, a bad handle tag (closing the handle), a missing program and a missing service, and service control on the client port; it keeps serving")

    // Clients cannot take the manager's whole table: at most 24 processes they asked for at a
    // time, and one client at most half of them (queueFull beyond), and room again once they
    // end; services keep restarting. A service stopped while it runs first: its instance's end is
    // no client's, and makes no more room.
    if let (_, port, _) = try? manager.startService(UnsafeRawBufferPointer("stopped"), program: UnsafeRawBufferPointer("crasher"),
                                                   argument: 12, policy: .never) {
        try? IPC.close(port)
        try? manager.stopService(UnsafeRawBufferPointer("stopped"))
    }
    var sleepers = InlineArray<30, ChildProcess?>(repeating: nil)
    var started = 0
    var refusal: KernelError?
    var attempts = 0
    while started < 30 && refusal == nil && attempts < 300 {
        attempts += 1
        do throws(KernelError) {
            sleepers[started] = try manager.spawn("crasher", argument: 12, memoryLimit: 1 << 20)
            started += 1
        } catch {
            // A refusal of memory (under fault injection) is tried again; anything else stops.
            if error != .outOfMemory { refusal = error }
        }
    }
    var ended = true
    for index in 0..<started {
        guard let sleeper = sleepers[index] else { continue }
        ended = ended && (try? System.kill(sleeper)) != nil && (try? System.wait(sleeper))?.reason == .killed
    }
    // The manager collects the ends on its own, a moment later.
    var again: ChildProcess?
    let sleepersEnded = System.clock
    while again == nil && System.clock.milliseconds(since: sleepersEnded) < 2000 {
        again = try? manager.spawn("hello")
        if again == nil { System.sleep(nanoseconds: 1_000_000) }
    }
    let helloRan = again.flatMap { try? System.wait($0) }?.code == 0
    suite.check(refusal == .queueFull && started == 12 && ended && helloRan,
                "process-manager starts at most 12 programs at once for one client (\(started) here, then queue full; 24 for all), and starts them again once those end")

    // The programs a client started there share its twelve when they ask for more: six sleepers
    // of this suite, then a crasher that starts sleepers until refused gets the five left (not
    // twelve of its own, which would let a client's children take every slot).
    System.sleep(nanoseconds: 50_000_000) // the manager collects the ends above
    var mine = InlineArray<6, ChildProcess?>(repeating: nil)
    var mineStarted = 0
    var tries = 0
    while mineStarted < 6 && tries < 100 {
        tries += 1
        if let sleeper = try? manager.spawn("crasher", argument: 12, memoryLimit: 1 << 20) {
            mine[mineStarted] = sleeper
            mineStarted += 1
        }
    }
    var childStarted: UInt64?
    if mineStarted == 6, let spawner = try? manager.spawn("crasher", argument: 20, memoryLimit: 16 << 20) {
        childStarted = (try? System.wait(spawner)).map { $0.code }
    }
    for index in 0..<mineStarted {
        guard let sleeper = mine[index] else { continue }
        try? System.kill(sleeper)
        _ = try? System.wait(sleeper)
    }
    suite.check(mineStarted == 6 && childStarted == 5,
                "a program a client started through process-manager shares that client's 12: with 6 of the client's running, it starts \(childStarted ?? 0) (5) before queue full")

    // A program whose client has gone is held by nobody else: the control port ends any program a
    // client asked for, by id. Not on the client port, not a service's instance, not an unknown id.
    var endedByID = false
    var endings = InlineArray<4, UInt64>(repeating: 99)
    if let sleeper = try? manager.spawn("crasher", argument: 12, memoryLimit: 1 << 20) {
        let refused = catching { () throws(KernelError) in try uncontrolled.endProgram(sleeper.id.value) }
        var instance: KernelError?
        if let (id, port, _) = try? manager.startService(UnsafeRawBufferPointer("instance"), program: UnsafeRawBufferPointer("crasher"),
                                                        argument: 12, policy: .never) {
            try? IPC.close(port)
            instance = catching { () throws(KernelError) in try manager.endProgram(id) }
            try? manager.stopService(UnsafeRawBufferPointer("instance"))
        }
        let unknown = catching { () throws(KernelError) in try manager.endProgram(0xFFFF_FFFF) }
        let ended = catching { () throws(KernelError) in try manager.endProgram(sleeper.id.value) }
        let status = try? System.wait(sleeper)
        endings = [refused?.rawValue ?? 0, instance?.rawValue ?? 0, unknown?.rawValue ?? 0, ended?.rawValue ?? 0]
        endedByID = refused == .accessDenied && instance == .notFound && unknown == .notFound && ended == nil
            && status?.reason == .killed
    }
    suite.check(endedByID, "process-manager ends a client's program by id on the control port (its client sees it killed); refused on the client port, not found for a service's instance or an unknown id (statuses \(endings[0]), \(endings[1]), \(endings[2]), \(endings[3]))")
}

/// A service that faults at once is restarted after 10, 20, 40, 80 and 160 ms, then left
/// stopped; a service that faults while holding a call is restarted with a fresh port.
func testSupervision(_ suite: inout Suite, _ manager: ProcessManager) {
    func milliseconds() -> UInt64 { System.clock.milliseconds }
    var seen = InlineArray<8, UInt64>(repeating: 0)
    var seenCount = 0
    var last: UInt64 = 0
    var final: ProcessEntry?
    var requested: UInt64 = 0
    var stoppedSeen: UInt64 = 0
    if let (_, port, _) = try? manager.startService(UnsafeRawBufferPointer("flaky"), program: UnsafeRawBufferPointer("crasher"),
                                                   argument: 1, policy: .onFailure) {
        try? IPC.close(port)
        let start = milliseconds()
        requested = start
        while milliseconds() - start < 3000 {
            guard let entry = try? manager.entry(named: "flaky") else { break }
            if entry.id != last && seenCount < 8 {
                last = entry.id
                seen[seenCount] = milliseconds()
                seenCount += 1
            }
            if entry.state == .stopped {
                final = entry
                stoppedSeen = milliseconds()
                break
            }
            System.sleep(nanoseconds: 1_000_000)
        }
        try? manager.stopService(UnsafeRawBufferPointer("flaky"))
    }
    // The intervals between the instances this thread saw, for the report. What can be
    // relied on is a lower bound that seeing late cannot break: the service cannot be stopped
    // before all five delays (10 + 20 + 40 + 80 + 160 ms) have passed since it was requested.
    // (A late look at one instance shortens the next interval, so single intervals prove
    // nothing on a busy machine; the boot test reads each delay from the manager's log.)
    // Instances can also start and fault between two looks: the manager's own count of
    // restarts says how many there were.
    let growing = final != nil && stoppedSeen + 2 >= requested + 310
    var intervals = TextLine()
    for index in 1..<max(seenCount, 1) {
        intervals.writeDecimal(seen[index] - seen[index - 1])
        intervals.write(index < seenCount - 1 ? ", " : " ms")
    }
    var description = TextLine()
    description.write("a faulting service is restarted 5 times with growing delays (")
    intervals.forEachByte { description.write(byte: $0) }
    description.write("), then left stopped, ")
    description.writeDecimal(stoppedSeen &- requested)
    description.write(" ms after it was started (the delays add up to 310)")
    suite.check(growing && final?.restarts == 5 && final?.restartDelayMilliseconds == 160, FormattedText(line: description))

    var restartedOK = false
    if let (first, port, _) = try? manager.startService(UnsafeRawBufferPointer("answering"),
                                                       program: UnsafeRawBufferPointer("crasher"), argument: 10,
                                                       policy: .always) {
        var message = IPCMessage(label: 1)
        let answered = (try? IPC.call(port, &message)) != nil && message.label == 2
        message = IPCMessage(label: 3)
        let died = catching { () throws(KernelError) in try IPC.call(port, &message) }
        message = IPCMessage(label: 1)
        let stale = catching { () throws(KernelError) in try IPC.call(port, &message) }
        try? IPC.close(port)
        // Until the manager has seen the fault it still names the old instance: wait for a new one.
        var endpoint: (id: UInt64, port: Handle)?
        let faulted = System.clock
        while endpoint == nil && System.clock.milliseconds(since: faulted) < 2000 {
            System.sleep(nanoseconds: 5_000_000)
            guard let found = try? manager.serviceEndpoint(UnsafeRawBufferPointer("answering")) else { continue }
            if found.id != first { endpoint = found } else { try? IPC.close(found.port) }
        }
        if endpoint == nil { System.print("tests: the manager named no new instance of answering within 2 s") }
        if let endpoint {
            message = IPCMessage(label: 1)
            restartedOK = answered && died == .peerClosed && stale == .peerClosed && endpoint.id != first
                && (try? IPC.call(endpoint.port, &message)) != nil && message.label == 2
            try? IPC.close(endpoint.port)
        }
        try? manager.stopService(UnsafeRawBufferPointer("answering"))
    }
    let forgotten = absent(manager, "answering")
    suite.check(restartedOK && forgotten,
                "a service that faults holding a call: the caller and the old port get peer closed; the new instance answers on a fresh port; stopped, it is forgotten")

    // A private port outlives the instances: the same send right reaches the next one, and
    // once the service is stopped a call there fails instead of waiting for ever.
    let objectsBefore = KernelFootprint.steadyObjects
    let mark = System.outOfMemoryResults
    var privateOK = false
    if let (first, port, privatePort) = try? manager.startService(UnsafeRawBufferPointer("private"),
                                                                   program: UnsafeRawBufferPointer("crasher"), argument: 10,
                                                                   policy: .always, options: .privatePort),
       let privatePort {
        var message = IPCMessage(label: 1)
        let publicAnswer = (try? IPC.call(port, &message)) != nil ? message.label : 0
        message = IPCMessage(label: 1)
        let privateAnswer = (try? IPC.call(privatePort, &message)) != nil ? message.label : 0
        message = IPCMessage(label: 3)
        let died = catching { () throws(KernelError) in try IPC.call(privatePort, &message) }
        // The same send right, while the manager restarts the service: the call waits on the
        // port for the next instance, which answers it.
        message = IPCMessage(label: 1)
        let afterRestart = (try? IPC.call(privatePort, &message)) != nil ? message.label : 0
        let second = (try? manager.serviceEndpoint(UnsafeRawBufferPointer("private")))
        if let second { try? IPC.close(second.port) }
        try? IPC.close(port)
        try? manager.stopService(UnsafeRawBufferPointer("private"))
        message = IPCMessage(label: 1)
        let afterStop = catching { () throws(KernelError) in try IPC.call(privatePort, &message) }
        try? IPC.close(privatePort)
        privateOK = publicAnswer == 2 && privateAnswer == 102 && died == .peerClosed && afterRestart == 102
            && second != nil && second?.id != first && afterStop == .peerClosed
        if !privateOK {
            System.print("tests: private port: answers \(publicAnswer) and \(privateAnswer), the fault \(died?.rawValue ?? 0), after the restart \(afterRestart) (new instance \(second != nil && second?.id != first)), after the stop \(afterStop?.rawValue ?? 0)")
        }
    }
    let privateForgotten = absent(manager, "private")
    // The stopped instance may still be leaving the kernel.
    let settled = KernelFootprint.objectsSettled(toward: objectsBefore) == objectsBefore
    suite.check(privateOK && privateForgotten && settled,
                "a service's private port outlives its instances: the same send right reaches the next one, and a call there fails with peer closed once the service is stopped; nothing is left",
                since: mark)
}

/// Whether the manager answers a list and has no entry named `name`.
func absent(_ manager: ProcessManager, _ name: StaticString) -> Bool {
    do throws(KernelError) {
        return try manager.entry(named: name) == nil
    } catch {
        return false
    }
}
