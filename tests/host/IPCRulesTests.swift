import Testing
import PropertyBased
@testable import KernelCore

/// User memory for the transfer rules: `size` bytes at `base`, with an optional unreadable and
/// unwritable range (a page the process never mapped), as the kernel's copies see it.
final class FakeUserMemory: UserMemoryAccess {
    let base: UInt64
    var bytes: [UInt8]
    var hole: Range<UInt64>?

    init(base: UInt64 = 0x10000, size: Int, hole: Range<UInt64>? = nil) {
        self.base = base
        bytes = [UInt8](repeating: 0, count: size)
        self.hole = hole
    }

    func check(_ address: UserAddress, _ count: UInt64) throws(KernelError) {
        guard UserSpace.contains(address, count: count), address.value >= base,
              address.value + count <= base + UInt64(bytes.count) else { throw .badAddress }
        if let hole, count > 0, address.value < hole.upperBound, hole.lowerBound < address.value + count {
            throw .badAddress
        }
    }

    func copyIn(to kernel: UnsafeMutableRawPointer, from user: UserAddress, count: UInt64) throws(KernelError) {
        try check(user, count)
        let start = Int(user.value - base)
        bytes.withUnsafeBytes { kernel.copyMemory(from: $0.baseAddress! + start, byteCount: Int(count)) }
    }

