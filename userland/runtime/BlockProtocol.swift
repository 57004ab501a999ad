// The block service's protocol (userland/services/virtio-blk; docs/ARCHITECTURE.md, "The disk")
// and `BlockDevice`, its client. Every request is a call; the answer's label is 0 for success or
// the `KernelError` that refused it. Sectors are 512 bytes; words are 64-bit little-endian at
// payload offsets 0, 8, 16, ...
//
// | label | request | payload in | handles in | answer payload |
// |---|---|---|---|---|
// | 1 info | what the disk is | nothing | none | words: capacity (sectors), `BlockFeatures`, requests served, device resets, chains handed to the device, chains it returned |
// | 2 attach | the caller's transfer buffer | nothing | a memory object (map, write) | word 0: its size in bytes |
// | 3 read | sectors into the buffer | words: first sector, count, buffer offset | none | nothing |
// | 4 write | sectors from the buffer | words: first sector, count, buffer offset | none | nothing |
// | 5 flush | what was written reaches the disk | nothing | none | nothing |
//
// Data moves through the buffer a client attaches once (the service keeps one per client process,
// by the sender id the kernel reports, for a few processes at a time: an idle client's may be let
// go for another's, and `BlockDevice` then attaches it again). A read or write names sectors inside the disk and bytes
// inside the buffer, at most `BlockProtocol.maximumTransfer` at once. Errors: `invalidArgument`
// for an unknown label or a range outside the disk or the buffer; `notFound` for a transfer
// before attach; `accessDenied` for a write to a read-only disk; `deviceFailed` for an I/O error
// the device reported.
//
// Crashes: the service is the driver, and the process manager restarts it when it dies. A client
// sees its call answered `peerClosed`; `BlockDevice` then looks the service up again, attaches its
// buffer to the new instance and sends the same request once more. Reading or writing the same
// sectors with the same bytes twice leaves the disk as once, so a request the dead instance had
// already carried out is not doubled by being sent again, and one it had not is not lost.

public enum BlockServiceRequest: UInt64, Sendable {
    case info = 1
    case attach = 2
    case read = 3
    case write = 4
    case flush = 5
}

public enum BlockProtocol {
    public static let sectorSize = 512
    /// The most one read or write moves: what the service's transfer buffers hold.
    public static let maximumTransfer = 64 * 1024
    /// The name the service is registered under.
    public static let serviceName: StaticString = "block"
}

public struct BlockFeatures: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Writes are refused.
    public static let readOnly = BlockFeatures(rawValue: 1 << 0)
    /// The device has a write cache that `flush` empties.
    public static let flush = BlockFeatures(rawValue: 1 << 1)
}

/// What `BlockDevice.info` reports.
public struct BlockInfo: Equatable, Sendable {
    public var sectors: UInt64
    public var features: BlockFeatures
    /// Requests this instance of the service has answered.
    public var served: UInt64
    /// Times this instance reset the device after it misbehaved.
    public var resets: UInt64
    /// Descriptor chains this instance handed to the device and took back: one per read, write
    /// or flush, and one more per request handed over again after a reset.
    public var chainsSubmitted: UInt64
    public var chainsCompleted: UInt64
}

/// A client of the block service, with a transfer buffer of its own.
public struct BlockDevice {
    /// The buffer reads fill and writes take their bytes from.
    public let buffer: UnsafeMutableRawPointer
    public let bufferBytes: Int
    /// The service's registration generation, one more at each restart.
    public private(set) var generation: UInt64 = 0
    /// Requests sent again because the instance they were sent to died.
    public private(set) var reissued: UInt64 = 0
    let memory: Handle
    var port: Handle?
    /// Lookups of the service before the first connection gives up (`SystemServices.lookup`).

    /// Makes a buffer of `bufferBytes` (a multiple of the sector size) and attaches it to the
    /// service, waiting out a restart. Fails with `notFound` if no disk service is registered
    /// after `attempts` lookups (the pauses between them grow from 1 to 64 ms).
    public init(bufferBytes: Int = BlockProtocol.maximumTransfer, lookingFor attempts: Int = 40) throws(KernelError) {
        guard bufferBytes > 0, bufferBytes % BlockProtocol.sectorSize == 0 else { throw .invalidArgument }
        memory = try IPC.createMemory(bytes: UInt64(bufferBytes))
        do throws(KernelError) {
            buffer = try IPC.map(memory, writable: true)
        } catch {
            try? IPC.close(memory)
            throw error
        }
        self.bufferBytes = bufferBytes
        do throws(KernelError) {
            try connect(lookups: attempts)
        } catch {
            try? System.unmap(buffer, bytes: UInt64(bufferBytes))
            try? IPC.close(memory)
            throw error
        }
    }

