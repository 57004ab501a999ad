// The name service (userland/services/names) in single-port mode: started here with one port and
// no start block, it takes lookups and registrations on it. Registration, lookup and generations,
// a service marked down and registered again, removal, a full table, listing over several answers,
// and hostile requests (bad labels and names, handles where none belong, plain sends, a client
// whose handle table is full), after which it still answers; nothing is left behind once it ends.

/// The status label `request` is answered with (all ones if the call itself failed); any handle
/// the answer carries is closed.
private func answerStatus(_ port: Handle, _ request: inout IPCMessage) -> UInt64 {
    guard (try? IPC.call(port, &request)) != nil else { return .max }
    for index in 0..<min(request.handleCount, IPCMessageLayout.maximumHandles) { try? IPC.close(request.handle(index)) }
    return request.label
}

/// A request with `label` and `name` as its payload.
private func nameRequest(_ label: UInt64, _ name: StaticString) -> IPCMessage {
    var message = IPCMessage(label: label)
    message.fill(count: name.utf8CodeUnitCount) { name.utf8Start[$0] }
    return message
}

/// A send right (send, duplicate, transfer) to a port whose own handle is closed: the port lives
/// exactly as long as this handle, so a handle the service forgets to close shows as a kernel object.
private func loneSendRight() -> Handle? {
    guard let port = try? IPC.createPort() else { return nil }
    defer { try? IPC.close(port) }
    return try? IPC.duplicate(port, rights: NamesProtocol.portRights)
}

/// Whether a message sent through `sender` arrives on `receiver`.
private func reaches(_ sender: Handle, _ receiver: Handle, label: UInt64) -> Bool {
    var message = IPCMessage(label: label)
    guard (try? IPC.send(sender, &message)) != nil else { return false }
    var received = IPCMessage()
    return (try? IPC.receive(receiver, into: &received, timeout: 0)) != nil && received.label == label
}

private func failure(_ body: () throws(KernelError) -> Void) -> UInt64 {
    catching(body)?.rawValue ?? NamesProtocol.success
}

/// The status of a lookup of `name`; a send right it gives is closed.
private func lookupStatus(_ names: Names, _ name: StaticString) -> UInt64 {
    failure { () throws(KernelError) in try IPC.close(try names.lookup(name).port) }
}

/// Closes each of `handles` that exists: what a case made before one of its requests was refused.
private func closeAll(_ handles: Handle?...) {
    for handle in handles { if let handle { try? IPC.close(handle) } }
}