    func copyOut(to user: UserAddress, from kernel: UnsafeRawPointer, count: UInt64) throws(KernelError) {
        try check(user, count)
        let start = Int(user.value - base)
        bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: start).copyMemory(from: kernel, byteCount: Int(count)) }
    }

    func word(at address: UInt64) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[Int(address - base) + $1]) << (8 * UInt64($1)) }
    }

    func setWord(_ value: UInt64, at address: UInt64) {
        for index in 0..<8 { bytes[Int(address - base) + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }
}

/// Everything a table holds, by handle: to show a failed transfer changed nothing.
func contents(_ table: HandleTable<Int>) -> [UInt64: (object: Int, rights: Rights)] {
    var result: [UInt64: (object: Int, rights: Rights)] = [:]
    for slot in 0..<table.capacity {
        let entry = table.entries[slot]
        if let object = entry.object { result[Handle(slot: slot, generation: entry.generation).value] = (object, entry.rights) }
    }
    return result
}

func sameContents(_ a: [UInt64: (object: Int, rights: Rights)], _ b: [UInt64: (object: Int, rights: Rights)]) -> Bool {
    a.count == b.count && a.allSatisfy { key, value in b[key].map { $0.object == value.object && $0.rights == value.rights } ?? false }
}

@Suite struct MessageTransferTests {
    /// Random senders, handle lists (forged, repeated, without the transfer right, with the receive
    /// right), lengths and unmapped ranges: every failure leaves the sender's table exactly as it
    /// was and says the first rule the message broke; a success moves exactly the listed handles,
    /// in order.
    @Test func readingInIsAllOrNothing() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...Int.max).array(of: 12)) { codes in
            var table = HandleTable<Int>(capacity: 8)
            defer { table.destroy() }
            var held: [Handle] = []
            for object in 0..<(codes[0] % 9) {
                let kinds: [Rights] = [[.transfer, .send], [.send], [.transfer, .receive], [.transfer, .send, .duplicate]]
                let rights = kinds[codes[1] >> (2 * object) & 3]
                if let handle = try? table.insert(100 + object, rights: rights) { held.append(handle) }
            }
            let memory = FakeUserMemory(size: 4096)
            let address = memory.base + 64 + (codes[2] % 5 == 0 ? UInt64(codes[2] % 8) : 0)
            let length = UInt64(codes[3] % 5 == 0 ? 300 : codes[3] % 257)
            let count = UInt64(codes[4] % 7 == 0 ? 5 : codes[4] % 5)
            var listed: [UInt64] = []
            for index in 0..<Int(min(count, 4)) {
                let choice = codes[5 + index] % 10
                if choice == 0 || held.isEmpty {
                    listed.append(UInt64(codes[5 + index]) | 1 << 40) // forged
                } else if choice == 1, let earlier = listed.last {
                    listed.append(earlier) // repeated
                } else {
                    listed.append(held[codes[5 + index] % held.count].value)
                }
            }
            if address & 7 == 0 {
                memory.setWord(7, at: address)
                memory.setWord(length, at: address + 8)
                memory.setWord(count, at: address + 16)
                for (index, value) in listed.enumerated() { memory.setWord(value, at: address + 40 + 8 * UInt64(index)) }
                for index in 0..<Int(min(length, 256)) { memory.bytes[Int(address - memory.base) + 72 + index] = UInt8(index & 0xFF) }
            }
            switch codes[9] % 6 {
            case 0: memory.hole = address..<(address + 8) // header unmapped
            case 1: memory.hole = (address + 72 + 128)..<(address + 72 + 136) // payload partly unmapped
            default: break
            }
            let before = contents(table)

            // The rules, in the order they apply.
            var expected: KernelError?
            if address & 7 != 0 || memory.hole?.lowerBound == address {
                expected = .badAddress
            } else if length > 256 || count > 4 {
                expected = .invalidArgument
            } else if memory.hole != nil && length > 128 {
                expected = .badAddress
            } else {
                for (index, value) in listed.enumerated() where expected == nil {
                    if listed[..<index].contains(value) {
                        expected = .invalidArgument
                    } else if let entry = before[value] {
                        // A receive right never travels: it could keep its own port alive.
                        if !entry.rights.contains(.transfer) || entry.rights.contains(.receive) { expected = .accessDenied }
                    } else {
                        expected = .invalidHandle
                    }
                }
            }

            var message = InFlightMessage<Int>()
            let header = UnsafeMutablePointer<UInt64>.allocate(capacity: IPCMessageLayout.headerWords)
            let payload = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
            defer {
                header.deallocate()
                payload.deallocate()
            }
            do throws(KernelError) {
                try MessageTransfer.readIn(&message, from: UserAddress(address), memory: memory, sender: &table,
                                           senderID: 42, header: header, payload: payload)
                #expect(expected == nil)
                #expect(message.label == 7 && message.length == Int(length) && message.sender == 42)
                #expect(message.handleCount == listed.count)
                for (index, value) in listed.enumerated() {
                    #expect(message.handles[index]?.object == before[value]?.object)
                    #expect(message.handles[index]?.rights == before[value]?.rights)
                    #expect(throws: HandleError.invalidHandle) { try table.lookup(Handle(value), requiring: []) }
                }
                #expect(table.count == before.count - listed.count)
                #expect((0..<Int(length)).allSatisfy { payload.load(fromByteOffset: $0, as: UInt8.self) == UInt8($0 & 0xFF) })
            } catch {
                #expect(error == expected)
                #expect(sameContents(contents(table), before))
                #expect(message.handleCount == 0)
            }
        }
    }

    /// Random receivers (tables nearly full or not), messages with handles and a reply
    /// capability, and buffers partly unmapped: a failure leaves the receiver's table as it was
    /// and the message still holding everything; a success installs every handle with its
    /// rights, names them in the written header, and empties the message.
    @Test func writingOutIsAllOrNothing() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...Int.max).array(of: 8)) { codes in
            var table = HandleTable<Int>(capacity: 8)
            defer { table.destroy() }
            for object in 0..<(codes[0] % 9) { _ = try? table.insert(500 + object, rights: .all) }
            let handleCount = codes[1] % 5
            let hasReply = codes[2] % 2 == 0
            let length = codes[3] % 257
            var message = InFlightMessage<Int>()
            message.label = 9
            message.sender = 3
            message.length = length
            message.handleCount = handleCount
            for index in 0..<handleCount {
                message.handles[index] = MovedHandle(object: 900 + index, rights: index % 2 == 0 ? [.send, .transfer] : [.receive])
            }
            if hasReply { message.reply = 999 }
            let payload = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
            defer { payload.deallocate() }
            for index in 0..<256 { payload.storeBytes(of: UInt8(255 - index), toByteOffset: index, as: UInt8.self) }
            message.payload = payload

            let memory = FakeUserMemory(size: 4096)
            let address = memory.base + 128 + (codes[4] % 6 == 0 ? 4 : 0)
            switch codes[5] % 5 {
            case 0: memory.hole = (address + 32)..<(address + 40) // reply-handle word unwritable
            case 1: memory.hole = (address + 72 + 200)..<(address + 72 + 208) // payload tail unwritable
            default: break
            }
            let before = contents(table)
            let needed = handleCount + (hasReply ? 1 : 0)
            var expected: KernelError?
            if address & 7 != 0 {
                expected = .badAddress
            } else if 8 - before.count < needed {
                expected = .handleTableFull
            } else if let hole = memory.hole, hole.lowerBound < address + 72 || length > 200 {
                expected = .badAddress
            }

            let header = UnsafeMutablePointer<UInt64>.allocate(capacity: IPCMessageLayout.headerWords)
            defer { header.deallocate() }
            do throws(KernelError) {
                try MessageTransfer.writeOut(&message, to: UserAddress(address), memory: memory, receiver: &table,
                                             header: header)
                #expect(expected == nil)
                #expect(memory.word(at: address) == 9 && memory.word(at: address + 8) == UInt64(length))
                #expect(memory.word(at: address + 16) == UInt64(handleCount) && memory.word(at: address + 24) == 3)
                for index in 0..<handleCount {
                    let handle = Handle(memory.word(at: address + 40 + 8 * UInt64(index)))
                    let entry = try? table.lookup(handle, requiring: [])
                    #expect(entry?.object == 900 + index)
                    #expect(entry?.rights == (index % 2 == 0 ? [.send, .transfer] : [.receive]))
                }
                let replyHandle = Handle(memory.word(at: address + 32))
                #expect(hasReply ? (try? table.lookup(replyHandle, requiring: .reply))?.object == 999 : replyHandle.value == 0)
                #expect(table.count == before.count + needed)
                #expect((0..<length).allSatisfy { memory.bytes[Int(address - memory.base) + 72 + $0] == UInt8(255 - $0) })
                #expect(message.handleCount == 0 && message.reply == nil)
            } catch {
                #expect(error == expected)
                #expect(sameContents(contents(table), before))
                #expect(message.handleCount == handleCount && (message.reply != nil) == hasReply)
                #expect((0..<handleCount).allSatisfy { message.handles[$0]?.object == 900 + $0 })
            }
        }
    }
}

