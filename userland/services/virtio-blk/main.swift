// virtio-blk: the disk's driver and the block service in one process (protocol: BlockProtocol.swift
// in the runtime; docs/ARCHITECTURE.md, "The disk"). It finds the first virtio-mmio transport with
// a modern (virtio 1.x) block device behind it, sets the device up with one split virtqueue in DMA
// memory, and serves clients: each attaches a transfer buffer of its own once, then reads, writes
// and flushes sectors through it. Requests from several clients are in flight at once; the
// device's interrupt, bound to a notification, says when some completed.
//
// Failure: a device that breaks the virtqueue's rules (Virtqueue.swift lists what it checks), or
// stops completing requests (`Watchdog`), is reset and set up again, and every request it held
// is given to it once more; after eight resets with no completion between, the driver ends. If
// this process dies, the kernel resets the device before its DMA memory is reused, the process
// manager starts a new instance, and clients send their unanswered request again (BlockDevice).

import UserSystemCall
import VirtioMemory

/// The device's registers, mapped.
struct Registers {
    let base: UnsafeMutableRawPointer

    func read(_ register: VirtioMMIORegister) -> UInt32 { virtio_load32(base + register.offset) }
    func write(_ register: VirtioMMIORegister, _ value: UInt32) { virtio_store32(base + register.offset, value) }
    func write64(_ low: VirtioMMIORegister, _ value: UInt64) {
        write(low, UInt32(truncatingIfNeeded: value))
        virtio_store32(base + low.offset + 4, UInt32(truncatingIfNeeded: value >> 32))
    }

    var status: VirtioDeviceStatus {
        get { VirtioDeviceStatus(rawValue: read(.status)) }
        nonmutating set { write(.status, newValue.rawValue) }
    }
}

/// Where things live in the driver's one DMA object: the queue, a header and status byte for each
/// request slot of the table, and a transfer buffer for each request the driver takes at once.
enum Layout {
    static let queueSize: UInt16 = 128
    static let queueOffset = 0
    static let slotsOffset = 8192
    static let slotBytes = 32
    static let statusInSlot = 16
    static let buffersOffset = 16384
    /// Requests taken at once: each has a transfer buffer of its own.
    static let concurrentRequests = 8
    static let totalBytes = buffersOffset + concurrentRequests * BlockProtocol.maximumTransfer
}

/// A client's transfer buffer, mapped here: one of its process's, told apart by the key the
/// client chose for it (BlockProtocol.swift).
struct Client {
    var process: UInt64 = 0
    var key: UInt64 = 0
    var memory = Handle.none
    var buffer: UnsafeMutableRawPointer?
    var bytes = 0
}

/// What the driver remembers of a request it took, beyond what the table holds.
struct Pending {
    var inUse = false
    var reply = Handle.none
    /// The client whose buffer it reads from or writes to (-1: none, a flush).
    var owner = -1
    var client: UnsafeMutableRawPointer?
}

enum Driver {
    nonisolated(unsafe) static var registers: Registers!
    nonisolated(unsafe) static var dma: UnsafeMutableRawPointer!
    nonisolated(unsafe) static var dmaAddress: UInt64 = 0
    nonisolated(unsafe) static var queue: SplitVirtqueue!
    nonisolated(unsafe) static var table = BlockRequestTable()
    nonisolated(unsafe) static var pending = InlineArray<8, Pending>(repeating: Pending())
    nonisolated(unsafe) static var clients = InlineArray<8, Client>(repeating: Client())
    nonisolated(unsafe) static var nextEviction = 0
    nonisolated(unsafe) static var capacity: UInt64 = 0
    nonisolated(unsafe) static var features = BlockFeatures()
    nonisolated(unsafe) static var served: UInt64 = 0
    nonisolated(unsafe) static var resets: UInt64 = 0
    /// Resets since the device last completed a request. A device that breaks the queue's rules
    /// again at once after each would keep its requests (and its clients) waiting for ever;
    /// past `maximumResetsInARow` the driver gives up, and ends as a failed service does.
    nonisolated(unsafe) static var resetsInARow = 0
    static let maximumResetsInARow = 8
    /// Completions and resets so far: what the watchdog thread calls progress (`Watchdog`).
    nonisolated(unsafe) static var progress: UInt64 = 0
    /// Chains handed to the device and taken back from it: one per request, and one more for
    /// each request handed over again after a reset (`info` reports them; disktest checks them).
    nonisolated(unsafe) static var chainsSubmitted: UInt64 = 0
    nonisolated(unsafe) static var chainsCompleted: UInt64 = 0
}

