import Foundation
import Testing
import PropertyBased
import Virtio

// MARK: Test fixtures

/// Memory a fake device reaches by bus address, between two inaccessible pages: an access by the
/// driver below or beyond it stops the test run instead of passing unnoticed.
private final class GuardedMemory {
    static let pageSize = 4096
    let start: UnsafeMutableRawPointer
    let length: Int
    let busAddress: UInt64
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int

    init(pages: Int, busAddress: UInt64) {
        mappingLength = (pages + 2) * Self.pageSize
        let mapped = mmap(nil, mappingLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        precondition(mapped != MAP_FAILED && mapped != nil)
        mapping = mapped!
        start = mapping + Self.pageSize
        length = pages * Self.pageSize
        self.busAddress = busAddress
        precondition(mprotect(mapping, Self.pageSize, PROT_NONE) == 0)
        precondition(mprotect(start + length, Self.pageSize, PROT_NONE) == 0)
    }

    deinit { munmap(mapping, mappingLength) }

    func busAddress(of pointer: UnsafeMutableRawPointer) -> UInt64 { busAddress + UInt64(pointer - start) }

    /// The device's view of `count` bytes at bus address `address`; nil when any is outside.
    func pointer(_ address: UInt64, _ count: Int) -> UnsafeMutableRawPointer? {
        guard address >= busAddress, count >= 0, address - busAddress <= UInt64(length),
              UInt64(length) - (address - busAddress) >= UInt64(count) else { return nil }
        return start + Int(address - busAddress)
    }
}

/// A queue whose memory ends where the trailing guard page begins; the few bytes before it are
/// filled with a pattern that must survive.
private final class QueueFixture {
    static let canary: UInt8 = 0xA5
    let memory: GuardedMemory
    let queueStart: UnsafeMutableRawPointer
    var queue: SplitVirtqueue

    init(size: UInt16) {
        let needed = SplitVirtqueue.bytesNeeded(size: size)
        let pages = (needed + GuardedMemory.pageSize - 1) / GuardedMemory.pageSize
        memory = GuardedMemory(pages: pages, busAddress: 0x1000_0000)
        memory.start.initializeMemory(as: UInt8.self, repeating: Self.canary, count: memory.length)
        queueStart = memory.start + (memory.length - (needed + 15) / 16 * 16)
        queue = SplitVirtqueue(size: size, memory: VirtqueueMemory(
            base: queueStart, deviceAddress: memory.busAddress(of: queueStart), size: needed))!
    }

    // The queue's mutating calls, callable inside an expectation.
    func publish() -> Bool { queue.publish() }
    func submit(_ buffers: [VirtqueueBuffer]) -> UInt16? { queue.submit(buffers) }
    func nextCompletion() -> VirtqueueEvent? { queue.nextCompletion() }

    var canaryIntact: Bool {
        let before = queueStart - memory.start
        let after = memory.length - before - SplitVirtqueue.bytesNeeded(size: queue.size)
        let end = queueStart + SplitVirtqueue.bytesNeeded(size: queue.size)
        return (0..<before).allSatisfy { memory.start.load(fromByteOffset: $0, as: UInt8.self) == Self.canary }
            && (0..<after).allSatisfy { end.load(fromByteOffset: $0, as: UInt8.self) == Self.canary }
    }
}

/// A chain as the device found it in the available ring.
private struct DeviceChain {
    var head: UInt16
    var buffers: [VirtqueueBuffer]
    var writable: UInt32 { buffers.filter(\.deviceWrites).reduce(0) { $0 + $1.length } }
}

/// The device's side of the rings, reading and writing them at the addresses the driver gave it.
private struct FakeDevice {
    let memory: GuardedMemory
    let size: UInt16
    let descriptors: UInt64
    let available: UInt64
    let used: UInt64
    var nextAvailable: UInt16 = 0
    var usedIndex: UInt16 = 0

    init(_ fixture: QueueFixture) {
        memory = fixture.memory
        size = fixture.queue.size
        descriptors = fixture.queue.descriptorAreaAddress
        available = fixture.queue.driverAreaAddress
        used = fixture.queue.deviceAreaAddress
    }

    private func load<T: FixedWidthInteger>(_ address: UInt64, as type: T.Type) -> T {
        memory.pointer(address, MemoryLayout<T>.size)!.loadUnaligned(as: T.self)
    }

    private func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) {
        memory.pointer(address, MemoryLayout<T>.size)!.storeBytes(of: value, as: T.self)
    }

    /// Chains made available since the last call, in ring order.
    mutating func take() -> [DeviceChain] {
        let published = load(available + 2, as: UInt16.self)
        var chains: [DeviceChain] = []
        while nextAvailable != published {
            let head = load(available + 4 + 2 * UInt64(nextAvailable % size), as: UInt16.self)
            chains.append(DeviceChain(head: head, buffers: walk(from: head)))
            nextAvailable &+= 1
        }
        return chains
    }

    private func walk(from head: UInt16) -> [VirtqueueBuffer] {
        var buffers: [VirtqueueBuffer] = []
        var index = head
        while buffers.count < Int(size) {
            let descriptor = descriptors + 16 * UInt64(index)
            let flags = load(descriptor + 12, as: UInt16.self)
            buffers.append(VirtqueueBuffer(deviceAddress: load(descriptor, as: UInt64.self),
                                           length: load(descriptor + 8, as: UInt32.self), deviceWrites: flags & 2 != 0))
            if flags & 1 == 0 { break }
            index = load(descriptor + 14, as: UInt16.self)
        }
        return buffers
    }

    /// Writes used elements for `entries`, then moves the used index past all of them at once.
    mutating func give(_ entries: [(id: UInt32, written: UInt32)]) {
        for (offset, entry) in entries.enumerated() {
            writeElement(slot: usedIndex &+ UInt16(offset), id: entry.id, written: entry.written)
        }
        usedIndex &+= UInt16(entries.count)
        writeUsedIndex(usedIndex)
    }