@Suite struct RegisterMessageTests {
    /// Random register files, lengths (some over 64), handle counts, replies and table fill: a
    /// message read in carries exactly the label and the payload's words; written out, it puts
    /// label, length, reply handle, sender and payload in their registers with whole words past
    /// the length zero and every other register untouched, or it fails with the first rule it
    /// broke and changes nothing.
    @Test func registersCarryExactlyTheMessage() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...Int.max).array(of: 6)) { codes in
            var sender = [UInt64](repeating: 0, count: 31)
            for index in 0..<31 { sender[index] = UInt64(codes[index % 6]) &* 0x9e37_79b9_7f4a_7c15 &+ UInt64(index) }
            let length = UInt64(codes[0] % 80)
            sender[RegisterMessageLayout.length] = length
            let payload = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
            defer { payload.deallocate() }
            var message = InFlightMessage<Int>()
            do throws(KernelError) {
                try sender.withUnsafeBufferPointer { registers throws(KernelError) in
                    try MessageTransfer.readIn(&message, fromRegisters: registers.baseAddress!, senderID: 7, payload: payload)
                }
                #expect(length <= 64)
            } catch {
                #expect(length > 64 && error == .invalidArgument)
                return
            }
            let words = payload.assumingMemoryBound(to: UInt64.self)
            #expect(message.label == sender[RegisterMessageLayout.label] && message.length == Int(length) && message.sender == 7)
            #expect((0..<Int((length + 7) / 8)).allSatisfy { words[$0] == sender[RegisterMessageLayout.payload + $0] })

            var table = HandleTable<Int>(capacity: 4)
            defer { table.destroy() }
            for object in 0..<(codes[1] % 5) { _ = try? table.insert(500 + object, rights: .all) }
            let hasReply = codes[2] % 2 == 0
            if hasReply { message.reply = 999 }
            let handleCount = codes[3] % 4 == 0 ? 1 : 0
            if handleCount == 1 {
                message.handles[0] = MovedHandle(object: 900, rights: [.send, .transfer])
                message.handleCount = 1
            }
            if codes[4] % 5 == 0 { message.length = 65 + codes[4] % 192 }
            var receiver = [UInt64](repeating: 0xdead, count: 31)
            let before = contents(table)
            var expected: KernelError?
            if handleCount > 0 || message.length > 64 {
                expected = .messageTooLong
            } else if hasReply && before.count == 4 {
                expected = .handleTableFull
            }
            do throws(KernelError) {
                try receiver.withUnsafeMutableBufferPointer { registers throws(KernelError) in
                    try MessageTransfer.writeOut(&message, toRegisters: registers.baseAddress!, receiver: &table)
                }
                #expect(expected == nil)
                #expect(receiver[RegisterMessageLayout.label] == sender[RegisterMessageLayout.label])
                #expect(receiver[RegisterMessageLayout.length] == length && receiver[RegisterMessageLayout.sender] == 7)
                let replyHandle = Handle(receiver[RegisterMessageLayout.replyHandle])
                #expect(hasReply ? (try? table.lookup(replyHandle, requiring: .reply))?.object == 999 : replyHandle.value == 0)
                #expect(message.reply == nil && table.count == before.count + (hasReply ? 1 : 0))
                let full = Int((length + 7) / 8)
                for index in 0..<RegisterMessageLayout.payloadWords {
                    let expectedWord = index < full ? sender[RegisterMessageLayout.payload + index] : 0
                    #expect(receiver[RegisterMessageLayout.payload + index] == expectedWord)
                }
                let written = Set([RegisterMessageLayout.label, RegisterMessageLayout.length, RegisterMessageLayout.replyHandle,
                                   RegisterMessageLayout.sender] + (0..<8).map { RegisterMessageLayout.payload + $0 })
                #expect((0..<31).allSatisfy { written.contains($0) || receiver[$0] == 0xdead })
            } catch {
                #expect(error == expected)
                #expect(receiver.allSatisfy { $0 == 0xdead })
                #expect(sameContents(contents(table), before) && (message.reply != nil) == hasReply)
            }
        }
    }
}