@main
struct VirtioBlock {
    static func main() {
        guard let access = ProgramStart.handle(.deviceAccess) else { System.panic("virtio-blk: no device access") }
        guard let port = ProgramStart.handle(.service) else { System.panic("virtio-blk: started without a port") }
        // Started as the system's block service, it has a private port too (the disk, given to
        // the programs the manifest names): reads, writes and attachments are served there, and
        // its public port answers `info` only. Started with one port (as the benchmark starts
        // it), it serves everything there: its starter chose who may send to it.
        let disk = ProgramStart.handle(.privateService)
        guard let device = findDevice(through: access) else {
            System.print("virtio-blk: no virtio block device")
            System.exit(0)
        }
        guard let memory = try? System.createDMA(UInt64(Layout.totalBytes), forDevice: device.index, through: access),
              let mapped = try? IPC.map(memory.memory, writable: true) else {
            System.panic("virtio-blk: no DMA memory")
        }
        Driver.dma = mapped
        Driver.dmaAddress = memory.deviceAddress
        guard startDevice() else { System.panic("virtio-blk: the device refused to start") }
        guard let notification = try? IPC.createNotification(),
              (try? System.bindInterrupt(device.interrupt, to: notification)) != nil else {
            System.panic("virtio-blk: cannot bind the device's interrupt")
        }
        Watchdog.start(notification: notification)
        System.print("virtio-blk: \(Driver.capacity) sectors (\(Driver.capacity / 2048) MiB)\(Driver.features.contains(.readOnly) ? ", read-only" : "")\(Driver.features.contains(.flush) ? ", write cache" : ""), queue of \(Driver.queue.size)")
        serve(Ports(open: disk ?? port, infoOnly: disk == nil ? nil : port), notification: notification,
              interrupt: device.interrupt)
    }

    /// Opens each virtio-mmio transport until one has a modern block device behind it; the
    /// others are let go again.
    static func findDevice(through access: Handle) -> (index: UInt64, interrupt: Handle)? {
        var index: UInt64 = 0
        while let info = try? System.deviceInfo(index, through: access) {
            defer { index += 1 }
            guard info.kind == .virtioMMIO, let opened = try? System.openDevice(index, through: access) else { continue }
            if let page = try? IPC.map(opened.registers, writable: true) {
                let registers = Registers(base: page + Int(info.registerAddress & 0xFFF))
                if registers.read(.magicValue) == VirtioMMIO.magic && registers.read(.deviceID) == VirtioMMIO.blockDeviceID {
                    if registers.read(.version) == VirtioMMIO.version {
                        Driver.registers = registers
                        try? IPC.close(opened.registers)
                        return (index, opened.interrupt)
                    }
                    System.print("virtio-blk: device \(index) is a legacy (version 1) transport: not driven")
                }
                try? System.unmap(page, bytes: 4096)
            }
            try? IPC.close(opened.registers)
            try? IPC.close(opened.interrupt)
        }
        return nil
    }

