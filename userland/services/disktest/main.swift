// disktest: the disk's test, run by init (through the process manager, with the right to crash
// services) once the services are up, and the driver-crash part of `make soak`. Without a disk it
// says so and passes. With one:
//
// 1. Every sector of the disk is written with a pattern (`DiskPattern`) in 64 KiB requests, then
//    read back and compared. The pattern stays on the disk for the harness, which checks the image
//    file after power-off.
// 2. Requests the service must refuse are refused: sectors past the end, a count of 0, bytes
//    past the buffer; on its public port, everything but `info`. Clients that close leave
//    nothing behind in it.
// 3. A worker thread copies the first 512 KiB of the disk to its second half, chunk by chunk,
//    reading each copy back, and adds one to a counter kept in the disk's last sector with every
//    chunk (read, add, write): while the main thread crashes the driver (the process manager's
//    crashService) N times (start argument; 0: 100) at random points of the worker's requests.
//    Every byte is compared; the counter must equal the chunks copied (no update lost or applied
//    twice); the kernel must hold afterwards what it held before.
//
// Last lines: "disk: N crashes, N requests sent again, counter N, leaked frames N, leaked objects
// N" and "disktest: N passed, N failed"; the exit code is the number of failures.

import UserSystemCall

/// What every sector holds after the first pass: word k (0-63) of sector s is
/// 0xD15C_0000_0000_0000 | s << 8 | k. tests/boot/scenarios.py computes the same.
enum DiskPattern {
    static func word(sector: UInt64, index: Int) -> UInt64 { 0xD15C_0000_0000_0000 | sector << 8 | UInt64(index) }

    static func fill(_ buffer: UnsafeMutableRawPointer, sector first: UInt64, count: Int) {
        let words = buffer.assumingMemoryBound(to: UInt64.self)
        for sector in 0..<count {
            for index in 0..<64 { words[sector * 64 + index] = word(sector: first + UInt64(sector), index: index) }
        }
    }

    /// The first sector in `buffer` that differs from the pattern of sectors from `first`, if any.
    static func firstDifference(_ buffer: UnsafeMutableRawPointer, sector first: UInt64, count: Int) -> UInt64? {
        let words = buffer.assumingMemoryBound(to: UInt64.self)
        for sector in 0..<count {
            for index in 0..<64 where words[sector * 64 + index] != word(sector: first + UInt64(sector), index: index) {
                return first + UInt64(sector)
            }
        }
        return nil
    }
}

/// The copy's shape: chunks of 64 sectors from sector 0 to the disk's second half.
enum Copy {
    static let chunkSectors = 64
    static let chunks = 16
}

/// Words the two threads share (each written by one, read by the other, with release/acquire).
enum Shared {
    nonisolated(unsafe) static let words = UnsafeMutablePointer<UInt64>.allocate(capacity: 10)
    static let chunksCopied = 0
    static let failures = 1
    static let stop = 2
    static let done = 3
    static let reissued = 4
    static let half = 5
    static let firstFailure = 6
    static let ready = 7
    static let go = 8
    static let release = 9

    static func load(_ index: Int) -> UInt64 { user_load_acquire(UInt64(UInt(bitPattern: words + index))) }
    static func store(_ index: Int, _ value: UInt64) { user_store_release(UInt64(UInt(bitPattern: words + index)), value) }
}

