// The block service's protocol (userland/services/virtio-blk; docs/ARCHITECTURE.md, "The disk")
// and `BlockDevice`, its client. Every request is a call; the answer's label is 0 for success or
// the `KernelError` that refused it. Sectors are 512 bytes; words are 64-bit little-endian at
// payload offsets 0, 8, 16, ...
//
// | label | request | payload in | handles in | answer payload |
// |---|---|---|---|---|
// | 1 info | what the disk is | nothing | none | words: capacity (sectors), `BlockFeatures`, requests served, device resets, chains handed to the device, chains it returned |
// | 2 attach | the caller's transfer buffer | word 0: its key | a memory object (map, write) | word 0: its size in bytes |
// | 3 read | sectors into the buffer | words: first sector, count, buffer offset, the buffer's key | none | nothing |
// | 4 write | sectors from the buffer | words: first sector, count, buffer offset, the buffer's key | none | nothing |
// | 5 flush | what was written reaches the disk | nothing | none | nothing |
// | 6 detach | the caller's transfer buffer is let go | word 0: its key | none | nothing |
//
// Who may: the service answers `info` on its public port, which anyone may look up by name, and
// refuses the rest there with `accessDenied`. Every request is served on its private port, the
// disk: the process manager keeps that port for the service across restarts, init hands send
// rights to it to the services the manifest gives `devices=disk` (and to the disk test), and
// they may lend it (`BlockDevice` borrows the handle it is given) or pass copies on. A driver
// started with one port only (as the benchmark starts it) serves everything there: its starter
// chose who may send to it.
//
// Data moves through the buffer a client attaches once. The service keeps buffers by the sender
// id the kernel reports and a key the client picks (`BlockDevice` uses its memory object's handle
// value), so a process may have several and never reaches another's; a key left out is 0. It
// keeps a few at a time: an idle client's may be let go for another's, and `BlockDevice` then
// attaches it again; a client that is done sends `detach`. A read or write names sectors inside
// the disk and bytes inside the buffer, at most `BlockProtocol.maximumTransfer` at once.
// Errors: `invalidArgument` for an unknown label or a range outside the disk or the buffer;
// `notFound` for a transfer before attach; `accessDenied` for a write to a read-only disk, or any
// request but `info` on the public port; `deviceFailed` for an I/O error the device reported.
//
// Crashes: the service is the driver, and the process manager restarts it when it dies. A client
// sees its call answered `peerClosed`; `BlockDevice` sends the same request once more on the same
// port, where it waits for the next instance, and attaches its buffer again when that instance
// answers `notFound`. Reading or writing the same sectors with the same bytes twice leaves the
// disk as once, so a request the dead instance had already carried out is not doubled by being
// sent again, and one it had not is not lost.

public enum BlockServiceRequest: UInt64, Sendable {
    case info = 1
    case attach = 2
    case read = 3
    case write = 4
    case flush = 5
    case detach = 6
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

/// A client of the block service, with a transfer buffer of its own, through a send right to the
/// disk: the service's private port (start tag `.disk`, given by the manifest's `devices=disk`).
/// The process manager keeps that port across the service's restarts, so requests sent while no
/// instance runs wait in its queue for the next one.
public struct BlockDevice {
    /// The buffer reads fill and writes take their bytes from.
    public let buffer: UnsafeMutableRawPointer
    public let bufferBytes: Int
    /// Requests sent again because the instance they were sent to died.
    public private(set) var reissued: UInt64 = 0
    let memory: Handle
    /// The key the service knows the buffer by (word 3 of a read or write).
    public var bufferKey: UInt64 { memory.value }
    /// The send right it was made with, borrowed: it stays its holder's.
    let port: Handle