    func writeElement(slot: UInt16, id: UInt32, written: UInt32) {
        let element = used + 4 + 8 * UInt64(slot % size)
        store(id, at: element)
        store(written, at: element + 4)
    }

    func writeUsedIndex(_ index: UInt16) { store(index, at: used + 2) }
    func setNoNotify(_ on: Bool) { store(UInt16(on ? 1 : 0), at: used) }
}

/// Draws bounded numbers from the generated codes, cycling through them.
private struct Codes {
    let codes: [Int]
    var position = 0

    init(_ codes: [Int]) { self.codes = codes.isEmpty ? [0] : codes }

    mutating func next(_ bound: Int) -> Int {
        defer { position += 1 }
        let code = codes[position % codes.count] &+ position &* 0x9E37_79B9
        return Int(UInt(bitPattern: code) % UInt(max(bound, 1)))
    }

    mutating func pick<T>(from items: inout [T]) -> T { items.remove(at: next(items.count)) }
}

// MARK: Block device fixture

/// Per-slot DMA homes for a request's header, status byte and data.
private struct RequestBuffers {
    static let maximumSectors = 4
    static let stride = 32 + maximumSectors * 512
    let memory = GuardedMemory(pages: (BlockRequestTable.capacity * stride + 4095) / 4096, busAddress: 0x2000_0000)

    func header(_ slot: Int) -> UnsafeMutableRawPointer { memory.start + slot * Self.stride }
    func status(_ slot: Int) -> UnsafeMutableRawPointer { header(slot) + 16 }
    func data(_ slot: Int) -> UnsafeMutableRawPointer { header(slot) + 32 }

    func chain(for request: BlockRequest, slot: Int) -> BlockRequestBuffers {
        request.storeHeader(at: header(slot))
        status(slot).storeBytes(of: 0xFF, as: UInt8.self)
        return request.buffers(header: memory.busAddress(of: header(slot)), data: memory.busAddress(of: data(slot)),
                               status: memory.busAddress(of: status(slot)))!
    }
}

/// An honest virtio-blk device over an array of bytes.
private struct FakeDisk {
    static let sectors = 48
    static let identity = Array("fake-virtio-disk-001".utf8)
    var bytes = (0..<(sectors * 512)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }

    /// Serves one chain at once; returns the bytes written into the chain.
    mutating func serve(_ chain: DeviceChain, dma: GuardedMemory) -> UInt32 {
        let header = dma.pointer(chain.buffers[0].deviceAddress, 16)!
        let type = header.loadUnaligned(as: UInt32.self)
        let sector = Int(header.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let status = chain.buffers.last!
        let data = chain.buffers.count == 3 ? chain.buffers[1] : nil
        let length = Int(data?.length ?? 0)
        let target = dma.pointer(data?.deviceAddress ?? dma.busAddress, length)!
        var result = BlockStatus.ok
        var written: UInt32 = 1
        switch type {
        case 0, 1:
            guard sector + length / 512 <= Self.sectors else { result = .ioError; break }
            if type == 0 {
                bytes.withUnsafeBytes { target.copyMemory(from: $0.baseAddress! + sector * 512, byteCount: length) }
                written += UInt32(length)
            } else {
                bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: sector * 512).copyMemory(from: target, byteCount: length) }
            }
        case 4: break
        case 8:
            target.copyMemory(from: Self.identity, byteCount: Self.identity.count)
            written += UInt32(Self.identity.count)
        default: result = .unsupported
        }
        dma.pointer(status.deviceAddress, 1)!.storeBytes(of: result.rawValue, as: UInt8.self)
        return written
    }
}

/// What a completed request must show.
private struct Expectation {
    var status: BlockStatus
    var data: [UInt8]?
}

private func randomRequest(_ codes: inout Codes, tag: UInt64) -> BlockRequest {
    let kinds: [BlockRequestKind] = [.read, .read, .write, .write, .flush, .getID]
    return BlockRequest(kind: kinds[codes.next(kinds.count)], sector: UInt64(codes.next(FakeDisk.sectors + 4)),
                        count: UInt32(1 + codes.next(RequestBuffers.maximumSectors)), tag: tag)
}

/// The bytes a write of `request` carries: a function of its tag, so each write is told apart.
private func payload(of request: BlockRequest) -> [UInt8] {
    (0..<Int(request.count) * 512).map { UInt8(truncatingIfNeeded: $0 &+ Int(request.tag) &* 7) }
}

// MARK: Layout and submission

@Suite struct VirtqueueLayoutTests {
    @Test func areasFollowTheAlignmentRulesAndFitTheMemory() {
        for exponent in 0...8 {
            let size = UInt16(1) << exponent
            let fixture = QueueFixture(size: size)
            let queue = fixture.queue
            let base = fixture.memory.busAddress(of: fixture.queueStart)
            #expect(queue.descriptorAreaAddress == base && base % 16 == 0)
            #expect(queue.driverAreaAddress == base + 16 * UInt64(size))
            #expect(queue.deviceAreaAddress % 4 == 0)
            #expect(queue.deviceAreaAddress >= queue.driverAreaAddress + 6 + 2 * UInt64(size))
            #expect(queue.deviceAreaAddress + 6 + 8 * UInt64(size) == base + UInt64(SplitVirtqueue.bytesNeeded(size: size)))
            #expect(queue.freeCount == Int(size))
            #expect(fixture.canaryIntact)
        }
    }