func testNameService(_ suite: inout Suite) {
    let before = KernelHoldings.steady
    let port = try? IPC.createPort()
    let serverSide = port.flatMap { try? IPC.duplicate($0, rights: [.receive, .transfer]) }
    guard let port, let serverSide, let server = try? System.spawn("names", handle: serverSide) else {
        closeAll(port, serverSide)
        suite.check(false, "names started with one port")
        return
    }
    let names = Names(port)
    let registrar = NameRegistrar(port)
    var listed: [NameRecord] = []

    // An empty table.
    let unknown = lookupStatus(names, "alpha")
    let emptyList = catching { () throws(KernelError) in try names.list { listed.append($0) } }
    suite.check(unknown == KernelError.notFound.rawValue && emptyList == nil && listed.isEmpty,
                "names: a lookup of a name nobody registered is not found; the list is empty")

    // Register, look up, and reach the service through the handle the lookup gave.
    var registered = false
    let first = try? IPC.createPort(), second = try? IPC.createPort()
    let toFirst = first.flatMap { try? IPC.duplicate($0, rights: NamesProtocol.portRights) }
    let toSecond = second.flatMap { try? IPC.duplicate($0, rights: NamesProtocol.portRights) }
    if let first, let second, let toFirst, let toSecond {
        let generation = try? registrar.register("alpha", port: toFirst)
        var found = false
        if let answer = try? names.lookup("alpha") {
            found = answer.generation == 1 && reaches(answer.port, first, label: 71)
            try? IPC.close(answer.port)
        }
        // A restarted instance registers again: generation 2, and lookups lead to its new port.
        let again = try? registrar.register("alpha", port: toSecond)
        var foundAgain = false
        if let answer = try? names.lookup("alpha") {
            foundAgain = answer.generation == 2 && reaches(answer.port, second, label: 72)
            try? IPC.close(answer.port)
        }
        registered = generation == 1 && found && again == 2 && foundAgain
    } else {
        closeAll(toFirst, toSecond)
    }
    closeAll(first, second)
    suite.check(registered, "names: register gives generation 1, lookup a send right reaching the service's port; a second register generation 2 and the new port")

    // Marked down: the name stays, lookups say "would block" until the next registration.
    var downCase = false
    let restarted = try? IPC.createPort()
    if let service = restarted, let toService = try? IPC.duplicate(service, rights: NamesProtocol.portRights) {
        let ended = try? registrar.markDown("alpha")
        let whileDown = lookupStatus(names, "alpha")
        listed = []
        try? names.list { listed.append($0) }
        let listedDown = listed.count == 1 && listed[0].name.equals("alpha") && listed[0].state == .restarting
            && listed[0].generation == 2
        let twice = try? registrar.markDown("alpha")
        let back = try? registrar.register("alpha", port: toService)
        var reachedBack = false
        if let answer = try? names.lookup("alpha") {
            reachedBack = answer.generation == 3 && reaches(answer.port, service, label: 73)
            try? IPC.close(answer.port)
        }
        downCase = ended == 2 && whileDown == KernelError.wouldBlock.rawValue && listedDown && twice == 2 && back == 3 && reachedBack
    }
    closeAll(restarted)
    suite.check(downCase, "names: a service marked down keeps its name (listed restarting, lookups would block) and comes back as generation 3")

    // The registrar may say the generation itself (the process manager counts instances): it
    // then holds across a restart of the name service; 0 is refused.
    var given: UInt64?
    var zeroRefused = false
    var lookedUp: UInt64?
    if let lone = loneSendRight() {
        given = try? registrar.register(UnsafeRawBufferPointer(start: ("gamma" as StaticString).utf8Start, count: 5),
                                        port: lone, generation: 41)
        lookedUp = (try? names.lookup("gamma")).map { answer in
            try? IPC.close(answer.port)
            return answer.generation
        }
    }
    if let lone = loneSendRight() {
        do throws(KernelError) {
            _ = try registrar.register(UnsafeRawBufferPointer(start: ("gamma" as StaticString).utf8Start, count: 5),
                                       port: lone, generation: 0)
        } catch {
            zeroRefused = error == .invalidArgument
        }
    }
    // One that a later registration could not add one to is refused too (the service would trap).
    var hugeRefused = [false, false]
    for (index, generation) in [UInt64.max, 1 << 62].enumerated() {
        guard let lone = loneSendRight() else { continue }
        do throws(KernelError) {
            _ = try registrar.register(UnsafeRawBufferPointer(start: ("gamma" as StaticString).utf8Start, count: 5),
                                       port: lone, generation: generation)
        } catch {
            hugeRefused[index] = error == .invalidArgument
        }
    }
    let afterHuge = (try? names.lookup("gamma")).map { answer in
        try? IPC.close(answer.port)
        return answer.generation
    }
    try? registrar.unregister("gamma")
    suite.check(given == 41 && lookedUp == 41 && zeroRefused && hugeRefused == [true, true] && afterHuge == 41,
                "names: a registration with the registrar's own generation (41) is answered with it; generations 0, 2^64-1 and 2^62 are refused (\(hugeRefused[0]), \(hugeRefused[1])) and the name stays at 41 (\(afterHuge ?? 0))")

    // Removed: gone for lookups and for the registrar; a new registration starts at 1 again.
    let removed = failure { () throws(KernelError) in try registrar.unregister("alpha") }
    let afterRemoval = lookupStatus(names, "alpha")
    let removedTwice = failure { () throws(KernelError) in try registrar.unregister("alpha") }
    let downUnknown = failure { () throws(KernelError) in _ = try registrar.markDown("alpha") }
    var fresh: UInt64?
    if let lone = loneSendRight() {
        fresh = try? registrar.register("alpha", port: lone)
        try? registrar.unregister("alpha")
    }
    suite.check(removed == 0 && afterRemoval == KernelError.notFound.rawValue && removedTwice == KernelError.notFound.rawValue
                && downUnknown == KernelError.notFound.rawValue && fresh == 1,
                "names: unregister removes a name (then not found for lookup, unregister and markDown); registered again it is generation 1")

    testFullNameTable(&suite, names, registrar)
    testHostileNameRequests(&suite, port, names, registrar)

    let stopped = (try? System.kill(server)) != nil && (try? System.wait(server))?.reason == .killed
    try? IPC.close(port)
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(stopped && after.objects == before.objects && after.chargedBytes == before.chargedBytes
                && after.framesAvailable == before.framesAvailable,
                "names leaves nothing behind: kernel objects \(before.objects) before, \(after.objects) after; frames \(before.framesAvailable), \(after.framesAvailable)")
}