    /// Resets the device and sets it up (virtio 1.x, section 3.1.1): features, the queue in DMA
    /// memory, then DRIVER_OK. False if the device fails any step.
    static func startDevice() -> Bool {
        let registers = Driver.registers!
        registers.status = []
        var patience = 1_000_000
        while registers.read(.status) != 0 && patience > 0 { patience -= 1 }
        registers.status = [.acknowledge]
        registers.status = [.acknowledge, .driver]

        registers.write(.deviceFeaturesSelect, 0)
        var offered = UInt64(registers.read(.deviceFeatures))
        registers.write(.deviceFeaturesSelect, 1)
        offered |= UInt64(registers.read(.deviceFeatures)) << 32
        let wanted = VirtioFeatures(rawValue: offered).intersection([.version1, .blockFlush, .blockReadOnly])
        guard wanted.contains(.version1) else { return fail("the device does not offer VIRTIO_F_VERSION_1") }
        registers.write(.driverFeaturesSelect, 0)
        registers.write(.driverFeatures, UInt32(truncatingIfNeeded: wanted.rawValue))
        registers.write(.driverFeaturesSelect, 1)
        registers.write(.driverFeatures, UInt32(truncatingIfNeeded: wanted.rawValue >> 32))
        registers.status = [.acknowledge, .driver, .featuresOK]
        guard registers.status.contains(.featuresOK) else { return fail("the device refused the features") }
        Driver.features = []
        if wanted.contains(.blockReadOnly) { Driver.features.insert(.readOnly) }
        if wanted.contains(.blockFlush) { Driver.features.insert(.flush) }

        registers.write(.queueSelect, 0)
        guard registers.read(.queueReady) == 0 else { return fail("queue 0 is already in use") }
        let maximum = registers.read(.queueSizeMaximum)
        guard maximum > 0 else { return fail("the device has no queue 0") }
        guard let size = SplitVirtqueue.size(deviceMaximum: maximum, wanted: Int(Layout.queueSize),
                                             descriptorsPerRequest: BlockRequestBuffers.maximumCount) else {
            return fail("the device's queue 0 is too small for a request")
        }
        let memory = VirtqueueMemory(base: Driver.dma + Layout.queueOffset, deviceAddress: Driver.dmaAddress + UInt64(Layout.queueOffset),
                                     size: Layout.slotsOffset - Layout.queueOffset)
        guard let queue = SplitVirtqueue(size: size, memory: memory) else { return fail("no room for the queue") }
        Driver.queue = queue
        registers.write(.queueSize, UInt32(size))
        registers.write64(.queueDescriptorLow, queue.descriptorAreaAddress)
        registers.write64(.queueDriverLow, queue.driverAreaAddress)
        registers.write64(.queueDeviceLow, queue.deviceAreaAddress)
        registers.write(.queueReady, 1)

        // The capacity, read again if the device changed it meanwhile.
        var generation: UInt32
        repeat {
            generation = registers.read(.configGeneration)
            let low = UInt64(registers.read(.config))
            let high = UInt64(virtio_load32(registers.base + VirtioMMIORegister.config.offset + 4))
            Driver.capacity = low | high << 32
        } while generation != registers.read(.configGeneration)

        registers.status = [.acknowledge, .driver, .featuresOK, .driverOK]
        return !registers.status.contains(.failed) && !registers.status.contains(.deviceNeedsReset)
    }

    static func fail(_ why: StaticString) -> Bool {
        System.print("virtio-blk: \(why)")
        Driver.registers.status = [.failed]
        return false
    }
}

// MARK: - Serving clients

/// Where requests arrive: every request on `open`; only `info` on `infoOnly`, whose send right
/// anyone may look up by name (the rest are refused `accessDenied`).
struct Ports {
    let open: Handle
    let infoOnly: Handle?
}

extension VirtioBlock {
    static func serve(_ ports: Ports, notification: Handle, interrupt: Handle) -> Never {
        var message = IPCMessage()
        // After a turn for the device, the ports come first: a device that raises its interrupt
        // without pause must not keep the clients' requests (and the answers to them) waiting.
        var portsFirst = false
        // Made once, refilled each turn: no allocation on the way to each wait.
        var sources: [Handle] = []
        sources.reserveCapacity(3)
        while true {
            // Requests wait in the ports' queues while every transfer buffer is taken; `info`,
            // which takes none, is answered meanwhile. The open port comes before the public
            // one, so that requests anyone may send cannot hold back the disk's own.
            sources.removeAll(keepingCapacity: true)
            if Driver.table.count < Layout.concurrentRequests { sources.append(ports.open) }
            if let infoOnly = ports.infoOnly { sources.append(infoOnly) }
            if portsFirst { sources.append(notification) } else { sources.insert(notification, at: 0) }
            guard let ready = try? IPC.waitAny(sources), ready < sources.count else { continue }
            let source = sources[ready]
            portsFirst = source == notification
            if source == notification {
                let bits = (try? IPC.wait(notification, timeout: 0)) ?? 0
                let watchdogBits = bits & (Watchdog.stallBit | Watchdog.ageBit)
                if bits & Watchdog.interruptBit != 0 || watchdogBits == 0 {
                    let cause = Driver.registers.read(.interruptStatus)
                    Driver.registers.write(.interruptAcknowledge, cause)
                    try? System.acknowledgeInterrupt(interrupt)
                }
                // What the device completed counts before the watchdog's look.
                collectCompletions()
                if watchdogBits != 0 { resetIfStalled(bits) }
                continue
            }
            let onOpenPort = source == ports.open
            do throws(KernelError) {
                try IPC.receive(source, into: &message, timeout: 0)
            } catch {
                continue
            }
            handle(&message, authorized: onOpenPort)
        }
    }