    /// The size chosen for a device's maximum: the largest power of two up to it and to what the
    /// driver wants, never below what one request takes.
    @Test func theQueueSizeIsAPowerOfTwoThatHoldsARequest() {
        #expect(SplitVirtqueue.size(deviceMaximum: 1024, wanted: 128, descriptorsPerRequest: 3) == 128)
        #expect(SplitVirtqueue.size(deviceMaximum: 100, wanted: 128, descriptorsPerRequest: 3) == 64)
        #expect(SplitVirtqueue.size(deviceMaximum: 128, wanted: 100, descriptorsPerRequest: 3) == 64)
        #expect(SplitVirtqueue.size(deviceMaximum: 5, wanted: 128, descriptorsPerRequest: 3) == 4)
        #expect(SplitVirtqueue.size(deviceMaximum: 3, wanted: 128, descriptorsPerRequest: 3) == nil)
        #expect(SplitVirtqueue.size(deviceMaximum: 2, wanted: 128, descriptorsPerRequest: 3) == nil)
        #expect(SplitVirtqueue.size(deviceMaximum: 0, wanted: 128, descriptorsPerRequest: 3) == nil)
        #expect(SplitVirtqueue.size(deviceMaximum: .max, wanted: .max, descriptorsPerRequest: 3) == UInt16(SplitVirtqueue.maximumSize))
        for maximum in UInt32(1)...1000 {
            guard let size = SplitVirtqueue.size(deviceMaximum: maximum, wanted: 128, descriptorsPerRequest: 3) else {
                #expect(maximum < 4)
                continue
            }
            #expect(size & (size - 1) == 0 && UInt32(size) <= maximum && size <= 128 && size >= 4
                    && (UInt32(size) * 2 > min(maximum, 128)))
        }
    }

    @Test func unusableSizesAndMemoryAreRefused() {
        let memory = GuardedMemory(pages: 4, busAddress: 0x1000_0000)
        let needed = SplitVirtqueue.bytesNeeded(size: 64)
        func queue(_ size: UInt16, offset: Int = 0, deviceAddress: UInt64 = 0x1000_0000, bytes: Int = needed) -> SplitVirtqueue? {
            SplitVirtqueue(size: size, memory: VirtqueueMemory(base: memory.start + offset, deviceAddress: deviceAddress, size: bytes))
        }
        #expect(queue(64) != nil)
        #expect(queue(0) == nil)
        #expect(queue(48) == nil)
        #expect(queue(512, bytes: memory.length) == nil)
        #expect(queue(64, bytes: needed - 1) == nil)
        #expect(queue(64, offset: 8) == nil)
        #expect(queue(64, deviceAddress: 0x1000_0004) == nil)
        #expect(queue(64, deviceAddress: UInt64.max - 15) == nil)
    }

    @Test func aChainCarriesNextAndWriteFlagsAndIsShownOnlyOnPublish() {
        let fixture = QueueFixture(size: 8)
        var device = FakeDevice(fixture)
        let buffers = [VirtqueueBuffer(deviceAddress: 0x5000, length: 16, deviceWrites: false),
                       VirtqueueBuffer(deviceAddress: 0x6000, length: 512, deviceWrites: true),
                       VirtqueueBuffer(deviceAddress: 0x7000, length: 1, deviceWrites: true)]
        let head = fixture.queue.submit(buffers)
        #expect(head != nil)
        #expect(fixture.queue.freeCount == 5)
        let early = device.take()
        #expect(early.isEmpty)
        #expect(fixture.publish())
        let chains = device.take()
        #expect(chains.count == 1)
        #expect(chains.first?.head == head)
        #expect(chains.first?.buffers == buffers)
        #expect(!fixture.publish())
        device.setNoNotify(true)
        _ = fixture.queue.submit(buffers.prefix(1))
        #expect(!fixture.publish())
        device.setNoNotify(false)
        _ = fixture.queue.submit(buffers.prefix(2))
        #expect(fixture.publish())
    }

    @Test func submitNeedsEnoughFreeDescriptorsAndChangesNothingWithout() {
        let fixture = QueueFixture(size: 8)
        let buffer = VirtqueueBuffer(deviceAddress: 0x5000, length: 8, deviceWrites: true)
        #expect(fixture.submit(Array(repeating: buffer, count: 5)) != nil)
        #expect(fixture.submit(Array(repeating: buffer, count: 4)) == nil)
        #expect(fixture.submit([VirtqueueBuffer]()) == nil)
        #expect(fixture.submit([buffer, VirtqueueBuffer(deviceAddress: 0, length: .max, deviceWrites: true)]) == nil)
        #expect(fixture.queue.freeCount == 3)
        #expect(fixture.submit(Array(repeating: buffer, count: 3)) != nil)
        #expect(fixture.queue.freeCount == 0)
        #expect(fixture.submit([buffer]) == nil)
    }
}

// MARK: An honest device