/// 48 names fill the table; the 49th is refused with outOfMemory; the list pages through all.
private func testFullNameTable(_ suite: inout Suite, _ names: Names, _ registrar: NameRegistrar) {
    let objectsBefore = KernelFootprint.steadyObjects
    var registered = 0
    var refusal: KernelError?
    for index in 0..<(NamesProtocol.maximumNames + 1) {
        var name = ServiceName()
        name.append(UInt8(ascii: "s"))
        name.append(UInt8(ascii: "0") + UInt8(index / 10))
        name.append(UInt8(ascii: "0") + UInt8(index % 10))
        guard let lone = loneSendRight() else { break }
        if let failure = catching({ () throws(KernelError) in _ = try registrar.register(name, port: lone) }) {
            refusal = failure
            break
        }
        registered += 1
    }
    var listed: [NameRecord] = []
    let listing = catching { () throws(KernelError) in try names.list { listed.append($0) } }
    var inOrder = listed.count == registered
    for (index, record) in listed.enumerated() {
        inOrder = inOrder && record.generation == 1 && record.state == .up && record.name.count == 3
            && record.name[1] == UInt8(ascii: "0") + UInt8(index / 10) && record.name[2] == UInt8(ascii: "0") + UInt8(index % 10)
    }
    var removed = 0
    for record in listed where (try? registrar.unregister(record.name)) != nil { removed += 1 }
    var left: [NameRecord] = []
    try? names.list { left.append($0) }
    suite.check(registered == NamesProtocol.maximumNames && refusal == .outOfMemory && listing == nil && inOrder
                && removed == registered && left.isEmpty && KernelFootprint.objectsSettled(toward: objectsBefore) == objectsBefore,
                "names: \(registered) names fill the table, one more is out of memory; the list pages through all \(listed.count); removed, their ports are freed")
}