    /// The watchdog's bits: with `stallBit`, reset a device that completed nothing since the
    /// watchdog looked, if it holds requests; with `ageBit`, one that has held a request for
    /// `Watchdog.ageLimitLooks` looks, though it completes others.
    static func resetIfStalled(_ bits: UInt64) {
        let held = Driver.table.heldByDevice
        guard held > 0 else { return }
        if bits & Watchdog.stallBit != 0 && Watchdog.load(.suspected) == Driver.progress {
            System.print("virtio-blk: the device completed no request in \(Watchdog.limitMilliseconds / 1000) s (\(held) held); resetting it")
            recover()
        } else if bits & Watchdog.ageBit != 0, let oldest = Driver.table.oldestStamp(),
                  Watchdog.load(.looks) &- oldest >= Watchdog.ageLimitLooks {
            System.print("virtio-blk: the device has held a request for \(Watchdog.ageLimitLooks) s while completing others; resetting it")
            recover()
        }
    }

    /// Takes one request: answers it at once, or hands it to the device and answers it when the
    /// device is done. Unless `authorized` (it came on the open port), only `info` is served.
    static func handle(_ message: inout IPCMessage, authorized: Bool) {
        guard let reply = message.replyHandle else {
            closeHandles(of: message)
            return
        }
        let request = BlockServiceRequest(rawValue: message.label)
        // Only attach brings a handle the service keeps; any other is closed at once, so a
        // client cannot fill the service's handle table.
        if request != .attach || !authorized { closeHandles(of: message) }
        var answer = IPCMessage(label: 0)
        do throws(KernelError) {
            if !authorized && request != .info && request != nil { throw .accessDenied }
            switch request {
            case .info:
                answer.setWord(atByte: 0, Driver.capacity)
                answer.setWord(atByte: 8, Driver.features.rawValue)
                answer.setWord(atByte: 16, Driver.served)
                answer.setWord(atByte: 24, Driver.resets)
                answer.setWord(atByte: 32, Driver.chainsSubmitted)
                answer.setWord(atByte: 40, Driver.chainsCompleted)
                answer.length = 48
            case .attach:
                answer.setWord(atByte: 0, UInt64(try attach(&message)))
                answer.length = 8
            case .detach:
                try detach(message)
            case .read:
                try start(.read, message, reply: reply)
                return
            case .write:
                try start(.write, message, reply: reply)
                return
            case .flush:
                guard Driver.features.contains(.flush) else { break }
                try start(.flush, message, reply: reply)
                return
            case nil:
                throw .invalidArgument
            }
        } catch {
            if request == .attach && authorized { closeHandles(of: message) }
            answer = IPCMessage(label: error.rawValue)
        }
        Driver.served += 1
        try? IPC.reply(reply, &answer)
    }

    static func closeHandles(of message: IPCMessage) {
        message.closeHandles()
    }