/// Port waiters for the rules: each counts how often it was woken.
final class PortWaiter {
    let link: UnsafeMutablePointer<WaitLink<PortWaiter>>
    var wakes = 0
    var gone = false
    init() {
        link = UnsafeMutablePointer<WaitLink<PortWaiter>>.allocate(capacity: 1)
        link.initialize(to: WaitLink(waiter: self))
    }
    deinit {
        WaitLink.unlink(link)
        link.deallocate()
    }
}

enum CountingWaking: WaiterWaking {
    static func wake(_ waiter: PortWaiter) { waiter.wakes += 1 }
}

/// Where test objects record their capabilities, in order.
final class CapabilityLog {
    var added: [(label: Int, rights: Rights)] = []
    var released: [(label: Int, rights: Rights)] = []
}

/// A kernel object named by a label that logs what happens to its capabilities. It says it is
/// memory, a kind no class of these tests has: nothing downcasts it.
final class LabelledObject: KernelObject {
    let label: Int
    let log: CapabilityLog
    init(_ label: Int, log: CapabilityLog) {
        self.label = label
        self.log = log
        super.init(kind: .memory)
    }
    override func capabilityAdded(rights: Rights) { log.added.append((label, rights)) }
    override func capabilityReleased(rights: Rights) { log.released.append((label, rights)) }
}