/// Requests a careless or hostile client could make: each is refused, every handle it carried is
/// closed, and the service goes on answering.
private func testHostileNameRequests(_ suite: inout Suite, _ port: Handle, _ names: Names, _ registrar: NameRegistrar) {
    let invalid = KernelError.invalidArgument.rawValue
    var unknownLabel = IPCMessage(label: 99)
    var emptyName = IPCMessage(label: NamesProtocol.lookup)
    var longName = IPCMessage(label: NamesProtocol.lookup)
    longName.fill(count: 33) { _ in UInt8(ascii: "n") }
    var spaced = nameRequest(NamesProtocol.lookup, "a b")
    var slashed = nameRequest(NamesProtocol.markDown, "a/b")
    var fullPayload = nameRequest(NamesProtocol.unregister, "alpha")
    fullPayload.fill(count: 256) { _ in UInt8(ascii: "a") }
    var shortCursor = IPCMessage(label: NamesProtocol.list)
    shortCursor.fill(count: 3) { _ in 0 }
    var farCursor = IPCMessage(label: NamesProtocol.list)
    farCursor.fill(count: 8) { _ in 0xFF }
    var lyingLength = nameRequest(NamesProtocol.lookup, "alpha")
    lyingLength.setRawLength(4096)
    let lyingRefused = catching { () throws(KernelError) in try IPC.call(port, &lyingLength) }
    let farAnswer = answerStatus(port, &farCursor)
    suite.check(answerStatus(port, &unknownLabel) == invalid && answerStatus(port, &emptyName) == invalid
                && answerStatus(port, &longName) == invalid && answerStatus(port, &spaced) == invalid
                && answerStatus(port, &slashed) == invalid && answerStatus(port, &fullPayload) == invalid
                && answerStatus(port, &shortCursor) == invalid && lyingRefused == .invalidArgument
                && farAnswer == 0 && farCursor.word(atByte: 0) == NamesProtocol.endOfList
                && farCursor.word(atByte: 8) == 0,
                "names: unknown labels, empty, long and malformed names, bad list cursors are invalid arguments; a length past 256 never leaves")

    // Handles where none belong, too many or too few, and rights that will not do.
    let objectsBefore = KernelFootprint.steadyObjects
    var refusals = 0
    var attempts = 0
    for round in 0..<20 {
        var request = nameRequest(round % 2 == 0 ? NamesProtocol.lookup : NamesProtocol.register, "beta")
        let wanted = round % 2 == 0 ? 4 : 2
        for _ in 0..<wanted { if let lone = loneSendRight() { request.attach(lone) } }
        // Short of handles (memory refused), the request would mean something else: not sent.
        guard request.handleCount == wanted else {
            for index in 0..<request.handleCount { try? IPC.close(request.handle(index)) }
            continue
        }
        attempts += 1
        if answerStatus(port, &request) == invalid { refusals += 1 }
    }
    var bare = nameRequest(NamesProtocol.register, "beta")
    let noHandle = answerStatus(port, &bare)
    var notifying = nameRequest(NamesProtocol.register, "beta")
    var sendOnlyStatus: UInt64 = .max
    var notificationStatus: UInt64 = .max
    if let notification = try? IPC.createNotification() {
        notifying.attach(notification)
        notificationStatus = answerStatus(port, &notifying)
    }
    let target = try? IPC.createPort()
    if let target, let sendOnly = try? IPC.duplicate(target, rights: [.send, .transfer]) {
        var request = nameRequest(NamesProtocol.register, "beta")
        request.attach(sendOnly)
        sendOnlyStatus = answerStatus(port, &request)
    }
    closeAll(target)
    // Plain sends expect no answer: their handles are closed all the same.
    var sent = 0
    for _ in 0..<8 {
        var message = nameRequest(NamesProtocol.lookup, "beta")
        if let lone = loneSendRight() { message.attach(lone) }
        if (try? IPC.send(port, &message)) != nil { sent += 1 }
    }
    let stillServes = lookupStatus(names, "beta") == KernelError.notFound.rawValue
    suite.check(attempts > 0 && refusals == attempts && noHandle == invalid && notificationStatus == KernelError.accessDenied.rawValue
                && sendOnlyStatus == KernelError.accessDenied.rawValue && sent == 8 && stillServes
                && KernelFootprint.objectsSettled(toward: objectsBefore) == objectsBefore,
                "names: handles on a lookup, two or none on a register, a notification or a send right without duplicate are refused; plain sends ignored; every handle closed (objects \(objectsBefore) → \(System.kernelObjects.objects))")

    // A client whose handle table is full cannot take the send right it asked for: its call fails
    // with handleTableFull, the right is closed, and the service goes on.
    var fullTable = false
    let service = try? IPC.createPort()
    if let service, let toService = try? IPC.duplicate(service, rights: NamesProtocol.portRights),
       (try? registrar.register("gamma", port: toService)) != nil {
        let objects = KernelFootprint.steadyObjects
        var fillers: [Handle] = []
        fillers.reserveCapacity(64)
        while let filler = try? IPC.duplicate(service, rights: [.send]) { fillers.append(filler) }
        let refused = catching { () throws(KernelError) in try IPC.close(try names.lookup("gamma").port) }
        for filler in fillers { try? IPC.close(filler) }
        var reachedAfter = false
        if let answer = try? names.lookup("gamma") {
            reachedAfter = reaches(answer.port, service, label: 74)
            try? IPC.close(answer.port)
        }
        fullTable = refused == .handleTableFull && reachedAfter && KernelFootprint.objectsSettled(toward: objects) == objects
        try? registrar.unregister("gamma")
    }
    closeAll(service)
    suite.check(fullTable, "names: a client with a full handle table gets handle table full for a lookup; the service goes on")
}