@Suite struct VirtqueueHonestDeviceTests {
    /// Random block requests against an in-memory disk; the device takes chains in ring order,
    /// serves them, and returns them out of order in random batches. Every request completes
    /// once, with the status and data a model of the disk predicts, and every descriptor comes back.
    @Test func everyRequestCompletesOnceWithTheRightData() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...Int.max).array(of: 1...250)) { input in
            var codes = Codes(input)
            let sizes: [UInt16] = [4, 8, 16, 64, 256]
            let fixture = QueueFixture(size: sizes[codes.next(sizes.count)])
            var device = FakeDevice(fixture)
            let dma = RequestBuffers()
            var disk = FakeDisk()
            var model = disk.bytes
            var table = BlockRequestTable()
            var expected: [UInt64: Expectation] = [:]
            var completed: Set<UInt64> = []
            var taken: [(id: UInt32, written: UInt32)] = []
            var nextTag: UInt64 = 0

            func submitWaiting() {
                _ = table.submitWaiting { slot, request in
                    guard let head = fixture.queue.submit(dma.chain(for: request, slot: slot)) else { return nil }
                    if request.kind == .write { dma.data(slot).copyMemory(from: payload(of: request), byteCount: payload(of: request).count) }
                    expected[request.tag] = predict(request, on: &model)
                    return head
                }
                let wantsNotification = codes.next(2) == 0
                device.setNoNotify(!wantsNotification)
                let published = fixture.queue.chainsInFlight
                let notified = fixture.queue.publish()
                #expect(notified == (wantsNotification && fixture.queue.chainsInFlight > published))
            }
            func drain() {
                while let event = fixture.queue.nextCompletion() {
                    guard case .completed(let head, let written) = event else {
                        Issue.record("honest device reported as \(event)")
                        return
                    }
                    guard let (request, slot) = table.complete(head: head) else {
                        Issue.record("completion of head \(head) serves no request")
                        continue
                    }
                    #expect(completed.insert(request.tag).inserted)
                    check(request, slot: slot, written: written, against: expected[request.tag], dma: dma)
                }
            }

            for _ in 0..<input.count {
                switch codes.next(5) {
                case 0, 1:
                    if table.add(randomRequest(&codes, tag: nextTag)) { nextTag += 1 }
                case 2:
                    submitWaiting()
                case 3:
                    for chain in device.take() { taken.append((UInt32(chain.head), disk.serve(chain, dma: dma.memory))) }
                    var batch: [(id: UInt32, written: UInt32)] = []
                    for _ in 0..<codes.next(taken.count + 1) { batch.append(codes.pick(from: &taken)) }
                    device.give(batch)
                default:
                    drain()
                }
            }
            for _ in 0..<1000 where table.count > 0 {
                submitWaiting()
                for chain in device.take() { taken.append((UInt32(chain.head), disk.serve(chain, dma: dma.memory))) }
                device.give(taken)
                taken = []
                drain()
            }
            #expect(table.count == 0)
            #expect(completed.count == Int(nextTag))
            #expect(fixture.queue.freeCount == Int(fixture.queue.size))
            #expect(fixture.queue.chainsInFlight == 0)
            #expect(disk.bytes == model)
            #expect(fixture.canaryIntact)
        }
    }
}

/// Applies `request` to the model disk in the order the device serves it, and says what its
/// completion must show.
private func predict(_ request: BlockRequest, on model: inout [UInt8]) -> Expectation {
    let start = Int(request.sector) * 512
    let length = Int(request.count) * 512
    switch request.kind {
    case .read, .write:
        guard start + length <= model.count else { return Expectation(status: .ioError) }
        if request.kind == .write {
            model.replaceSubrange(start..<(start + length), with: payload(of: request))
            return Expectation(status: .ok)
        }
        return Expectation(status: .ok, data: Array(model[start..<(start + length)]))
    case .flush:
        return Expectation(status: .ok)
    case .getID:
        return Expectation(status: .ok, data: FakeDisk.identity)
    }
}

private func check(_ request: BlockRequest, slot: Int, written: UInt32, against expectation: Expectation?,
                   dma: RequestBuffers) {
    guard let expectation else {
        Issue.record("request \(request.tag) completed without having been submitted")
        return
    }
    let status = BlockStatus(deviceByte: dma.status(slot).load(as: UInt8.self))
    #expect(status == expectation.status)
    if status == .ok, let data = expectation.data {
        #expect(Array(UnsafeRawBufferPointer(start: dma.data(slot), count: data.count)) == data)
        #expect(written == UInt32(data.count) + 1)
    } else {
        #expect(written == 1)
    }
}

// MARK: A hostile device

/// The driver's side of a generic workload: chains of random shapes, with what each one lets the
/// device write, remembered so the tests can tell a lie from a completion.
private struct ChainModel {
    var outstanding: [(head: UInt16, buffers: [VirtqueueBuffer])] = []
    var published: Set<UInt16> = []

    func buffers(of head: UInt16) -> [VirtqueueBuffer]? { outstanding.first { $0.head == head }?.buffers }

    func writable(of head: UInt16) -> UInt32 {
        (buffers(of: head) ?? []).filter(\.deviceWrites).reduce(0) { $0 + $1.length }
    }

    mutating func submit(_ buffers: [VirtqueueBuffer], to queue: inout SplitVirtqueue) -> UInt16? {
        guard let head = queue.submit(buffers) else { return nil }
        outstanding.append((head, buffers))
        return head
    }

    mutating func publish(_ queue: inout SplitVirtqueue) {
        _ = queue.publish()
        published = Set(outstanding.map(\.head))
    }

    mutating func complete(_ head: UInt16) {
        outstanding.removeAll { $0.head == head }
        published.remove(head)
    }
}

private func randomChain(_ codes: inout Codes) -> [VirtqueueBuffer] {
    (0...codes.next(3)).map { _ in
        VirtqueueBuffer(deviceAddress: UInt64(codes.next(1 << 20)) << 4, length: UInt32(1 + codes.next(4096)),
                        deviceWrites: codes.next(2) == 0)
    }
}

/// Submits and publishes `count` random chains; the device has taken them.
private func chainsInFlight(_ count: Int, fixture: QueueFixture, device: inout FakeDevice, codes: inout Codes) -> ChainModel {
    var model = ChainModel()
    for _ in 0..<count { _ = model.submit(randomChain(&codes), to: &fixture.queue) }
    model.publish(&fixture.queue)
    _ = device.take()
    return model
}

/// After a fault: the fault stays until `reset()`, nothing more is taken, reset hands back every
/// outstanding head oldest first and frees every descriptor, and the same chains submitted again
/// all complete with an honest device.
private func expectRecovery(from fault: VirtqueueFault, fixture: QueueFixture, model: ChainModel) {
    let free = fixture.queue.freeCount
    #expect(fixture.nextCompletion() == .deviceFault(fault))
    #expect(fixture.submit([VirtqueueBuffer(deviceAddress: 0, length: 1, deviceWrites: false)]) == nil)
    #expect(!fixture.publish())
    #expect(fixture.queue.freeCount == free)

    let abandoned = fixture.queue.reset()
    #expect(Array(abandoned) == model.outstanding.map(\.head))
    #expect(fixture.queue.freeCount == Int(fixture.queue.size))
    #expect(fixture.queue.fault == nil)
    #expect(fixture.canaryIntact)

    var device = FakeDevice(fixture)
    var again = ChainModel()
    for head in abandoned {
        guard let buffers = model.buffers(of: head) else {
            Issue.record("reset handed back head \(head), which was not outstanding")
            return
        }
        let resubmitted = again.submit(buffers, to: &fixture.queue)
        #expect(resubmitted != nil)
    }
    again.publish(&fixture.queue)
    let chains = device.take()
    #expect(chains.map(\.buffers) == abandoned.map { model.buffers(of: $0) ?? [] })
    device.give(chains.reversed().map { (UInt32($0.head), $0.writable) })
    var returned: [UInt16] = []
    while let event = fixture.queue.nextCompletion() {
        guard case .completed(let head, let written) = event else {
            Issue.record("honest device after reset reported as \(event)")
            return
        }
        #expect(written == again.writable(of: head))
        returned.append(head)
    }
    #expect(returned == chains.reversed().map(\.head))
    #expect(fixture.queue.freeCount == Int(fixture.queue.size))
}