@Suite struct MessagePortTests {
    /// Random sends, receives, receives that fail and give their message back, waiters coming
    /// and going, wake-ups and receive rights, against a model: messages come out in the order
    /// they were sent (a message given back is the next one out again) with their payloads; a
    /// full port refuses; the last receive right closes the port, which releases every handle
    /// queued messages carried exactly once and wakes every waiter exactly once.
    @Test func matchesAModel() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max).array(of: 1...120)) { codes in
            let port = MessagePort<CountingWaking>()
            let waiters = (0..<4).map { _ in PortWaiter() }
            var queued: [Int] = [] // labels, oldest first
            var waiting: [Int] = [] // waiter indexes, oldest first
            var rights = 1
            port.capabilityAdded(rights: .newPort)
            let log = CapabilityLog()
            var nextLabel = 1
            var expectedWakes = [0, 0, 0, 0]
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
            defer { scratch.deallocate() }

            for code in codes where !port.isClosed {
                switch code % 8 {
                case 0, 1: // send a message carrying one handle (object = its label)
                    do throws(KernelError) {
                        try port.checkCanSend()
                        #expect(queued.count < portQueueCapacity)
                        var message = InFlightMessage<KernelObject>()
                        message.label = UInt64(nextLabel)
                        message.length = 16
                        for index in 0..<16 { scratch.storeBytes(of: UInt8(truncatingIfNeeded: nextLabel + index), toByteOffset: index, as: UInt8.self) }
                        message.payload = scratch
                        message.handleCount = 1
                        message.handles[0] = MovedHandle(object: LabelledObject(nextLabel, log: log), rights: .send)
                        port.enqueue(&message)
                        queued.append(nextLabel)
                        nextLabel += 1
                    } catch {
                        #expect(error == .queueFull && queued.count == portQueueCapacity)
                    }
                case 2: // receive
                    let message = port.queue.pop()
                    #expect(message.map { Int($0.label) } == queued.first)
                    if let message, let payload = message.payload {
                        let label = Int(message.label)
                        #expect((0..<16).allSatisfy { payload.load(fromByteOffset: $0, as: UInt8.self) == UInt8(truncatingIfNeeded: label + $0) })
                        queued.removeFirst()
                    }
                case 3: // a receive whose buffer is bad: the message goes back
                    if var message = port.queue.pop() {
                        port.putBack(&message)
                    }
                case 4: // a waiter joins (or moves to the back)
                    let index = code / 8 % 4
                    port.receivers.append(waiters[index].link)
                    waiting.removeAll { $0 == index }
                    waiting.append(index)
                case 5: // a waiter leaves, or ends while waiting
                    let index = code / 8 % 4
                    if code / 32 % 2 == 0 {
                        port.receivers.remove(waiters[index].link)
                        waiting.removeAll { $0 == index }
                    } else {
                        waiters[index].gone = true
                    }
                case 6: // something arrived: wake the oldest waiter still there
                    port.wakeOneReceiver { $0.gone }
                    while let first = waiting.first {
                        waiting.removeFirst()
                        if !waiters[first].gone {
                            expectedWakes[first] += 1
                            break
                        }
                    }
                default: // receive rights come and go; the last one closes the port
                    // Capabilities without the receive right change nothing.
                    port.capabilityAdded(rights: .send)
                    port.capabilityReleased(rights: [.send, .duplicate])
                    if code / 8 % 2 == 0 {
                        port.capabilityAdded(rights: [.receive, .duplicate])
                        rights += 1
                    } else {
                        port.capabilityReleased(rights: .receive)
                        rights -= 1
                        #expect(port.isClosed == (rights == 0))
                        if rights == 0 {
                            #expect(log.released.map(\.label).sorted() == queued.sorted())
                            #expect(log.released.allSatisfy { $0.rights == .send } && log.added.isEmpty)
                            for index in waiting { expectedWakes[index] += 1 }
                            waiting.removeAll()
                            queued.removeAll()
                        }
                    }
                }
                #expect(port.queue.count == queued.count && port.isReady == (!queued.isEmpty || port.isClosed))
                #expect(port.receivers.count == waiting.count)
                #expect(waiters.map(\.wakes) == expectedWakes)
            }
            if port.isClosed {
                #expect(throws: KernelError.peerClosed) { try port.checkCanSend() }
                #expect(port.queue.isEmpty && port.receivers.isEmpty)
            }
        }
    }

    /// Closing drops messages with their reply capabilities too (so their callers fail).
    @Test func closingReleasesHandlesAndReplies() {
        let port = MessagePort<CountingWaking>()
        port.capabilityAdded(rights: .receive)
        let log = CapabilityLog()
        var message = InFlightMessage<KernelObject>()
        message.handleCount = 2
        message.handles[0] = MovedHandle(object: LabelledObject(1, log: log), rights: .send)
        message.handles[1] = MovedHandle(object: LabelledObject(2, log: log), rights: .receive)
        message.reply = LabelledObject(3, log: log)
        port.enqueue(&message)
        port.capabilityReleased(rights: .receive)
        #expect(port.isClosed && port.isReady)
        #expect(log.released.map(\.label) == [1, 2, 3])
        #expect(log.released.map(\.rights) == [.send, .receive, .reply])
    }

    /// A port queued in its own message closes all the same when its receive handles go: the
    /// message holds a send capability only, and closing releases it.
    @Test func aPortInItsOwnQueueStillCloses() {
        let port = MessagePort<CountingWaking>()
        port.capabilityAdded(rights: .newPort)
        var message = InFlightMessage<KernelObject>()
        message.handleCount = 1
        message.handles[0] = MovedHandle(object: port, rights: .send)
        port.enqueue(&message)
        port.capabilityReleased(rights: .newPort)
        #expect(port.isClosed && port.queue.isEmpty && port.receiveRights == 0)
    }

    /// The census the kernel reports (`portStatistics`): a port counts alive from its making to
    /// its end, and closed from its last receive right's release until the last reference to it
    /// (a send right) goes; a port that ends open was never closed.
    @Test func portsAreCountedAliveAndClosed() {
        CensusWaking.reset()
        var held: MessagePort<CensusWaking>? = MessagePort<CensusWaking>()
        var other: MessagePort<CensusWaking>? = MessagePort<CensusWaking>()
        held!.capabilityAdded(rights: .newPort)
        held!.capabilityAdded(rights: .send)
        #expect(CensusWaking.counts == (2, 0))
        held!.capabilityReleased(rights: .newPort)
        #expect(held!.isClosed && CensusWaking.counts == (2, 1))
        held!.close()
        #expect(CensusWaking.counts == (2, 1))
        other = nil
        #expect(other == nil && CensusWaking.counts == (1, 1))
        held!.capabilityReleased(rights: .send)
        held = nil
        #expect(CensusWaking.counts == (0, 0))
    }

    /// A port that closes frees its queue and payload buffers and gives back all of its charge
    /// but the object's (`WaiterWaking.closedPortCharge`), however long send rights keep it;
    /// the rest goes with it. Its queue then takes nothing more.
    @Test func aClosedPortKeepsOnlyTheObjectsCharge() throws {
        let account = MemoryAccount(limit: 1 << 20, parent: nil)
        var port: MessagePort<SmallClosedWaking>? = MessagePort<SmallClosedWaking>()
        port!.charge = try MemoryCharge(8192, to: account)
        port!.capabilityAdded(rights: .newPort)
        var message = InFlightMessage<KernelObject>()
        message.length = 8
        port!.enqueue(&message)
        port!.capabilityReleased(rights: .newPort)
        #expect(port!.isClosed && port!.queue.isEmpty && port!.queue.isFull)
        #expect(account.used == SmallClosedWaking.closedPortCharge && account.objects == 1)
        #expect(throws: MessageRing<InFlightMessage<KernelObject>>.Failure.full) {
            try port!.queue.push(InFlightMessage<KernelObject>())
        }
        port = nil
        #expect(account.used == 0 && account.objects == 0)
    }
}