@main
struct DiskTest {
    static func main() {
        var checks = TestChecks("disktest")
        var disk: BlockDevice
        do throws(KernelError) {
            disk = try BlockDevice()
        } catch {
            System.print("disktest: no disk (\(error)): nothing to test")
            checks.finish()
        }
        guard let info = try? disk.info() else { System.panic("disktest: the block service does not answer info") }
        System.print("disktest: disk of \(info.sectors) sectors (\(info.sectors / 2048) MiB)")
        let chunk = BlockProtocol.maximumTransfer / BlockProtocol.sectorSize
        guard info.sectors >= UInt64(2 * Copy.chunks * Copy.chunkSectors + 1) else {
            System.panic("disktest: the disk is too small for the test")
        }

        // 1. The whole disk, written and read back.
        var sector: UInt64 = 0
        var written = true
        // Requests that go to the device: each must be handed to it once and come back once.
        var requests: UInt64 = 0
        while sector < info.sectors && written {
            let count = Int(min(UInt64(chunk), info.sectors - sector))
            DiskPattern.fill(disk.buffer, sector: sector, count: count)
            requests += 1
            do throws(KernelError) { try disk.write(sector: sector, count: count) } catch {
                written = false
                System.print("disktest: writing \(count) sectors at \(sector) failed: \(error)")
            }
            sector += UInt64(count)
        }
        var flushed = true
        if info.features.contains(.flush) {
            requests += 1
            do throws(KernelError) { try disk.flush() } catch {
                flushed = false
                System.print("disktest: flush failed: \(error)")
            }
        }
        sector = 0
        var mismatch: UInt64?
        var readBack = true
        while sector < info.sectors && readBack && mismatch == nil {
            let count = Int(min(UInt64(chunk), info.sectors - sector))
            disk.buffer.initializeMemory(as: UInt8.self, repeating: 0, count: count * BlockProtocol.sectorSize)
            requests += 1
            do throws(KernelError) { try disk.read(sector: sector, count: count) } catch {
                readBack = false
                System.print("disktest: reading \(count) sectors at \(sector) failed: \(error)")
            }
            mismatch = DiskPattern.firstDifference(disk.buffer, sector: sector, count: count)
            if let mismatch {
                let words = disk.buffer.assumingMemoryBound(to: UInt64.self)
                let at = Int(mismatch - sector) * 64
                System.print("disktest: sector \(mismatch) of a read of \(count) at \(sector) differs: word 0 is \(hex: UInt(words[at])), expected \(hex: UInt(DiskPattern.word(sector: mismatch, index: 0)))")
            }
            sector += UInt64(count)
        }
        checks.check(written && flushed && readBack && mismatch == nil,
                     "all \(info.sectors) sectors written, flushed and read back in 64 KiB requests: every byte as written")
        // A request handed to the device twice would let the device read a transfer buffer the
        // driver has refilled for the next request (as a miscompiled request table once did).
        let after = try? disk.info()
        let submitted = after.map { $0.chainsSubmitted &- info.chainsSubmitted } ?? 0
        let completed = after.map { $0.chainsCompleted &- info.chainsCompleted } ?? 0
        checks.check(submitted == requests && completed == requests && after?.resets == info.resets,
                     "the device got each of the \(requests) requests once: \(submitted) chains handed over, \(completed) returned")

        // 2. Refusals.
        let pastEnd = catching { () throws(KernelError) in try disk.read(sector: info.sectors, count: 1) }
        let hugeCount = catching { () throws(KernelError) in try disk.read(sector: 0, count: Int.max / 256) }
        let straddling = catching { () throws(KernelError) in try disk.write(sector: info.sectors - 1, count: 2) }
        var raw = IPCMessage(label: BlockServiceRequest.read.rawValue)
        raw.setWord(atByte: 8, 0)
        raw.setWord(atByte: 24, disk.bufferKey)
        raw.length = 32
        let noSectors = catching { () throws(KernelError) in _ = try disk.perform(raw) }
        raw.setWord(atByte: 8, 1)
        raw.setWord(atByte: 16, UInt64(disk.bufferBytes))
        let pastBuffer = catching { () throws(KernelError) in _ = try disk.perform(raw) }
        // A message too short for its words, after a good read: refused, not carried out with the
        // words the read left in the service's buffer.
        _ = try? disk.read(sector: 0, count: 1)
        var short = IPCMessage(label: BlockServiceRequest.write.rawValue)
        short.length = 16
        let tooShort = catching { () throws(KernelError) in _ = try disk.perform(short) }
        checks.check(pastEnd == .invalidArgument && straddling == .invalidArgument && noSectors == .invalidArgument
                     && pastBuffer == .invalidArgument && tooShort == .invalidArgument && hugeCount == .invalidArgument,
                     "refused with invalid argument: a read past the end, a write across it, 0 sectors, bytes past the buffer, a write of 16 bytes (\(tooShort == .invalidArgument)), a count of 2^55 (\(hugeCount == .invalidArgument))")
        disk.close()
        closedClients(&checks)
        publicPort(sectors: info.sectors, &checks)

        // 3. Crashes under a copy.
        crashesUnderCopy(sectors: info.sectors, &checks)
        checks.finish()
    }

    /// Clients that close let their buffers go in the service too (`detach`): after three made
    /// and closed in turn, the kernel holds what it held before (a buffer the service kept would
    /// be a memory object and its frames, mapped there).
    static func closedClients(_ checks: inout TestChecks) {
        // Closed ports apart: a service may let go of a closed port it still named meanwhile.
        let before = KernelFootprint.steady(closedPortsApart: true)
        var served = 0
        for _ in 0..<3 {
            guard var client = try? BlockDevice(bufferBytes: 16 * 1024) else { continue }
            if (try? client.read(sector: 0, count: 1)) != nil { served += 1 }
            client.close()
        }
        let after = KernelFootprint.settled(toward: before, closedPortsApart: true)
        checks.check(served == 3 && after.matches(before, closedPortsApart: true),
                     "\(served) clients made, served and closed in turn leave nothing behind in the service (frames \(before.frames) → \(after.frames), objects \(before.objects) → \(after.objects))")
    }