    /// Maps the client's transfer buffer in place of its earlier one. With every place taken, an
    /// idle client's is let go, oldest attachment first. A buffer a request still uses is never
    /// let go: its process waits (`wouldBlock`), or another is (`queueFull` if none can be).
    static func attach(_ message: inout IPCMessage) throws(KernelError) -> Int {
        guard message.handleCount == 1 else { throw .invalidArgument }
        let memory = message.handle(0)
        let key = message.length >= 8 ? message.word(atByte: 0) : 0
        var place = clientIndex(process: message.sender.value, key: key)
        if let place, isBusy(place) { throw .wouldBlock }
        if place == nil { place = Driver.clients.indices.first { Driver.clients[$0].buffer == nil } }
        if place == nil {
            for step in 0..<Driver.clients.count {
                let candidate = (Driver.nextEviction + step) % Driver.clients.count
                if !isBusy(candidate) { place = candidate; break }
            }
            Driver.nextEviction = ((place ?? 0) + 1) % Driver.clients.count
        }
        guard let index = place else { throw .queueFull }
        let mapped = try IPC.mapWithSize(memory, writable: true)
        release(client: index)
        Driver.clients[index] = Client(process: message.sender.value, key: key, memory: memory, buffer: mapped.address,
                                       bytes: mapped.bytes)
        return mapped.bytes
    }

    /// Lets go of the buffer the sender attached under the key in word 0: `notFound` if it has
    /// none here, `wouldBlock` while a request uses it.
    static func detach(_ message: IPCMessage) throws(KernelError) {
        guard let index = clientIndex(process: message.sender.value, key: message.length >= 8 ? message.word(atByte: 0) : 0),
              Driver.clients[index].buffer != nil else { throw .notFound }
        if isBusy(index) { throw .wouldBlock }
        release(client: index)
    }

    /// The place of the buffer process `process` attached under `key`, if it is here. The
    /// process is the kernel's word for who sent a request, so no client reaches another's.
    static func clientIndex(process: UInt64, key: UInt64) -> Int? {
        Driver.clients.indices.first { Driver.clients[$0].process == process && Driver.clients[$0].key == key }
    }

    /// Whether a request in flight reads from or writes to client `index`'s buffer.
    static func isBusy(_ index: Int) -> Bool {
        Driver.pending.indices.contains { Driver.pending[$0].inUse && Driver.pending[$0].owner == index }
    }

    static func release(client index: Int) {
        let client = Driver.clients[index]
        if let buffer = client.buffer {
            try? System.unmap(buffer, bytes: UInt64(client.bytes))
            try? IPC.close(client.memory)
        }
        Driver.clients[index] = Client()
    }

    /// Checks a read, write or flush, copies a write's bytes to a transfer buffer and gives the
    /// request to the device.
    static func start(_ kind: BlockRequestKind, _ message: IPCMessage, reply: Handle) throws(KernelError) {
        var request = BlockRequest(kind: kind, sector: 0, count: 0, tag: 0)
        var client: UnsafeMutableRawPointer?
        var owner = -1
        if kind != .flush {
            // Sector, count and offset, and the buffer's key (none: 0); a shorter message would
            // leave words of an earlier one in their place.
            guard message.length == 24 || message.length == 32 else { throw .invalidArgument }
            let sector = message.word(atByte: 0), count = message.word(atByte: 8), offset = message.word(atByte: 16)
            let key = message.length >= 32 ? message.word(atByte: 24) : 0
            guard let found = clientIndex(process: message.sender.value, key: key), let buffer = Driver.clients[found].buffer else { throw .notFound }
            owner = found
            let bytes = count &* UInt64(BlockProtocol.sectorSize)
            guard count > 0, count <= UInt64(BlockProtocol.maximumTransfer / BlockProtocol.sectorSize),
                  sector < Driver.capacity, count <= Driver.capacity - sector,
                  offset % UInt64(BlockProtocol.sectorSize) == 0, offset <= UInt64(Driver.clients[owner].bytes),
                  bytes <= UInt64(Driver.clients[owner].bytes) - offset else { throw .invalidArgument }
            if kind == .write && Driver.features.contains(.readOnly) { throw .accessDenied }
            request.sector = sector
            request.count = UInt32(count)
            client = buffer + Int(offset)
        }
        guard let record = Driver.pending.indices.first(where: { !Driver.pending[$0].inUse }) else { throw .queueFull }
        if kind == .write, let client {
            (Driver.dma + transferBuffer(record)).copyMemory(from: client, byteCount: Int(request.count) * BlockProtocol.sectorSize)
        }
        request.tag = UInt64(record)
        guard Driver.table.add(request) else { throw .queueFull }
        Driver.pending[record] = Pending(inUse: true, reply: reply, owner: owner, client: client)
        submitWaiting()
    }