@Suite struct VirtqueueHostileDeviceTests {
    static let input = Gen.int(in: 0...Int.max).array(of: 8...40)

    @Test func aUsedIndexThatJumpsIsAFault() async {
        await propertyCheck(count: 150, input: Self.input) { input in
            var codes = Codes(input)
            let fixture = QueueFixture(size: 16)
            var device = FakeDevice(fixture)
            let model = chainsInFlight(1 + codes.next(5), fixture: fixture, device: &device, codes: &codes)
            let returned = codes.next(model.outstanding.count)
            device.give(model.outstanding.prefix(returned).map { (UInt32($0.head), 0) })
            var honest = model
            for _ in 0..<returned {
                guard case .completed(let head, _) = fixture.queue.nextCompletion() else {
                    Issue.record("an honest completion was refused")
                    return
                }
                honest.complete(head)
            }
            let beyond = UInt16(model.outstanding.count + 1 + codes.next(Int(UInt16.max) - 20))
            device.writeUsedIndex(beyond)
            #expect(fixture.nextCompletion() == .deviceFault(.usedIndexJumped))
            expectRecovery(from: .usedIndexJumped, fixture: fixture, model: honest)
        }
    }

    @Test func anIDBeyondTheTableIsAFault() async {
        await propertyCheck(count: 150, input: Self.input) { input in
            var codes = Codes(input)
            let fixture = QueueFixture(size: 8)
            var device = FakeDevice(fixture)
            let model = chainsInFlight(1 + codes.next(3), fixture: fixture, device: &device, codes: &codes)
            let id = [UInt32(8), 9, 255, 256, 65535, 65536, .max][codes.next(7)]
            device.give([(id, 0)])
            #expect(fixture.nextCompletion() == .deviceFault(.idOutOfRange))
            expectRecovery(from: .idOutOfRange, fixture: fixture, model: model)
        }
    }

    /// A descriptor inside a chain, a free one, the head of a chain not yet published, or a head
    /// already returned: none is a chain the device holds.
    @Test func anIDThatIsNoChainInFlightIsAFault() async {
        await propertyCheck(count: 200, input: Self.input) { input in
            var codes = Codes(input)
            let fixture = QueueFixture(size: 16)
            var device = FakeDevice(fixture)
            var model = chainsInFlight(2 + codes.next(3), fixture: fixture, device: &device, codes: &codes)
            let first = model.outstanding[0]
            device.give([(UInt32(first.head), 0)])
            #expect(fixture.nextCompletion() == .completed(head: first.head, written: 0))
            model.complete(first.head)
            let unpublished = model.submit(randomChain(&codes), to: &fixture.queue)
            let inFlight = Set(model.published)
            let candidates = (0..<UInt16(16)).filter { !inFlight.contains($0) }
            let id = [first.head, unpublished ?? first.head, candidates[codes.next(candidates.count)]][codes.next(3)]
            device.give([(UInt32(id), 0)])
            #expect(fixture.nextCompletion() == .deviceFault(.notInFlight))
            expectRecovery(from: .notInFlight, fixture: fixture, model: model)
        }
    }

    @Test func writingMoreThanTheChainAllowsIsAFault() async {
        await propertyCheck(count: 150, input: Self.input) { input in
            var codes = Codes(input)
            let fixture = QueueFixture(size: 16)
            var device = FakeDevice(fixture)
            var model = chainsInFlight(2 + codes.next(3), fixture: fixture, device: &device, codes: &codes)
            let exact = model.outstanding[0]
            device.give([(UInt32(exact.head), model.writable(of: exact.head))])
            #expect(fixture.nextCompletion() == .completed(head: exact.head, written: model.writable(of: exact.head)))
            model.complete(exact.head)
            let victim = model.outstanding[codes.next(model.outstanding.count)].head
            let excess = UInt64(model.writable(of: victim)) + 1 + UInt64(codes.next(1 << 33))
            device.give([(UInt32(victim), UInt32(min(excess, UInt64(UInt32.max))))])
            #expect(fixture.nextCompletion() == .deviceFault(.writtenTooLong))
            expectRecovery(from: .writtenTooLong, fixture: fixture, model: model)
        }
    }