    /// The service's public port, which any program may look up by name: `info` is answered,
    /// and attach, read, write and flush are refused `accessDenied`. The disk is only for the
    /// programs given its private port.
    static func publicPort(sectors: UInt64, _ checks: inout TestChecks) {
        guard let found = try? SystemServices.lookup(BlockProtocol.serviceName, attempts: 40) else {
            checks.check(false, "the block service is registered under its name")
            return
        }
        defer { try? IPC.close(found.port) }
        /// The answer's label and first word, or the call's error as a label.
        func ask(_ request: BlockServiceRequest) -> (label: UInt64, word: UInt64) {
            var message = IPCMessage(label: request.rawValue)
            message.setWord(atByte: 0, 0)
            message.setWord(atByte: 8, 1)
            message.setWord(atByte: 16, 0)
            message.length = 24
            if request == .attach {
                guard let memory = try? IPC.createMemory(bytes: 4096) else { return (.max, 0) }
                message.attach(memory)
            }
            do throws(KernelError) {
                try IPC.call(found.port, &message)
            } catch {
                if request == .attach { message.closeHandles() }
                return (error.rawValue, 0)
            }
            return (message.label, message.word(atByte: 0))
        }
        let info = ask(.info)
        let denied = KernelError.accessDenied.rawValue
        var refused = 0
        for request in [BlockServiceRequest.attach, .read, .write, .flush] {
            let answer = ask(request).label
            if answer == denied {
                refused += 1
            } else {
                System.print("disktest: request \(request.rawValue) on the public port answered \(answer), not access denied")
            }
        }
        checks.check(info.label == 0 && info.word == sectors && refused == 4,
                     "on the public port, info answered (\(info.word) sectors) and \(refused) of attach, read, write and flush refused with access denied")
    }

    static func crashesUnderCopy(sectors: UInt64, _ checks: inout TestChecks) {
        let requested = System.startArgument == 0 ? 100 : Int(System.startArgument)
        guard let manager = SystemServices.processManager else { System.panic("disktest: no process manager") }
        let name: StaticString = "block"
        let nameBytes = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        // The copying thread starts and connects first: its stack and its connection are the same
        // at both measurements.
        Shared.store(Shared.half, sectors / 2)
        for index in [Shared.chunksCopied, Shared.failures, Shared.stop, Shared.done, Shared.reissued, Shared.ready,
                      Shared.go, Shared.release] { Shared.store(index, 0) }
        Shared.store(Shared.firstFailure, .max)
        guard (try? System.createThread(stackBytes: 64 * 1024, worker)) != nil else {
            checks.check(false, "the copying thread starts")
            return
        }
        while Shared.load(Shared.ready) == 0 { System.yield() }
        // The kernel is measured twice at the same point: just after a crash and a new instance's
        // first answer (so every service has let go of what the instance before held).
        guard let before = crashAndMeasure(manager, nameBytes) else {
            checks.check(false, "the block service comes back after a crash")
            return
        }
        Shared.store(Shared.go, 1)

        var random: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ System.clock.ticks
        var crashes = 0
        while crashes < requested && Shared.load(Shared.done) == 0 {
            // Wait for the copy to move on, then a random while more: the kill lands before,
            // during or after one of its requests.
            let seen = Shared.load(Shared.chunksCopied)
            var patience = 0
            while Shared.load(Shared.chunksCopied) == seen && Shared.load(Shared.done) == 0 && patience < 20_000 {
                System.yield()
                patience += 1
            }
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            for _ in 0..<(random % 64) { System.yield() }
            if (try? manager.crashService(nameBytes)) != nil { crashes += 1 }
        }
        Shared.store(Shared.stop, 1)
        while Shared.load(Shared.done) == 0 { System.sleep(nanoseconds: 1_000_000) }

        // The copy and the counter, read through a fresh connection.
        let copied = Shared.load(Shared.chunksCopied)
        var counter: UInt64 = .max
        var copyIntact = false
        if var disk = try? BlockDevice() {
            if (try? disk.read(sector: sectors - 1, count: 1)) != nil {
                counter = disk.buffer.load(as: UInt64.self)
            }
            copyIntact = true
            for index in 0..<Copy.chunks {
                let source = UInt64(index * Copy.chunkSectors)
                guard (try? disk.read(sector: sectors / 2 + source, count: Copy.chunkSectors)) != nil,
                      DiskPattern.firstDifference(disk.buffer, sector: source, count: Copy.chunkSectors) == nil else {
                    copyIntact = false
                    break
                }
            }
            disk.close()
        }
        let after = crashAndMeasure(manager, nameBytes, settlingToward: before) ?? KernelFootprint(frames: 0, objects: .max)
        Shared.store(Shared.release, 1)
        let leakedFrames = after.frames < before.frames ? before.frames - after.frames : 0
        let leakedObjects = after.objects > before.objects ? after.objects - before.objects : 0
        System.print("disk: \(crashes) crashes, \(Shared.load(Shared.reissued)) requests sent again, counter \(counter), leaked frames \(leakedFrames), leaked objects \(leakedObjects)")
        let failures = Shared.load(Shared.failures)
        checks.check(crashes == requested && failures == 0 && copyIntact && copied >= UInt64(Copy.chunks),
                     "\(crashes) crashes of the driver while \(copied) chunks of 32 KiB were copied and read back: \(failures) errors, every byte as expected (first failing step: \(Shared.load(Shared.firstFailure) == .max ? 0 : Shared.load(Shared.firstFailure)), 0 for none)")
        checks.check(counter == copied,
                     "the counter updated with every chunk reads \(counter) for \(copied) chunks: no update lost or applied twice")
        checks.check(leakedFrames == 0 && leakedObjects == 0,
                     "nothing leaked across the crashes (frames \(before.frames) → \(after.frames), objects \(before.objects) → \(after.objects))")
    }