    /// Lets go of the buffer and the connection.
    public mutating func close() {
        if let port { try? IPC.close(port) }
        port = nil
        try? System.unmap(buffer, bytes: UInt64(bufferBytes))
        try? IPC.close(memory)
    }

    public mutating func info() throws(KernelError) -> BlockInfo {
        let answer = try perform(IPCMessage(label: BlockServiceRequest.info.rawValue))
        return BlockInfo(sectors: answer.word(atByte: 0), features: BlockFeatures(rawValue: answer.word(atByte: 8)),
                         served: answer.word(atByte: 16), resets: answer.word(atByte: 24),
                         chainsSubmitted: answer.word(atByte: 32), chainsCompleted: answer.word(atByte: 40))
    }

    /// Reads `count` sectors from `sector` into the buffer at `offset`.
    public mutating func read(sector: UInt64, count: Int, offset: Int = 0) throws(KernelError) {
        _ = try perform(transfer(.read, sector: sector, count: count, offset: offset))
    }

    /// Writes `count` sectors at `sector` from the buffer at `offset`.
    public mutating func write(sector: UInt64, count: Int, offset: Int = 0) throws(KernelError) {
        _ = try perform(transfer(.write, sector: sector, count: count, offset: offset))
    }

    /// Returns once what was written is on the disk.
    public mutating func flush() throws(KernelError) {
        _ = try perform(IPCMessage(label: BlockServiceRequest.flush.rawValue))
    }

    func transfer(_ request: BlockServiceRequest, sector: UInt64, count: Int, offset: Int) throws(KernelError) -> IPCMessage {
        guard count > 0, offset >= 0, offset % BlockProtocol.sectorSize == 0,
              count * BlockProtocol.sectorSize <= bufferBytes - offset else { throw .invalidArgument }
        var message = IPCMessage(label: request.rawValue)
        message.setWord(atByte: 0, sector)
        message.setWord(atByte: 8, UInt64(count))
        message.setWord(atByte: 16, UInt64(offset))
        message.length = 24
        return message
    }

    /// Sends `request` until an instance of the service answers it: a dead one's `peerClosed`
    /// means looking the service up again and sending it once more. Public for tests of the
    /// service's own checks.
    public mutating func perform(_ request: IPCMessage) throws(KernelError) -> IPCMessage {
        var lostConnections = 0
        var reattached = 0
        while true {
            if port == nil { try connect(lookups: 40) }
            guard let port else { throw .notFound }
            var message = request
            do throws(KernelError) {
                try IPC.call(port, &message)
                // The service never answers this itself: the instance went away with the request.
                if message.label == KernelError.peerClosed.rawValue { throw .peerClosed }
            } catch {
                guard error == .peerClosed || error == .invalidHandle else { throw error }
                // The instance died with the request (or before it): find the next one.
                try? IPC.close(port)
                self.port = nil
                lostConnections += 1
                reissued += 1
                // A service that dies at every request is not coming back.
                guard lostConnections < 100 else { throw error }
                continue
            }
            // The service let this buffer go for another client's (it keeps a few): attach it
            // again, through the same lookup, and send the request once more.
            if message.label == KernelError.notFound.rawValue && request.label != BlockServiceRequest.attach.rawValue
                && reattached < 8 {
                reattached += 1
                try? IPC.close(port)
                self.port = nil
                continue
            }
            if message.label != 0 { throw KernelError(rawValue: message.label) ?? .invalidArgument }
            return message
        }
    }

    /// Finds the service's running instance and attaches the buffer to it.
    mutating func connect(lookups: Int) throws(KernelError) {
        var attempts = 0
        while true {
            attempts += 1
            let found = try SystemServices.lookup(BlockProtocol.serviceName, attempts: lookups)
            var message = IPCMessage(label: BlockServiceRequest.attach.rawValue)
            let copy = try IPC.duplicate(memory, rights: [.map, .write, .transfer])
            message.attach(copy)
            do throws(KernelError) {
                try IPC.call(found.port, &message)
            } catch {
                try? IPC.close(copy)
                try? IPC.close(found.port)
                // Died again before it answered: look once more, a few times. The name service
                // names the dead instance until the process manager has registered the next one,
                // so wait between looks as `lookup` does (1 ms, growing to 64 ms); without the
                // pause a client on another CPU used up its looks within that moment.
                guard (error == .peerClosed || error == .invalidHandle) && attempts < 100 else { throw error }
                System.sleep(nanoseconds: 1_000_000 << UInt64(min(attempts, 6)))
                continue
            }
            if message.label != 0 {
                try? IPC.close(found.port)
                throw KernelError(rawValue: message.label) ?? .invalidArgument
            }
            port = found.port
            generation = found.generation
            return
        }
    }
}