    /// Random bytes anywhere in the queue memory (the driver's areas too) between honest steps:
    /// the driver never traps nor touches memory outside the queue, accepts only completions of
    /// chains the device holds within their writable bytes, and recovers after a fault.
    @Test func garbageInTheRingsIsRefusedAndRecoveredFrom() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max).array(of: 20...200)) { input in
            var codes = Codes(input)
            let sizes: [UInt16] = [1, 2, 8, 32]
            let fixture = QueueFixture(size: sizes[codes.next(sizes.count)])
            var device = FakeDevice(fixture)
            var model = ChainModel()
            var fault: VirtqueueFault?
            let bytes = SplitVirtqueue.bytesNeeded(size: fixture.queue.size)
            for _ in 0..<input.count where fault == nil {
                switch codes.next(6) {
                case 0:
                    _ = model.submit(randomChain(&codes), to: &fixture.queue)
                case 1:
                    model.publish(&fixture.queue)
                case 2:
                    let honest = model.outstanding.filter { model.published.contains($0.head) }.prefix(codes.next(3))
                    device.give(honest.map { (UInt32($0.head), model.writable(of: $0.head)) })
                case 3:
                    let usedStart = Int(fixture.queue.deviceAreaAddress - fixture.queue.descriptorAreaAddress)
                    let offset = codes.next(2) == 0 ? usedStart + codes.next(bytes - usedStart) : codes.next(bytes)
                    fixture.queueStart.storeBytes(of: UInt8(truncatingIfNeeded: codes.next(256)), toByteOffset: offset, as: UInt8.self)
                case 4:
                    device.writeElement(slot: UInt16(truncatingIfNeeded: codes.next(1 << 16)),
                                        id: UInt32(truncatingIfNeeded: codes.next(1 << 40)),
                                        written: UInt32(truncatingIfNeeded: codes.next(1 << 40)))
                    device.writeUsedIndex(UInt16(truncatingIfNeeded: codes.next(1 << 16)))
                default:
                    fault = drain(fixture, &model)
                }
            }
            if fault == nil { fault = drain(fixture, &model) }
            if let fault {
                expectRecovery(from: fault, fixture: fixture, model: model)
            } else {
                #expect(fixture.queue.freeCount + model.outstanding.reduce(0) { $0 + $1.buffers.count } == Int(fixture.queue.size))
                #expect(fixture.canaryIntact)
            }
        }
    }
}

/// Takes every completion the queue will give; each must be a chain the device holds, within its
/// writable bytes. Returns the fault, if one stopped the queue.
private func drain(_ fixture: QueueFixture, _ model: inout ChainModel) -> VirtqueueFault? {
    while let event = fixture.queue.nextCompletion() {
        switch event {
        case .completed(let head, let written):
            #expect(model.published.contains(head))
            #expect(written <= model.writable(of: head))
            model.complete(head)
        case .deviceFault(let fault):
            return fault
        }
    }
    return nil
}

// MARK: Block requests across a device reset

/// Sectors are written at most once, never while a read of them is outstanding, and read only
/// while no write to them is, so what a read must return does not depend on which requests a
/// reset made the device serve twice.
private struct WriteOnceDisk {
    enum Sector: Equatable { case initial, writing, written(tag: UInt64) }
    var sectors = Array(repeating: Sector.initial, count: FakeDisk.sectors)
    var readers = Array(repeating: 0, count: FakeDisk.sectors)
    let initial = FakeDisk().bytes

    mutating func request(_ codes: inout Codes, tag: UInt64) -> (BlockRequest, Expectation) {
        let choice = codes.next(6)
        let sector = codes.next(FakeDisk.sectors)
        switch (choice, sectors[sector]) {
        case (0...1, .initial) where readers[sector] == 0:
            sectors[sector] = .writing
            return (BlockRequest(kind: .write, sector: UInt64(sector), count: 1, tag: tag), Expectation(status: .ok))
        case (2...3, .initial):
            readers[sector] += 1
            let bytes = Array(initial[(sector * 512)..<(sector * 512 + 512)])
            return (BlockRequest(kind: .read, sector: UInt64(sector), count: 1, tag: tag), Expectation(status: .ok, data: bytes))
        case (2...3, .written(let writer)):
            readers[sector] += 1
            let data = payload(of: BlockRequest(kind: .write, sector: 0, count: 1, tag: writer))
            return (BlockRequest(kind: .read, sector: UInt64(sector), count: 1, tag: tag), Expectation(status: .ok, data: data))
        case (4, _):
            return (BlockRequest(kind: .getID, sector: 0, count: 0, tag: tag), Expectation(status: .ok, data: FakeDisk.identity))
        default:
            return (BlockRequest(kind: .flush, sector: 0, count: 0, tag: tag), Expectation(status: .ok))
        }
    }
}