/// Ports whose closed charge is a small sum, for the test of what closing gives back.
enum SmallClosedWaking: WaiterWaking {
    static func wake(_ waiter: PortWaiter) {}
    static var closedPortCharge: UInt64 { 96 }
}

/// Ports that count themselves as the kernel's census does; used by one test only, since the
/// counts are shared.
enum CensusWaking: WaiterWaking {
    nonisolated(unsafe) static var alive = 0
    nonisolated(unsafe) static var closed = 0
    static var counts: (Int, Int) { (alive, closed) }
    static func reset() { (alive, closed) = (0, 0) }
    static func wake(_ waiter: PortWaiter) {}
    static func portsCounted(alive: Int, closed: Int) {
        Self.alive += alive
        Self.closed += closed
    }
}

@Suite struct MessageRingOrderTests {
    /// Pushes, pops and pops given back with pushFront, against an array: order is kept, nothing
    /// is lost, a full ring refuses both kinds of push.
    @Test func givenBackElementsComeOutFirst() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...100).array(of: 1...300)) { codes in
            var ring = MessageRing<Int>(capacity: 4)
            defer { ring.destroy() }
            var model: [Int] = []
            var taken: [Int] = []
            for code in codes {
                switch code % 4 {
                case 0:
                    #expect(ring.pop() == model.first)
                    if let first = model.first {
                        model.removeFirst()
                        taken.append(first)
                    }
                case 1:
                    guard let element = taken.popLast() else { continue }
                    do throws(MessageRing<Int>.Failure) {
                        try ring.pushFront(element)
                        model.insert(element, at: 0)
                    } catch {
                        #expect(model.count == 4)
                    }
                default:
                    do throws(MessageRing<Int>.Failure) {
                        try ring.push(code)
                        model.append(code)
                    } catch {
                        #expect(model.count == 4)
                    }
                }
                #expect(ring.count == model.count)
            }
            var drained: [Int] = []
            ring.drain { drained.append($0) }
            #expect(drained == model)
        }
    }
}