    /// Crashes the driver, has the new instance answer once, and measures what the kernel holds
    /// (given `expected`, once it is back there or after a second of looking; without, the
    /// steady reading: other tests run beside this one).
    static func crashAndMeasure(_ manager: ProcessManager, _ name: UnsafeRawBufferPointer,
                                settlingToward expected: KernelFootprint? = nil) -> KernelFootprint? {
        guard (try? manager.crashService(name)) != nil, var probe = try? BlockDevice(),
              (try? probe.info()) != nil else { return nil }
        probe.close()
        guard let expected else { return KernelFootprint.steady() }
        return KernelFootprint.settled(toward: expected)
    }

    /// The copying thread: until told to stop (and at least one pass), copies chunk after chunk
    /// to the second half, reads each copy back, and adds one to the counter.
    static let worker: System.ThreadBody = { _ in
        let half = Shared.load(Shared.half)
        let counterSector = half * 2 - 1
        func fail(_ step: UInt64) {
            if Shared.load(Shared.failures) == 0 { Shared.store(Shared.firstFailure, step) }
            Shared.store(Shared.failures, Shared.load(Shared.failures) + 1)
        }
        guard var disk = try? BlockDevice() else {
            fail(7)
            Shared.store(Shared.ready, 1)
            Shared.store(Shared.done, 1)
            return
        }
        Shared.store(Shared.ready, 1)
        while Shared.load(Shared.go) == 0 { System.yield() }
        // The counter starts at 0.
        disk.buffer.initializeMemory(as: UInt8.self, repeating: 0, count: BlockProtocol.sectorSize)
        /// Runs one request of step `step`; false (the failure counted and its error printed) if it failed.
        func attempt(_ step: UInt64, _ request: () throws(KernelError) -> Void) -> Bool {
            do throws(KernelError) {
                try request()
                return true
            } catch {
                System.print("disktest: the copy's step \(step) failed: \(error)")
                fail(step)
                return false
            }
        }
        _ = attempt(1, { () throws(KernelError) in try disk.write(sector: counterSector, count: 1) })
        var copied: UInt64 = 0
        let bytes = Copy.chunkSectors * BlockProtocol.sectorSize
        while Shared.load(Shared.stop) == 0 || copied < UInt64(Copy.chunks) {
            let source = (copied % UInt64(Copy.chunks)) * UInt64(Copy.chunkSectors)
            guard attempt(2, { () throws(KernelError) in try disk.read(sector: source, count: Copy.chunkSectors) }),
                  DiskPattern.firstDifference(disk.buffer, sector: source, count: Copy.chunkSectors) == nil else {
                fail(2)
                break
            }
            guard attempt(3, { () throws(KernelError) in try disk.write(sector: half + source, count: Copy.chunkSectors) }) else {
                break
            }
            disk.buffer.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            guard attempt(4, { () throws(KernelError) in try disk.read(sector: half + source, count: Copy.chunkSectors) }),
                  DiskPattern.firstDifference(disk.buffer, sector: source, count: Copy.chunkSectors) == nil else {
                fail(4)
                break
            }
            // Read, add one, write: an update sent twice or lost would show in the count.
            guard attempt(5, { () throws(KernelError) in try disk.read(sector: counterSector, count: 1) }) else {
                break
            }
            let counter = disk.buffer.load(as: UInt64.self)
            disk.buffer.storeBytes(of: counter + 1, as: UInt64.self)
            guard attempt(6, { () throws(KernelError) in try disk.write(sector: counterSector, count: 1) }) else {
                break
            }
            copied += 1
            Shared.store(Shared.chunksCopied, copied)
        }
        Shared.store(Shared.reissued, disk.reissued)
        Shared.store(Shared.done, 1)
        // Connected until the main thread has measured.
        while Shared.load(Shared.release) == 0 { System.yield() }
        disk.close()
    }
}