@Suite struct BlockRecoveryTests {
    /// A device that serves honestly, then now and then breaks one rule of the used ring. After
    /// each fault the driver resets the queue and requeues what was in flight: the requests go to
    /// the device again in their original order, and in the end every request completed once with
    /// the right status and data.
    @Test func requestsInFlightSurviveFaultsAndResets() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...Int.max).array(of: 20...250)) { input in
            var codes = Codes(input)
            let fixture = QueueFixture(size: [8, 16, 64][codes.next(3)])
            var device = FakeDevice(fixture)
            let dma = RequestBuffers()
            var disk = FakeDisk()
            var sectors = WriteOnceDisk()
            var table = BlockRequestTable()
            var expected: [UInt64: Expectation] = [:]
            var headTags: [UInt16: UInt64] = [:]
            var submittedTags: [UInt64] = []
            var completed: Set<UInt64> = []
            var taken: [(id: UInt32, written: UInt32)] = []
            var nextTag: UInt64 = 0
            var resets = 0
            var injected = 0

            func submitWaiting() {
                _ = table.submitWaiting { slot, request in
                    guard let head = fixture.queue.submit(dma.chain(for: request, slot: slot)) else { return nil }
                    if request.kind == .write { dma.data(slot).copyMemory(from: payload(of: request), byteCount: 512) }
                    headTags[head] = request.tag
                    submittedTags.append(request.tag)
                    return head
                }
                _ = fixture.queue.publish()
            }
            func drain() -> VirtqueueFault? {
                while let event = fixture.queue.nextCompletion() {
                    guard case .completed(let head, let written) = event else {
                        if case .deviceFault(let fault) = event { return fault }
                        return nil
                    }
                    guard let (request, slot) = table.complete(head: head) else {
                        Issue.record("completion of head \(head) serves no request")
                        continue
                    }
                    #expect(headTags.removeValue(forKey: head) == request.tag)
                    #expect(completed.insert(request.tag).inserted)
                    check(request, slot: slot, written: written, against: expected[request.tag], dma: dma)
                    if request.kind == .write { sectors.sectors[Int(request.sector)] = .written(tag: request.tag) }
                    if request.kind == .read { sectors.readers[Int(request.sector)] -= 1 }
                }
                return nil
            }
            func recover(from fault: VirtqueueFault) {
                let abandoned = fixture.queue.reset()
                #expect(abandoned.map { headTags[$0] } == submittedTags.filter { headTags.values.contains($0) })
                let order = abandoned.compactMap { headTags[$0] }
                let requeued = table.requeueInFlight()
                #expect(requeued == order.count)
                device = FakeDevice(fixture)
                taken = []
                headTags = [:]
                submittedTags = []
                resets += 1
                submitWaiting()
                #expect(Array(submittedTags.prefix(order.count)) == Array(order.prefix(submittedTags.count)))
            }
            func injectFault() -> VirtqueueFault? {
                guard drain() == nil, let (head, _) = headTags.first else { return nil }
                let size = fixture.queue.size
                switch codes.next(4) {
                case 0:
                    device.writeUsedIndex(device.usedIndex &+ UInt16(fixture.queue.chainsInFlight + 1 + codes.next(100)))
                    return .usedIndexJumped
                case 1:
                    device.give([(UInt32(size) + UInt32(codes.next(1 << 30)), 1)])
                    return .idOutOfRange
                case 2:
                    guard let stranger = (0..<size).first(where: { headTags[$0] == nil }) else { return nil }
                    device.give([(UInt32(stranger), 1)])
                    return .notInFlight
                default:
                    device.give([(UInt32(head), UInt32.max - UInt32(codes.next(1000)))])
                    return .writtenTooLong
                }
            }

            for _ in 0..<input.count {
                switch codes.next(6) {
                case 0, 1:
                    let (request, expectation) = sectors.request(&codes, tag: nextTag)
                    if table.add(request) {
                        expected[nextTag] = expectation
                        nextTag += 1
                    } else if request.kind == .write {
                        sectors.sectors[Int(request.sector)] = .initial
                    } else if request.kind == .read {
                        sectors.readers[Int(request.sector)] -= 1
                    }
                case 2:
                    submitWaiting()
                case 3:
                    for chain in device.take() { taken.append((UInt32(chain.head), disk.serve(chain, dma: dma.memory))) }
                    var batch: [(id: UInt32, written: UInt32)] = []
                    for _ in 0..<codes.next(taken.count + 1) { batch.append(codes.pick(from: &taken)) }
                    device.give(batch)
                case 4:
                    if let fault = drain() { recover(from: fault) }
                default:
                    guard codes.next(3) == 0, let broken = injectFault() else { break }
                    injected += 1
                    let fault = drain()
                    #expect(fault == broken)
                    if let fault { recover(from: fault) }
                }
            }
            for _ in 0..<1000 where table.count > 0 {
                submitWaiting()
                for chain in device.take() { taken.append((UInt32(chain.head), disk.serve(chain, dma: dma.memory))) }
                device.give(taken)
                taken = []
                if let fault = drain() { Issue.record("honest device reported as \(fault)") }
            }
            #expect(table.count == 0)
            #expect(completed.count == Int(nextTag))
            #expect(fixture.queue.freeCount == Int(fixture.queue.size))
            for (sector, state) in sectors.sectors.enumerated() {
                guard case .written(let writer) = state else { continue }
                let stored = Array(disk.bytes[(sector * 512)..<(sector * 512 + 512)])
                #expect(stored == payload(of: BlockRequest(kind: .write, sector: 0, count: 1, tag: writer)))
            }
            #expect(resets == injected)
            #expect(fixture.canaryIntact)
        }
    }
}

// MARK: The request table