    /// Makes a buffer of `bufferBytes` (a multiple of the sector size) and attaches it to the
    /// service through `disk`, a send right to the disk that it borrows (by default the one this
    /// program was given under `.disk`). Fails with `accessDenied` without one, and with
    /// `peerClosed` if no instance of the service will run again (no disk was found, or it was
    /// stopped).
    public init(disk: Handle? = ProgramStart.handle(.disk), bufferBytes: Int = BlockProtocol.maximumTransfer)
        throws(KernelError) {
        guard bufferBytes > 0, bufferBytes % BlockProtocol.sectorSize == 0 else { throw .invalidArgument }
        guard let disk else { throw .accessDenied }
        port = disk
        memory = try IPC.createMemory(bytes: UInt64(bufferBytes))
        do throws(KernelError) {
            buffer = try IPC.map(memory, writable: true)
        } catch {
            try? IPC.close(memory)
            throw error
        }
        self.bufferBytes = bufferBytes
        do throws(KernelError) {
            try attach()
        } catch {
            try? System.unmap(buffer, bytes: UInt64(bufferBytes))
            try? IPC.close(memory)
            throw error
        }
    }

    /// Lets go of the buffer, here and in the service (`detach`, once: a service that does not
    /// answer it lets the buffer go when it restarts or needs the place). The send right stays
    /// its holder's.
    public mutating func close() {
        var message = IPCMessage(label: BlockServiceRequest.detach.rawValue)
        message.setWord(atByte: 0, bufferKey)
        message.length = 8
        try? IPC.call(port, &message)
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
        // Divided, not multiplied: a count near Int.max is refused, not an overflow.
        guard count > 0, offset >= 0, offset % BlockProtocol.sectorSize == 0, offset <= bufferBytes,
              count <= (bufferBytes - offset) / BlockProtocol.sectorSize else { throw .invalidArgument }
        var message = IPCMessage(label: request.rawValue)
        message.setWord(atByte: 0, sector)
        message.setWord(atByte: 8, UInt64(count))
        message.setWord(atByte: 16, UInt64(offset))
        message.setWord(atByte: 24, bufferKey)
        message.length = 32
        return message
    }

    /// The most requests sent again in a row: a service that dies at every request (or whose
    /// port is closed for good, which answers every send at once) is not coming back.
    static let patience = 100

    /// Sends `request` until an instance of the service answers it: a dead one's `peerClosed`
    /// means sending it once more, to the next instance. Public for tests of the service's own
    /// checks.
    public mutating func perform(_ request: IPCMessage) throws(KernelError) -> IPCMessage {
        var lostInstances = 0
        var reattached = 0
        while true {
            var message = request
            do throws(KernelError) {
                try IPC.call(port, &message)
                // The service never answers this itself: the instance went away with the request.
                if message.label == KernelError.peerClosed.rawValue { throw .peerClosed }
            } catch {
                guard error == .peerClosed else { throw error }
                lostInstances += 1
                reissued += 1
                guard lostInstances < Self.patience else { throw error }
                continue
            }
            // A new instance, or one that let this buffer go for another client's (it keeps a
            // few): attach it again and send the request once more.
            if message.label == KernelError.notFound.rawValue && request.label != BlockServiceRequest.attach.rawValue
                && reattached < 8 {
                reattached += 1
                try attach()
                continue
            }
            if let error = System.answered(message.label) { throw error }
            return message
        }
    }

    /// Attaches the buffer to the running instance (or the next, if this one dies first).
    mutating func attach() throws(KernelError) {
        var lostInstances = 0
        while true {
            var message = IPCMessage(label: BlockServiceRequest.attach.rawValue)
            message.setWord(atByte: 0, bufferKey)
            message.length = 8
            let copy = try IPC.duplicate(memory, rights: [.map, .write, .transfer])
            message.attach(copy)
            do throws(KernelError) {
                try IPC.call(port, &message)
            } catch {
                // Not sent, the copy is still here; sent, its number names nothing now.
                try? IPC.close(copy)
                lostInstances += 1
                guard error == .peerClosed && lostInstances < Self.patience else { throw error }
                continue
            }
            if message.label == KernelError.peerClosed.rawValue {
                lostInstances += 1
                guard lostInstances < Self.patience else { throw .peerClosed }
                continue
            }
            if let error = System.answered(message.label) { throw error }
            return
        }
    }
}