@Suite struct CallStateTests {
    /// Random arms, answers, failed deliveries and capabilities let go, against a model: a call
    /// ends once; letting go after the end changes nothing and wakes nobody; the caller sees the
    /// answer, the delivery's error, or `peerClosed`.
    @Test func aCallEndsOnce() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...3).array(of: 1...60)) { codes in
            var state = CallState()
            var ended = false
            var result: KernelError?
            for code in codes {
                switch code {
                case 0:
                    state.arm()
                    (ended, result) = (false, nil)
                case 1:
                    state.finish(failure: nil)
                    (ended, result) = (true, nil)
                case 2:
                    state.finish(failure: .badAddress)
                    (ended, result) = (true, .badAddress)
                default:
                    let wakes = state.failUnanswered()
                    #expect(wakes == !ended)
                    if !ended { (ended, result) = (true, .peerClosed) }
                }
                #expect(state.finished == ended && state.failure == result)
                let seen: KernelError? = {
                    do throws(KernelError) { try state.outcome(); return nil } catch { return error }
                }()
                #expect(seen == (ended ? result : .peerClosed))
            }
        }
    }
}

/// Waiters for notifications and reply capabilities: each counts how often it was woken.
final class CountedWaiter {
    var wakes = 0
}

enum CountedWaking: WaiterWaking {
    static func wake(_ waiter: CountedWaiter) { waiter.wakes += 1 }
}

/// Waiters that take a signal's bits at once when `takes` says so, as a kernel thread waiting in
/// its frame does, and that learn when their notification ends under them.
final class TakingWaiter {
    var takes = true
    var wakes = 0
    var taken: [UInt64] = []
    var ended = 0
}

enum TakingWaking: WaiterWaking {
    static func wake(_ waiter: TakingWaiter) { waiter.wakes += 1 }
    static func takesBitsAtOnce(_ bits: UInt64, _ waiter: TakingWaiter) -> Bool {
        guard waiter.takes else { return false }
        waiter.taken.append(bits)
        return true
    }
    static func notificationEnded(waiter: TakingWaiter) { waiter.ended += 1 }
}

@Suite struct NotificationWordTests {
    /// Random signals, waiters arriving and takes, against a model: bits accumulate until taken,
    /// taking clears them, and a waiter is woken once by the first signal after it arrived.
    @Test func bitsAccumulateUntilTaken() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int.max).array(of: 1...80)) { codes in
            let word = NotificationWord<CountedWaking>()
            let waiter = CountedWaiter()
            var bits: UInt64 = 0
            var waiting = false
            var wakes = 0
            for code in codes {
                switch code % 3 {
                case 0:
                    let signalled = UInt64(1) << UInt64(code / 3 % 64)
                    word.signal(signalled)
                    bits |= signalled
                    if waiting { wakes += 1 }
                    waiting = false
                case 1:
                    word.waiter = Unmanaged.passUnretained(waiter)
                    waiting = true
                default:
                    #expect(word.take() == bits)
                    bits = 0
                }
                #expect(word.bits == bits && waiter.wakes == wakes && (word.waiter != nil) == waiting)
            }
        }
    }

    /// A waiter that takes the bits at once gets all that are set when a signal wakes it (those
    /// set before it came too), and the word is left clear; one that does not leaves them there.
    /// Signals with nobody waiting only accumulate.
    @Test func aWaiterThatTakesAtOnceGetsEveryBitSet() {
        let word = NotificationWord<TakingWaking>()
        let waiter = TakingWaiter()
        word.signal(0b001)
        word.waiter = Unmanaged.passUnretained(waiter)
        word.signal(0b100)
        #expect(waiter.taken == [0b101] && waiter.wakes == 1 && word.bits == 0 && word.waiter == nil)
        word.signal(0b010)
        #expect(waiter.taken == [0b101] && waiter.wakes == 1 && word.bits == 0b010)
        waiter.takes = false
        word.waiter = Unmanaged.passUnretained(waiter)
        word.signal(0b001, wakingWith: { TakingWaking.wake($0) })
        #expect(waiter.taken == [0b101] && waiter.wakes == 2 && word.bits == 0b011 && word.waiter == nil)
    }

    /// A signal of no bits wakes nobody: the waiter stays, and the next signal with bits wakes
    /// it with them.
    @Test func aSignalWithNoBitsWakesNobody() {
        let word = NotificationWord<TakingWaking>()
        let waiter = TakingWaiter()
        word.waiter = Unmanaged.passUnretained(waiter)
        word.signal(0)
        word.signal(0, wakingWith: { TakingWaking.wake($0) })
        #expect(waiter.wakes == 0 && waiter.taken.isEmpty && word.waiter != nil)
        word.signal(0b10)
        #expect(waiter.wakes == 1 && waiter.taken == [0b10] && word.waiter == nil && word.bits == 0)
    }

    /// A notification that ends with a waiter tells it, once; one that ends after its waiter was
    /// woken (or with none) tells nobody.
    @Test func anEndingNotificationTellsOnlyAWaiterStillWaiting() {
        let waiter = TakingWaiter()
        do {
            let word = NotificationWord<TakingWaking>()
            word.waiter = Unmanaged.passUnretained(waiter)
        }
        #expect(waiter.ended == 1 && waiter.wakes == 0)
        do {
            let word = NotificationWord<TakingWaking>()
            word.waiter = Unmanaged.passUnretained(waiter)
            word.signal(1)
        }
        #expect(waiter.ended == 1 && waiter.wakes == 1 && waiter.taken == [1])
        do { _ = NotificationWord<TakingWaking>() }
        #expect(waiter.ended == 1)
    }

    /// Only handles with the wait right count: it ends for waiting (`isEnded`) when the last of
    /// them is released, telling the waiter there is, once, though the object lives on and
    /// signals still set bits; other rights change nothing.
    @Test func theLastWaitRightEndsTheWait() {
        let word = NotificationWord<TakingWaking>()
        let waiter = TakingWaiter()
        word.capabilityAdded(rights: [.wait, .signal])
        word.capabilityAdded(rights: [.signal])
        word.capabilityAdded(rights: [.wait])
        #expect(word.waitRights == 2 && !word.isEnded)
        word.waiter = Unmanaged.passUnretained(waiter)
        word.capabilityReleased(rights: [.signal])
        word.capabilityReleased(rights: [.wait, .signal])
        #expect(word.waitRights == 1 && !word.isEnded && waiter.ended == 0 && word.waiter != nil)
        word.capabilityReleased(rights: [.wait])
        #expect(word.isEnded && waiter.ended == 1 && word.waiter == nil && waiter.wakes == 0)
        word.signal(0b1)
        #expect(word.bits == 0b1 && waiter.ended == 1 && waiter.wakes == 0)
    }
}