@Suite struct BlockRequestTableTests {
    /// Random arrivals, submissions with random room in the queue, completions (of real and
    /// unknown heads) and resets, against an array model: requests go to the queue in arrival
    /// order, the first time and after every reset; each completes once; none is lost.
    @Test func matchesAnArrivalOrderModel() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max).array(of: 1...300)) { input in
            var codes = Codes(input)
            var table = BlockRequestTable()
            var model: [(request: BlockRequest, head: UInt16?, stamp: UInt64)] = []
            var nextTag: UInt64 = 0
            var nextHead: UInt16 = 0
            var now: UInt64 = 0
            var completed: [UInt64] = []
            for _ in 0..<input.count {
                switch codes.next(5) {
                case 0, 1:
                    let request = BlockRequest(kind: .read, sector: UInt64(codes.next(100)), count: 1, tag: nextTag)
                    let added = table.add(request)
                    #expect(added == (model.count < BlockRequestTable.capacity))
                    if added {
                        model.append((request, nil, 0))
                        nextTag += 1
                    }
                case 2:
                    var room = codes.next(8)
                    var handed: [UInt64] = []
                    now += UInt64(codes.next(3))
                    let count = table.submitWaiting(stamp: now) { _, request in
                        guard room > 0 else { return nil }
                        room -= 1
                        handed.append(request.tag)
                        nextHead &+= 1
                        return nextHead
                    }
                    let waiting = model.indices.filter { model[$0].head == nil }.prefix(handed.count)
                    #expect(handed == waiting.map { model[$0].request.tag })
                    #expect(count == handed.count)
                    for (offset, index) in waiting.enumerated() {
                        model[index].head = nextHead &- UInt16(handed.count - 1 - offset)
                        model[index].stamp = now
                    }
                case 3:
                    let inFlight = model.indices.filter { model[$0].head != nil }
                    let head = inFlight.isEmpty || codes.next(4) == 0
                        ? nextHead &+ 1 &+ UInt16(codes.next(100)) : model[inFlight[codes.next(inFlight.count)]].head!
                    let request = table.complete(head: head)?.request
                    let index = model.firstIndex { $0.head == head }
                    #expect(request == index.map { model[$0].request })
                    if let index { completed.append(model.remove(at: index).request.tag) }
                    let again = table.complete(head: head)
                    #expect(again == nil)
                default:
                    let inFlight = model.filter { $0.head != nil }.count
                    let requeued = table.requeueInFlight()
                    #expect(requeued == inFlight)
                    for index in model.indices { model[index].head = nil }
                }
                #expect(table.count == model.count)
                #expect(table.heldByDevice == model.filter { $0.head != nil }.count)
                #expect(table.oldestStamp() == model.filter { $0.head != nil }.map(\.stamp).min())
            }
            var remaining: [UInt64] = []
            table.removeAll { remaining.append($0.tag) }
            #expect(remaining == model.map(\.request.tag))
            #expect(table.count == 0)
            #expect(table.heldByDevice == 0)
            #expect(Set(completed + remaining).count == Int(nextTag))
        }
    }

    /// A device counts as stalled only after holding requests for the whole limit with no
    /// completion: checked against a model that keeps the time of every event, at random events.
    @Test func aStallIsTheLimitWithoutACompletionWhileRequestsAreHeld() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max).array(of: 1...200)) { input in
            var codes = Codes(input)
            let limit = UInt64(1 + codes.next(1000))
            var watch = StallWatch(limit: limit)
            var now: UInt64 = UInt64(codes.next(1 << 20))
            var held = 0
            // The model: when the device last completed something or went from idle to busy.
            var busySince: UInt64?
            for _ in 0..<input.count {
                now += UInt64(codes.next(Int(limit) * 2))
                let completed = held > 0 && codes.next(3) == 0
                if completed { held -= 1 + codes.next(held) }
                if codes.next(2) == 0 { held += codes.next(4) }
                if held == 0 {
                    busySince = nil
                } else if completed || busySince == nil {
                    busySince = now
                }
                watch.observe(held: held, progressed: completed, now: now)
                #expect(watch.since == busySince)
                #expect(watch.deadline == busySince.map { $0 + limit })
                let later = now + UInt64(codes.next(Int(limit) * 2))
                #expect(watch.isStalled(at: later) == (busySince.map { later - $0 >= limit } ?? false))
                if completed || held == 0 { #expect(!watch.isStalled(at: now)) }
            }
        }
    }

    @Test func aStallDeadlineNeverWrapsAndNewRequestsDoNotPutItOff() {
        var watch = StallWatch(limit: .max - 5)
        watch.observe(held: 1, progressed: false, now: 100)
        #expect(watch.deadline == .max)
        #expect(!watch.isStalled(at: .max - 1))
        var busy = StallWatch(limit: 50)
        busy.observe(held: 1, progressed: false, now: 10)
        busy.observe(held: 2, progressed: false, now: 40)
        busy.observe(held: 9, progressed: false, now: 59)
        #expect(busy.deadline == 60)
        #expect(busy.isStalled(at: 60))
        busy.observe(held: 8, progressed: true, now: 61)
        #expect(busy.deadline == 111)
        busy.observe(held: 0, progressed: true, now: 70)
        #expect(busy.deadline == nil)
        #expect(!busy.isStalled(at: .max))
    }

    @Test func headersAndChainsFollowTheBlockDeviceLayout() {
        var header = [UInt8](repeating: 0xEE, count: 16)
        let request = BlockRequest(kind: .write, sector: 0x0102_0304_0506_0708, count: 3, tag: 9)
        header.withUnsafeMutableBytes { request.storeHeader(at: $0.baseAddress!) }
        #expect(header == [1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])

        let chain = request.buffers(header: 0x100, data: 0x200, status: 0x300).map(Array.init)
        #expect(chain == [VirtqueueBuffer(deviceAddress: 0x100, length: 16, deviceWrites: false),
                          VirtqueueBuffer(deviceAddress: 0x200, length: 1536, deviceWrites: false),
                          VirtqueueBuffer(deviceAddress: 0x300, length: 1, deviceWrites: true)])
        let read = BlockRequest(kind: .read, sector: 0, count: 1, tag: 0).buffers(header: 0, data: 0x200, status: 0)
        #expect(read?[1] == VirtqueueBuffer(deviceAddress: 0x200, length: 512, deviceWrites: true))
        #expect(BlockRequest(kind: .flush, sector: 0, count: 0, tag: 0).buffers(header: 0, data: 0, status: 0)?.count == 2)
        #expect(BlockRequest(kind: .getID, sector: 0, count: 0, tag: 0).buffers(header: 0, data: 0, status: 0)?[1].length == 20)
        #expect(BlockRequest(kind: .read, sector: 0, count: .max, tag: 0).buffers(header: 0, data: 0, status: 0) == nil)

        #expect(BlockStatus(deviceByte: 0) == .ok)
        #expect(BlockStatus(deviceByte: 2) == .unsupported)
        #expect(BlockStatus(deviceByte: 0x7F) == .ioError)
        // A read is whole only when the device wrote its data and the status byte.
        let twoSectors = BlockRequest(kind: .read, sector: 0, count: 2, tag: 0)
        #expect(twoSectors.outcome(deviceByte: 0, written: 1025) == .ok)
        #expect(twoSectors.outcome(deviceByte: 0, written: 1024) == .ioError)
        #expect(twoSectors.outcome(deviceByte: 0, written: 1) == .ioError)
        #expect(twoSectors.outcome(deviceByte: 1, written: 1025) == .ioError)
        #expect(twoSectors.outcome(deviceByte: 2, written: 1) == .unsupported)
        #expect(request.outcome(deviceByte: 0, written: 1) == .ok) // a write's data is the device's to read
        #expect(BlockRequest(kind: .flush, sector: 0, count: 0, tag: 0).outcome(deviceByte: 0, written: 1) == .ok)

        let features = VirtioFeatures(low: 1 << 9 | 1 << 5, high: 1)
        #expect(features == [.version1, .blockFlush, .blockReadOnly])
        #expect(features.word(0) == 0x220 && features.word(1) == 1 && features.word(2) == 0)
    }
}