    static func transferBuffer(_ record: Int) -> Int { Layout.buffersOffset + record * BlockProtocol.maximumTransfer }

    /// Puts every waiting request on the queue (header, data, status) and tells the device.
    static func submitWaiting() {
        let submitted = Driver.table.submitWaiting(stamp: Watchdog.load(.looks)) { slot, request in
            let header = Layout.slotsOffset + slot * Layout.slotBytes
            request.storeHeader(at: Driver.dma + header)
            virtio_store16(Driver.dma + header + Layout.statusInSlot, 0xFF)
            let address = Driver.dmaAddress
            guard let buffers = request.buffers(header: address + UInt64(header),
                                                data: address + UInt64(transferBuffer(Int(request.tag))),
                                                status: address + UInt64(header + Layout.statusInSlot)) else { return nil }
            return Driver.queue.submit(buffers)
        }
        Driver.chainsSubmitted += UInt64(submitted)
        if submitted > 0 && Driver.queue.publish() { Driver.registers.write(.queueNotify, 0) }
        Watchdog.publish()
    }

    /// Answers every request the device completed; a device that broke the queue's rules is
    /// reset and given its requests again.
    static func collectCompletions() {
        while let event = Driver.queue.nextCompletion() {
            switch event {
            case .completed(let head, let written):
                Driver.chainsCompleted += 1
                guard let (request, slot) = Driver.table.complete(head: head) else { continue }
                Driver.resetsInARow = 0
                Driver.progress += 1
                let status = request.outcome(deviceByte: UInt8(truncatingIfNeeded: virtio_load16(
                    Driver.dma + Layout.slotsOffset + slot * Layout.slotBytes + Layout.statusInSlot)), written: written)
                finish(request, status: status)
            case .deviceFault(let fault):
                System.print("virtio-blk: the device broke the queue's rules (\(describe(fault))); resetting it")
                recover()
                return
            }
        }
        submitWaiting()
    }

    static func describe(_ fault: VirtqueueFault) -> StaticString {
        switch fault {
        case .usedIndexJumped: return "used index jumped"
        case .idOutOfRange: return "descriptor id out of range"
        case .notInFlight: return "descriptor id not in flight"
        case .writtenTooLong: return "written length beyond the buffer"
        }
    }

    /// Resets and restarts the device, then hands it every request it held, in arrival order.
    static func recover() {
        Driver.resets += 1
        Driver.resetsInARow += 1
        guard Driver.resetsInARow <= Driver.maximumResetsInARow else {
            System.panic("virtio-blk: the device failed again after \(Driver.maximumResetsInARow) resets in a row")
        }
        guard startDevice() else { System.panic("virtio-blk: the device did not come back after a reset") }
        Driver.table.requeueInFlight()
        // The device's time to complete them runs from here.
        Driver.progress += 1
        submitWaiting()
    }

    static func finish(_ request: BlockRequest, status: BlockStatus) {
        let record = Int(request.tag)
        let pending = Driver.pending[record]
        Driver.pending[record] = Pending()
        var answer = IPCMessage(label: status == .ok ? 0 : KernelError.deviceFailed.rawValue)
        if status == .ok, request.kind == .read, let client = pending.client {
            client.copyMemory(from: Driver.dma + transferBuffer(record), byteCount: Int(request.count) * BlockProtocol.sectorSize)
        }
        Driver.served += 1
        try? IPC.reply(pending.reply, &answer)
    }
}

// MARK: - The watchdog