@Suite struct CallReplyTests {
    /// A reply capability let go unanswered fails its call with `peerClosed` and wakes the caller
    /// once; once answered, letting it go (or dropping it) changes nothing.
    @Test func lettingGoFailsOnlyAnUnansweredCall() {
        let caller = CountedWaiter()
        do {
            let reply = CallReply<CountedWaking>(caller: caller)
            reply.call.arm()
            reply.capabilityReleased(rights: .reply)
            #expect(caller.wakes == 1 && reply.call.failure == .peerClosed)
            reply.capabilityReleased(rights: .reply)
            #expect(caller.wakes == 1)
            reply.call.arm()
            reply.call.finish(failure: nil)
            reply.capabilityReleased(rights: .reply)
            #expect(caller.wakes == 1 && reply.call.failure == nil)
            reply.call.arm()
        }
        // The last reference went with the call armed: the caller is not left waiting.
        #expect(caller.wakes == 2)
    }
}


@Suite struct KernelObjectTests {
    /// Each class of object carries its own kind, and a downcast finds only that class.
    @Test func eachObjectIsOfItsOwnKindOnly() {
        let objects: [KernelObject] = [MessagePort<CountingWaking>(), NotificationWord<CountedWaking>(),
                                       CallReply<CountedWaking>(caller: CountedWaiter())]
        #expect(objects.map(\.objectKind) == [.port, .notification, .reply])
        #expect(objects.map { $0.downcast(to: MessagePort<CountingWaking>.self) != nil } == [true, false, false])
        #expect(objects.map { $0.downcast(to: NotificationWord<CountedWaking>.self) != nil } == [false, true, false])
        #expect(objects.map { $0.isKind(CallReply<CountedWaking>.self) } == [false, false, true])
        #expect(objects[0].downcast(to: MessagePort<CountingWaking>.self) === objects[0])
    }

    /// Moved handles release their objects with the rights they carried.
    @Test func aMovedHandleReleasesWithItsRights() {
        let log = CapabilityLog()
        MovedHandle<KernelObject>(object: LabelledObject(7, log: log), rights: [.send, .transfer]).release()
        #expect(log.released.count == 1 && log.released[0].label == 7 && log.released[0].rights == [.send, .transfer])
    }
}
