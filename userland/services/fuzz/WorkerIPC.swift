// A worker's IPC calls: creating, closing and duplicating handles, messages sent, called and
// received on its own ports (whose queues the model keeps), on its server thread's port and on
// server children's ports, notifications and waits. Handles travel in messages all or nothing:
// a failed send leaves every one in the table, a received message brings exactly what was sent.

extension Worker {
    // MARK: Handles

    mutating func createObject() {
        switch random.below(3) {
        case 0: createPortOrNotification(.portCreate, .port)
        case 1: createPortOrNotification(.notificationCreate, .notification)
        default: memoryObject()
        }
    }

    mutating func createPortOrNotification(_ number: SystemCallNumber, _ kind: ObjectKind) {
        let outcome = caller.make(number.rawValue, expect: model.freeSlots > 0 ? .successUnlessShort : .failure)
        guard outcome.succeeded else { return }
        adopt(outcome.value1, kind: kind, rights: kind == .port ? .newPort : .newNotification, pages: 0)
    }

    /// Takes a handle a call just created into the model (or closes it if the model is full).
    mutating func adopt(_ value: UInt64, kind: ObjectKind, rights: Rights, pages: Int) {
        if value == 0 || model.isLive(value) {
            Report.violation("a new handle \(hex: value) is 0 or already in use")
            return
        }
        guard model.handleCount < Model.handleCapacity, let object = model.newObject(kind) else {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, value, expect: .success)
            model.markStale(value)
            return
        }
        model.objects[object].pages = pages
        model.addHandle(value, object: object, rights: rights, isNew: true)
    }

    mutating func closeHandle() {
        if let index = pickHandle(nil, service: nil), random.below(3) != 0 {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, model.handles[index].value, expect: .success)
            model.closeHandle(at: index)
        } else {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, foreignHandle(), expect: .failure)
        }
    }

    mutating func duplicateHandle() {
        let rights = randomRights()
        guard let index = pickHandle(nil, service: nil), random.below(5) != 0 else {
            _ = caller.make(SystemCallNumber.handleDuplicate.rawValue, foreignHandle(), rights.rawValue, expect: .failure)
            return
        }
        let handle = model.handles[index]
        let allowed = handle.rights.contains(.duplicate) && rights.isSubset(of: .all) && rights.isSubset(of: handle.rights)
        let outcome = caller.make(SystemCallNumber.handleDuplicate.rawValue, handle.value, rights.rawValue,
                                  expect: allowed && model.freeSlots > 0 ? .success : .failure)
        guard outcome.succeeded else { return }
        if outcome.value1 == 0 || model.isLive(outcome.value1) {
            Report.violation("handleDuplicate returned \(hex: outcome.value1), 0 or already in use")
            return
        }
        if model.handleCount < Model.handleCapacity {
            model.addHandle(outcome.value1, object: handle.object, rights: rights, isNew: true)
        } else {
            _ = caller.make(SystemCallNumber.handleClose.rawValue, outcome.value1, expect: .success)
        }
    }

    // MARK: Messages

    /// Where a message goes.
    enum Destination {
        /// A port whose queue the model keeps (object index).
        case modelled(Int)
        case server
        /// A server child's port (child index).
        case child(Int)
        /// A handle that is not a port with the send right: the call must fail.
        case unusable
    }

    /// A message to write and what the kernel must make of it.
    struct Plan {
        var label: UInt64 = 0
        var length: UInt64 = 0
        var count: UInt64 = 0
        var values = InlineArray<4, UInt64>(repeating: 0)
        var seed: UInt64 = 0
        /// Every field within the ABI's limits and every listed handle movable.
        var acceptable = true
    }

    /// Whether handle `index` may travel in a message that must be accepted: it needs the
    /// transfer right, and it must not hold the receive right (only the send side of a port
    /// moves in messages, docs/SYSCALLS.md).
    func mayAttach(_ index: Int) -> Bool {
        let handle = model.handles[index]
        return handle.rights.contains(.transfer) && !handle.rights.contains(.receive)
    }

    mutating func plan(room: Int) -> Plan {
        var plan = Plan()
        plan.label = newLabel()
        plan.seed = random.next() | 1
        if random.below(7) == 0 {
            let hostile: InlineArray<5, UInt64> = [257, 264, 4096, 1 << 32, UInt64.max]
            plan.length = hostile[random.below(5)]
            plan.acceptable = false
        } else {
            plan.length = random.below(UInt64(IPCMessageLayout.maximumPayload + 1))
        }
        switch random.below(20) {
        case 0..<9: plan.count = 0
        case 9..<18: plan.count = UInt64(min(random.between(1, 4), UInt64(room)))
        default:
            let hostile: InlineArray<4, UInt64> = [5, 8, 1 << 32, UInt64.max]
            plan.count = hostile[random.below(4)]
            plan.acceptable = false
            return plan
        }
        for slot in 0..<Int(plan.count) {
            var value: UInt64 = 0
            if random.below(6) != 0 {
                if let index = pickAttachable(excluding: plan, upTo: slot) {
                    value = model.handles[index].value
                }
            }
            if value == 0 {
                plan.acceptable = false
                switch random.below(4) {
                case 0 where slot > 0: value = plan.values[random.below(slot)]
                case 1:
                    if let index = pickHandle(nil, service: nil), !model.handles[index].rights.contains(.transfer) {
                        value = model.handles[index].value
                    } else {
                        value = foreignHandle()
                    }
                case 2:
                    // A receive right: never movable in a message.
                    value = pickHandle(.port, rights: .receive).map { model.handles[$0].value } ?? foreignHandle()
                default: value = foreignHandle()
                }
            }
            plan.values[slot] = value
        }
        return plan
    }

    mutating func pickAttachable(excluding plan: Plan, upTo count: Int) -> Int? {
        guard model.handleCount > 0 else { return nil }
        let start = random.below(model.handleCount)
        for offset in 0..<model.handleCount {
            let index = (start + offset) % model.handleCount
            var listed = false
            for slot in 0..<count where plan.values[slot] == model.handles[index].value { listed = true }
            if !listed && mayAttach(index) { return index }
        }
        return nil
    }

    /// Writes `plan` at `buffer` (as much of it as is writable) with garbage in the fields the
    /// sender does not own.
    mutating func write(_ plan: Plan, at buffer: Buffer) {
        let writable: UInt64
        switch buffer {
        case .valid, .unaligned: writable = UInt64(IPCMessageLayout.size)
        case .straddling(_, let readable): writable = readable
        default: return
        }
        let base = UnsafeMutableRawPointer(bitPattern: UInt(buffer.address))!
        var header = InlineArray<9, UInt64>(repeating: 0)
        header[0] = plan.label
        header[1] = plan.length
        header[2] = plan.count
        header[3] = random.next()
        header[4] = random.next()
        for slot in 0..<4 { header[5 + slot] = slot < Int(min(plan.count, 4)) ? plan.values[slot] : random.next() }
        for word in 0..<9 where UInt64(word * 8 + 8) <= writable {
            base.storeBytes(of: header[word], toByteOffset: word * 8, as: UInt64.self)
        }
        let payload = Int(min(plan.length, UInt64(IPCMessageLayout.maximumPayload) + 8))
        for index in 0..<payload where UInt64(IPCMessageLayout.payload + index) < writable {
            base.storeBytes(of: Self.payloadByte(plan.seed, index), toByteOffset: IPCMessageLayout.payload + index,
                            as: UInt8.self)
        }
    }

    /// Whether the kernel can read the whole message `plan` describes from `buffer`.
    func isReadable(_ plan: Plan, at buffer: Buffer) -> Bool {
        switch buffer {
        case .valid, .readOnly: return true
        case .straddling(_, let readable):
            return readable >= UInt64(IPCMessageLayout.payload) + Self.roundedLength(min(plan.length, 1 << 20))
        default: return false
        }
    }

    /// Whether the kernel can write a message of `length` bytes at `buffer`.
    func isWritable(_ buffer: Buffer, length: UInt64) -> Bool {
        switch buffer {
        case .valid: return true
        case .straddling(_, let readable): return readable >= UInt64(IPCMessageLayout.payload) + Self.roundedLength(length)
        default: return false
        }
    }

    mutating func sendMessage(call: Bool) {
        // The handle to send on, and where it leads.
        var destination = Destination.unusable
        var sendHandle: UInt64
        let roll = random.below(20)
        if roll < 9, let index = pickHandle(.port, service: .worker) {
            let handle = model.handles[index]
            sendHandle = handle.value
            let port = handle.object
            if !handle.rights.contains(.send) {
                destination = .unusable
            } else if call && !model.objects[port].closed && !model.queueIsFull(port) {
                // Nobody answers a call on the worker's own ports: it would wait for ever.
                sendHandle = serverPort
                destination = .server
            } else {
                destination = .modelled(port)
            }
        } else if roll < 14 {
            sendHandle = serverPort
            destination = .server
        } else if roll < 17, let child = serverChild(), let index = pickHandle(.port, rights: .send, service: .child),
                  model.handles[index].object == model.children[child].port {
            sendHandle = model.handles[index].value
            destination = .child(child)
        } else if roll < 19, let index = pickHandle(random.oneIn(2) ? .notification : .memory, service: nil) {
            sendHandle = model.handles[index].value
        } else {
            sendHandle = foreignHandle()
        }
        var room = 4
        if case .child(let child) = destination { room = call ? 0 : 8 - model.children[child].heldCount }
        var plan = plan(room: room)
        // A call the server cannot take (no slot left for the reply handle once the message's
        // handles have left the shared table) fails with handleTableFull, and its handles are
        // closed; the class can be left out, since a kernel once left such a call waiting.
        var full = false
        if case .server = destination, call, model.freeSlots < 1 {
            if options.flags.contains(.noFullServer) {
                destination = .unusable
                sendHandle = foreignHandle()
            } else {
                full = true
            }
        }
        // Now and then the server is asked to let the call go unanswered: it fails.
        var dropped = false
        if call && !full && random.oneIn(10) {
            switch destination {
            case .server, .child:
                plan.label |= Self.dropLabel
                dropped = true
            default: break
            }
        }
        var buffer = pickBuffer(hostile: random.below(5) == 0)
        if buffer == .text, case .modelled = destination { buffer = .invalid(invalidAddress()) }
        if buffer == .readOnly {
            plan = Plan(label: Self.readOnlyLabel, length: 16, count: 0, seed: 0, acceptable: true)
        }
        write(plan, at: buffer)

        var expectation = Expectation.success
        switch destination {
        case .unusable: expectation = .failure
        case .modelled(let port):
            if model.objects[port].closed || model.queueIsFull(port) { expectation = .failure }
        case .server:
            break
        case .child: expectation = .any
        }
        if !plan.acceptable || !isReadable(plan, at: buffer) { expectation = .failure }
        if buffer == .text { expectation = call ? .failure : .any }
        if call, case .success = expectation, !isWritable(buffer, length: plan.length) { expectation = .failure }
        var delivered = false
        if dropped, case .success = expectation {
            // The server takes the message (and closes its handles), then lets the call go.
            expectation = .failure
            delivered = true
        }
        if full, case .success = expectation {
            expectation = .error(.handleTableFull)
            delivered = true
        }
        let number = call ? SystemCallNumber.call : SystemCallNumber.send
        let outcome = caller.make(number.rawValue, sendHandle, address(of: buffer), expect: expectation)
        if delivered, case .server = destination, !outcome.succeeded {
            for slot in 0..<Int(plan.count) {
                if let index = model.handleIndex(plan.values[slot]) { model.closeHandle(at: index) }
            }
        }
        guard outcome.succeeded else { return }
        if buffer == .text {
            if case .server = destination, !call { awaitServer() }
            return
        }

        // The listed handles left the table.
        switch destination {
        case .modelled(let port):
            guard let message = model.newMessage() else {
                Report.violation("the model has no room for another queued message")
                return
            }
            model.messages[message].label = plan.label
            model.messages[message].length = Int(plan.length)
            model.messages[message].payloadSeed = plan.seed
            model.messages[message].handleCount = Int(plan.count)
            for slot in 0..<Int(plan.count) {
                guard let index = model.handleIndex(plan.values[slot]) else { continue }
                let handle = model.takeHandle(at: index)
                model.messages[message].objects[slot] = Int16(handle.object)
                model.messages[message].rights[slot] = handle.rights.rawValue
            }
            model.pushMessage(message, on: port)
        case .server:
            // The server thread closes what it receives before it answers a call; after a send,
            // wait until it has, so that the table holds what the model says.
            for slot in 0..<Int(plan.count) {
                if let index = model.handleIndex(plan.values[slot]) { model.closeHandle(at: index) }
            }
            if call { checkReply(to: plan, at: buffer) } else { awaitServer() }
        case .child(let child):
            for slot in 0..<Int(plan.count) {
                guard let index = model.handleIndex(plan.values[slot]) else { continue }
                let handle = model.takeHandle(at: index)
                model.children[child].held[model.children[child].heldCount] = Int16(handle.object)
                model.children[child].heldCount += 1
            }
            if call { checkReply(to: plan, at: buffer) }
        case .unusable:
            Report.violation("a send on an unusable handle succeeded")
        }
    }

    /// A message was sent to the server thread: yields until the thread has taken it (and
    /// closed its handles).
    mutating func awaitServer() {
        ServerThread.sent += 1
        while ServerThread.handled < ServerThread.sent { _ = caller.make(SystemCallNumber.yield.rawValue, expect: .success) }
    }

    /// The server thread and server children answer with the request's payload and label + 1.
    func checkReply(to plan: Plan, at buffer: Buffer) {
        guard case .valid(let address) = buffer else { return }
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address))!
        let bytes = UnsafeMutablePointer<UInt8>(bitPattern: UInt(address))!
        var intact = true
        for index in 0..<Int(plan.length) where bytes[IPCMessageLayout.payload + index] != Self.payloadByte(plan.seed, index) {
            intact = false
        }
        if words[0] != plan.label + 1 || words[1] != plan.length || words[2] != 0 || words[4] != 0 || !intact {
            Report.violation("reply to \(hex: plan.label) (\(plan.length) bytes): label \(hex: words[0]), \(words[1]) bytes, \(words[2]) handles, reply handle \(hex: words[4]), payload \(intact ? "intact" : "changed")")
        }
    }

    func serverChild() -> Int? {
        for index in 0..<model.childCount where model.children[index].kind == .server && !model.children[index].killed {
            return index
        }
        return nil
    }

    mutating func receiveMessage() {
        var handle = foreignHandle()
        var port = -1
        var usable = false
        let roll = random.below(10)
        if roll < 7, let index = pickHandle(.port, service: .worker) {
            handle = model.handles[index].value
            port = model.handles[index].object
            usable = model.handles[index].rights.contains(.receive)
        } else if roll < 9, let index = pickHandle(random.oneIn(2) ? .notification : .memory, service: nil) {
            handle = model.handles[index].value
        }
        let buffer = pickBuffer(hostile: random.below(4) == 0)
        let canary = random.next()
        fillCanary(buffer, canary)
        var timeout: UInt64 = random.oneIn(2) ? 0 : random.between(1, Self.shortTimeout)
        var expectation = Expectation.failure
        if usable, let head = model.headMessage(port) {
            let needed = model.messages[head].handleCount
            if needed <= model.freeSlots && isWritable(buffer, length: UInt64(model.messages[head].length)) {
                expectation = .success
                if random.oneIn(4) { timeout = UInt64.max }
            }
        } else if usable && model.objects[port].closed && random.oneIn(4) {
            timeout = UInt64.max
        }
        let replyFirst = random.oneIn(4)
        let outcome = replyFirst
            ? caller.make(SystemCallNumber.replyReceive.rawValue, 0, address(of: buffer), handle, timeout, expect: expectation)
            : caller.make(SystemCallNumber.receive.rawValue, handle, address(of: buffer), timeout, expect: expectation)
        if outcome.succeeded, usable, let head = model.headMessage(port) {
            _ = model.popMessage(port)
            takeDelivery(of: head, at: buffer, canary: canary)
        } else if !outcome.succeeded, case .valid = buffer {
            checkCanary(buffer, canary, from: 0, "a failed receive")
        }
    }

    /// A received message: checked against what was sent, its handles taken into the model.
    mutating func takeDelivery(of message: Int, at buffer: Buffer, canary: UInt64) {
        let record = model.messages[message]
        model.messages[message].live = false
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(buffer.address))!
        let bytes = UnsafeMutablePointer<UInt8>(bitPattern: UInt(buffer.address))!
        var intact = true
        for index in 0..<record.length {
            let expected = record.payloadSeed == 0 ? 0 : Self.payloadByte(record.payloadSeed, index)
            if bytes[IPCMessageLayout.payload + index] != expected { intact = false }
        }
        if words[0] != record.label || words[1] != UInt64(record.length) || words[2] != UInt64(record.handleCount)
            || words[3] != pid || words[4] != 0 || !intact {
            Report.violation("received \(hex: words[0]) (\(words[1]) bytes, \(words[2]) handles, sender \(words[3]), reply \(hex: words[4]), payload \(intact ? "intact" : "changed")) for \(hex: record.label) (\(record.length) bytes, \(record.handleCount) handles)")
        }
        for slot in 0..<IPCMessageLayout.maximumHandles {
            let value = words[5 + slot]
            guard slot < record.handleCount else {
                if value != 0 { Report.violation("received handle slot \(slot) holds \(hex: value), past the count") }
                continue
            }
            if value == 0 || model.isLive(value) {
                Report.violation("received handle \(hex: value) is 0 or already in use")
                model.capabilityEnded(object: Int(record.objects[slot]), rights: Rights(rawValue: record.rights[slot]))
                continue
            }
            model.addHandle(value, object: Int(record.objects[slot]), rights: Rights(rawValue: record.rights[slot]),
                            isNew: false)
        }
        if case .valid = buffer {
            checkCanary(buffer, canary, from: IPCMessageLayout.payload + Int(Self.roundedLength(UInt64(record.length))),
                        "a delivery")
        }
    }

    /// Fills a writable buffer with a pattern the kernel has no reason to write.
    func fillCanary(_ buffer: Buffer, _ canary: UInt64) {
        guard case .valid(let address) = buffer else { return }
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address))!
        for index in 0..<IPCMessageLayout.words { words[index] = canary ^ UInt64(index) }
    }

    /// Whether the kernel left the buffer alone from byte `start` on.
    func checkCanary(_ buffer: Buffer, _ value: UInt64, from start: Int, _ what: StaticString) {
        guard case .valid(let address) = buffer else { return }
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address))!
        for index in start / 8..<IPCMessageLayout.words where words[index] != value ^ UInt64(index) {
            Report.violation("\(what) wrote byte \(index * 8) of a 328-byte buffer at \(hex: address)")
            return
        }
    }

    // MARK: Notifications and waits

    mutating func signalNotification() {
        let bits = random.oneIn(8) ? 0 : random.next() >> random.below(UInt64(64))
        if let index = pickHandle(.notification), random.below(5) != 0 {
            let handle = model.handles[index]
            let allowed = handle.rights.contains(.signal)
            let outcome = caller.make(SystemCallNumber.notificationSignal.rawValue, handle.value, bits,
                                      expect: allowed ? .success : .failure)
            if outcome.succeeded { model.objects[handle.object].bits |= bits }
        } else {
            let target = random.oneIn(2) ? foreignHandle()
                : (pickHandle(random.oneIn(2) ? .port : .memory, service: nil).map { model.handles[$0].value } ?? 0)
            _ = caller.make(SystemCallNumber.notificationSignal.rawValue, target, bits, expect: .failure)
        }
    }

    mutating func waitNotification() {
        guard let index = pickHandle(.notification), random.below(5) != 0 else {
            let target = random.oneIn(2) ? foreignHandle()
                : (pickHandle(random.oneIn(2) ? .port : .memory, service: nil).map { model.handles[$0].value } ?? 0)
            _ = caller.make(SystemCallNumber.notificationWait.rawValue, target, random.below(Self.shortTimeout),
                            expect: .failure)
            return
        }
        let handle = model.handles[index]
        let bits = model.objects[handle.object].bits
        let allowed = handle.rights.contains(.wait)
        var timeout: UInt64 = random.oneIn(2) ? 0 : random.between(1, Self.shortTimeout)
        if allowed && bits != 0 && random.oneIn(3) { timeout = UInt64.max }
        let outcome = caller.make(SystemCallNumber.notificationWait.rawValue, handle.value, timeout,
                                  expect: allowed && bits != 0 ? .success : .failure)
        guard outcome.succeeded else { return }
        if outcome.value1 != bits { Report.violation("notificationWait returned \(hex: outcome.value1), not \(hex: bits)") }
        model.objects[handle.object].bits = 0
    }

    mutating func waitAny() {
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(messageArea + 7 * 512))!
        var count = UInt64(random.between(1, 8))
        var acceptable = true
        var ready = -1
        for slot in 0..<Int(count) {
            var value: UInt64 = 0
            if random.below(8) != 0, let index = pickHandle(random.oneIn(2) ? .port : .notification) {
                let handle = model.handles[index]
                let object = model.objects[handle.object]
                value = handle.value
                if object.kind == .port {
                    if !handle.rights.contains(.receive) { acceptable = false }
                    if ready < 0 && (object.queueCount > 0 || object.closed) { ready = slot }
                } else {
                    if !handle.rights.contains(.wait) { acceptable = false }
                    if ready < 0 && object.bits != 0 { ready = slot }
                }
            } else {
                value = random.oneIn(3) ? (pickHandle(.memory, service: nil).map { model.handles[$0].value } ?? 0)
                                        : foreignHandle()
                acceptable = false
            }
            words[slot] = value
        }
        var address = UInt64(UInt(bitPattern: words))
        switch random.below(12) {
        case 0: count = random.oneIn(2) ? 0 : random.between(9, 100); acceptable = false
        case 1: address = invalidAddress(); acceptable = false
        case 3 where count > 1:
            // The handles run into the unmapped page after the message area.
            let readable = 8 * random.between(1, count - 1)
            address = messageArea + Self.messageAreaBytes - readable
            let straddling = UnsafeMutablePointer<UInt64>(bitPattern: UInt(address))!
            for slot in 0..<Int(readable / 8) { straddling[slot] = words[slot] }
            acceptable = false
        case 2:
            // Unaligned but readable: the kernel copies the handles in whatever their alignment.
            var values = InlineArray<8, UInt64>(repeating: 0)
            for slot in 0..<Int(count) { values[slot] = words[slot] }
            let shifted = address + random.between(1, 7)
            let bytes = UnsafeMutableRawPointer(bitPattern: UInt(shifted))!
            for slot in 0..<Int(count) { bytes.storeBytes(of: values[slot], toByteOffset: slot * 8, as: UInt64.self) }
            address = shifted
        default: break
        }
        var timeout: UInt64 = random.oneIn(2) ? 0 : random.between(1, Self.shortTimeout)
        if acceptable && ready >= 0 && random.oneIn(3) { timeout = UInt64.max }
        let outcome = caller.make(SystemCallNumber.waitAny.rawValue, address, count, timeout,
                                  expect: acceptable && ready >= 0 ? .success : .failure)
        if outcome.succeeded && outcome.value1 != UInt64(ready) {
            Report.violation("waitAny chose index \(outcome.value1); the first ready is \(ready)")
        }
    }

    /// Replies the worker has no right to make: no reply handle of its own is ever live on the
    /// main thread, so each must fail and change nothing.
    mutating func hostileReply() {
        let target = random.oneIn(2) ? foreignHandle()
            : (model.handleCount > 0 ? model.handles[random.below(model.handleCount)].value : foreignHandle())
        let buffer = pickBuffer(hostile: random.oneIn(2))
        if random.oneIn(2) {
            _ = caller.make(SystemCallNumber.reply.rawValue, target, address(of: buffer), expect: .failure)
            return
        }
        // With a port to receive on afterwards: the bad reply stops the call before the receive.
        let port = pickHandle(.port, rights: .receive).map { model.handles[$0].value } ?? foreignHandle()
        _ = caller.make(SystemCallNumber.replyReceive.rawValue, target == 0 ? 1 : target, address(of: buffer), port,
                        random.below(Self.shortTimeout), expect: .failure)
    }
}