/// A device that holds requests and completes none for `limitMilliseconds` is reset as one that
/// broke the queue's rules is, and its requests are handed to it again: a request never answered
/// would keep its client waiting for ever. So is one that has held a request for
/// `ageLimitLooks` seconds while it completes others (it lost that one). The limits are far
/// beyond any request's time on a working device, which completes each in well under a second
/// even on a busy host.
///
/// A thread of its own looks once a second, so that the serving loop waits without a deadline
/// (a timed wait on every request would cost it a deadline armed and cancelled each time). The
/// loop publishes what it holds and its progress in `words`; the thread keeps a `StallWatch`
/// over them, and when it runs out sets `stallBit` in the loop's notification. The loop resets
/// the device only if it has made no progress since (`resetIfStalled`), so a completion that
/// raced the thread's look is never answered with a reset. The thread also counts its looks
/// (`looks`), the loop stamps each request handed over with that count, and every
/// `ageCheckLooks` looks while requests are held the thread sets `ageBit`: the loop then
/// compares the oldest request's stamp with the count.
enum Watchdog {
    static let limitMilliseconds: UInt64 = 10_000
    static let periodNanoseconds: UInt64 = 1_000_000_000
    /// The device's interrupt sets bit 0 of the loop's notification (`bindInterrupt`); this one
    /// is the watchdog's.
    static let interruptBit: UInt64 = 1 << 0
    static let stallBit: UInt64 = 1 << 1
    static let ageBit: UInt64 = 1 << 2
    /// A request held this many looks (seconds) is taken for lost.
    static let ageLimitLooks: UInt64 = 30
    static let ageCheckLooks: UInt64 = 10

    enum Word: Int {
        /// Requests the device holds, and `Driver.progress`: written by the loop.
        case held, progress
        /// The progress the watchdog saw when it found the device stalled.
        case suspected
        /// The watchdog's looks so far.
        case looks
    }

    /// Statically initialized, so that no access pays for a lazy initialization.
    nonisolated(unsafe) static var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    static func address(_ word: Word) -> UInt64 {
        withUnsafeMutablePointer(to: &words) { UInt64(UInt(bitPattern: $0)) + UInt64(word.rawValue * 8) }
    }
    static func load(_ word: Word) -> UInt64 { user_load_acquire(address(word)) }
    static func store(_ word: Word, _ value: UInt64) { user_store_release(address(word), value) }

    /// The loop's part: what the device holds and the progress so far, after each change.
    static func publish() {
        store(.progress, Driver.progress)
        store(.held, UInt64(Driver.table.heldByDevice))
    }

    /// Starts the thread. Without one (no memory for its stack) the driver serves on unwatched.
    static func start(notification: Handle) {
        if (try? System.createThread(stackBytes: 16 * 1024, argument: notification.value, watch)) == nil {
            System.print("virtio-blk: no watchdog thread; a device that stops answering will not be reset")
        }
    }
}

/// The watchdog thread (`Watchdog`); `argument` is the loop's notification. It ends if the system
/// has no clock to time its looks by (booted with tick=0).
private func watch(_ argument: UInt64) {
    let notification = Handle(argument)
    guard let timer = try? IPC.createNotification() else { return }
    var stall = StallWatch(limit: System.clock.ticks(milliseconds: Watchdog.limitMilliseconds))
    var seen = UInt64.max
    var looks: UInt64 = 0
    while true {
        do throws(KernelError) {
            _ = try IPC.wait(timer, timeout: Watchdog.periodNanoseconds)
        } catch {
            guard error == .timedOut else {
                System.print("virtio-blk: no timer for the watchdog (\(error)); a device that stops answering will not be reset")
                return
            }
        }
        looks &+= 1
        Watchdog.store(.looks, looks)
        let progress = Watchdog.load(.progress)
        let held = Watchdog.load(.held)
        let now = System.clock.ticks
        stall.observe(held: Int(held), progressed: progress != seen, now: now)
        seen = progress
        if held > 0 && looks % Watchdog.ageCheckLooks == 0 { try? IPC.signal(notification, bits: Watchdog.ageBit) }
        guard stall.isStalled(at: now) else { continue }
        Watchdog.store(.suspected, progress)
        try? IPC.signal(notification, bits: Watchdog.stallBit)
        // The time runs again from here, whether the loop resets the device or not.
        stall.observe(held: Int(Watchdog.load(.held)), progressed: true, now: now)
    }
}
