// memory-manager: gives processes memory beyond their image (the user heap grows through it) and
// keeps account of what each client was given (userland/runtime/MemoryManagerProtocol.swift).
// The policy is here; the kernel enforces it: every object it hands out is charged to the
// client's own memory account, through the process handle (account right) that comes with the
// request, so a client over its limit (the manifest's, set when the process manager made it) gets
// `outOfMemory` and nothing changes. Nothing it gives out depends on it staying alive: a client's
// memory is the client's, so when this service crashes and is restarted every mapping stays valid,
// no frame is lost, and the accounts, kept by the kernel, are as right as before; the new instance
// learns its clients again from their next requests. Named shared regions are the exception
// only in name: a restart forgets the names (their memory, mapped or not, is safe), and creators
// share again.
//
// It serves its start block's `.service` port, or its start handle when started directly.

struct Client {
    var process: UInt64 = 0
    /// The client's process handle (account, wait): to read its account and see it end.
    var handle = Handle.none
    var grants: UInt64 = 0
    var grantedBytes: UInt64 = 0
}

/// A named shared region: the manager's copy of its object, and its creator's process handle
/// (wait), to let the region go when the creator ends.
struct SharedRegion {
    var name = InlineArray<24, UInt8>(repeating: 0)
    var nameLength = 0
    var object = Handle.none
    var creator = Handle.none
    var othersMayWrite = false
    /// The process that asked for it (the kernel's sender id): each may hold a share of the names.
    var sender: UInt64 = 0
}

struct MemoryManagerService {
    static let regionCapacity = 16
    /// The names one process may have made at once: a quarter, so that no one client takes them
    /// all.
    static let regionsPerClient = regionCapacity / 4
    /// Client records kept (a client past them is served, not recorded). Each record keeps a
    /// handle, as each region keeps two, and with the start block's handles (12 at most), a
    /// request's (4 at most) and its reply capability they must fit the 64 of this process's
    /// handle table: else a client could fill it with records made from copies of a live
    /// process's handle (one per helper process that asks once), and no request carrying a
    /// handle, every allocation among them, could be received any more.
    static let capacity = 64 - ProgramStart.maximumHandles - IPCMessageLayout.maximumHandles - 1 - 2 * regionCapacity
    static let largestObject: UInt64 = 1 << 20
    /// `capacity` records, its value written out (an inline array's size is a literal).
    var clients = InlineArray<15, Client>(repeating: Client())
    var count = 0
    var regions = InlineArray<16, SharedRegion>(repeating: SharedRegion())
    var regionCount = 0

    /// Whether the process `handle` names has ended (or the handle names none), asked without
    /// waiting.
    static func hasEnded(_ handle: Handle) -> Bool {
        do throws(KernelError) {
            _ = try ProcessHandles.wait(handle, poll: true)
            return true
        } catch {
            return error != .wouldBlock
        }
    }

    /// Lets go of the regions whose creators have ended.
    mutating func sweepRegions() {
        var index = 0
        while index < regionCount {
            if Self.hasEnded(regions[index].creator) {
                try? IPC.close(regions[index].object)
                try? IPC.close(regions[index].creator)
                regionCount -= 1
                regions[index] = regions[regionCount]
                regions[regionCount] = SharedRegion()
            } else {
                index += 1
            }
        }
    }

    /// The region named by the `length` bytes at payload byte `offset`, if it exists.
    func region(named message: IPCMessage, at offset: Int, length: Int) -> Int? {
        for index in 0..<regionCount where regions[index].nameLength == length {
            var same = true
            for byte in 0..<length where regions[index].name[byte] != message[byte: offset + byte] { same = false }
            if same { return index }
        }
        return nil
    }

    /// Forgets clients that have ended, closing their handles.
    mutating func sweep() {
        var index = 0
        while index < count {
            if Self.hasEnded(clients[index].handle) {
                try? IPC.close(clients[index].handle)
                count -= 1
                clients[index] = clients[count]
                clients[count] = Client()
            } else {
                index += 1
            }
        }
    }

    /// The client record of `process`, made with `handle` if it is new (the handle is kept, or
    /// closed when the record exists or there is no room); nil when there is no room. A new
    /// client first clears out the records of clients that have ended: each holds a handle that
    /// keeps its ended process in the kernel, and a service restarted again and again (a driver
    /// that crashes) would otherwise leave one behind per instance until the table filled.
    mutating func record(for process: UInt64, handle: Handle) -> Int? {
        for index in 0..<count where clients[index].process == process {
            try? IPC.close(handle)
            return index
        }
        sweep()
        guard count < Self.capacity else {
            try? IPC.close(handle)
            return nil
        }
        clients[count] = Client(process: process, handle: handle)
        count += 1
        return count - 1
    }

    /// Answers one request in `message`, in place.
    mutating func serve(_ message: inout IPCMessage) {
        let request = MemoryManagerRequest(rawValue: message.label)
        let handles = message.handleCount
        var status = KernelError?.none
        switch request {
        case .allocate:
            let bytes = message.word(atByte: 0)
            guard handles == 1, message.length == 8, bytes > 0, bytes <= Self.largestObject else {
                status = .invalidArgument
                break
            }
            let account = message.handle(0)
            let sender = message.sender.value
            message = IPCMessage()
            do throws(KernelError) {
                let object = try System.invoke(SystemCall.MemoryCreate(bytes: bytes, account: account)).handle
                if let index = record(for: sender, handle: account) {
                    clients[index].grants += 1
                    clients[index].grantedBytes += alignUp(bytes, to: pageSize) ?? bytes
                }
                message.attach(object)
                return
            } catch {
                try? IPC.close(account)
                status = error
            }
        case .statistics:
            guard handles == 0, message.length == 8 else {
                status = .invalidArgument
                break
            }
            sweep()
            let first = message.word(atByte: 0)
            message = IPCMessage()
            message.length = 16 + MemoryClientEntry.perAnswer * MemoryClientEntry.size
            message.setWord(atByte: 0, UInt64(count))
            var placed = 0
            var index = Int(min(first, UInt64(count)))
            while index < count && placed < MemoryClientEntry.perAnswer {
                var entry = MemoryClientEntry()
                entry.process = clients[index].process
                entry.grants = clients[index].grants
                entry.grantedBytes = clients[index].grantedBytes
                if let account = try? System.invoke(SystemCall.MemoryAccount(process: clients[index].handle)) {
                    entry.accountUsed = account.used
                    entry.accountLimit = account.limit
                }
                MemoryClientEntry.place(entry, at: placed, in: &message)
                placed += 1
                index += 1
            }
            message.setWord(atByte: 8, UInt64(placed))
            return
        case .account:
            guard handles == 1, message.length == 0 else {
                status = .invalidArgument
                break
            }
            let process = message.handle(0)
            message = IPCMessage()
            do throws(KernelError) {
                let account = try System.invoke(SystemCall.MemoryAccount(process: process))
                message.length = 16
                message.setWord(atByte: 0, account.used)
                message.setWord(atByte: 8, account.limit)
            } catch {
                status = error
            }
            try? IPC.close(process)
        case .share:
            let bytes = message.word(atByte: 0)
            let length = Int(clamping: message.word(atByte: 8))
            let flags = message.word(atByte: 16)
            guard handles == 1, bytes > 0, bytes <= Self.largestObject, length >= 1, length <= 24, flags & ~1 == 0,
                  message.length == 24 + length else {
                status = .invalidArgument
                break
            }
            sweepRegions()
            guard region(named: message, at: 24, length: length) == nil else {
                status = .invalidArgument
                break
            }
            var ownRegions = 0
            for index in 0..<regionCount where regions[index].sender == message.sender.value { ownRegions += 1 }
            guard regionCount < Self.regionCapacity, ownRegions < Self.regionsPerClient else {
                status = .queueFull
                break
            }
            var made = SharedRegion()
            for byte in 0..<length { made.name[byte] = message[byte: 24 + byte] }
            made.nameLength = length
            made.othersMayWrite = flags & 1 != 0
            made.sender = message.sender.value
            let creator = message.handle(0)
            message = IPCMessage()
            do throws(KernelError) {
                // The creator pays; the copy kept here only lets others open it.
                let object = try System.invoke(SystemCall.MemoryCreate(bytes: bytes, account: creator)).handle
                do throws(KernelError) {
                    made.object = try IPC.duplicate(object, rights: [.map, .write, .duplicate, .transfer])
                } catch {
                    try? IPC.close(object)
                    throw error
                }
                made.creator = creator
                regions[regionCount] = made
                regionCount += 1
                message.attach(object)
                return
            } catch {
                try? IPC.close(creator)
                status = error
            }
        case .open:
            let length = Int(clamping: message.word(atByte: 0))
            guard handles == 0, length >= 1, length <= 24, message.length == 8 + length else {
                status = .invalidArgument
                break
            }
            sweepRegions()
            guard let index = region(named: message, at: 8, length: length) else {
                status = .notFound
                break
            }
            message = IPCMessage()
            let rights: Rights = regions[index].othersMayWrite ? [.map, .write, .transfer] : [.map, .transfer]
            do throws(KernelError) {
                message.attach(try IPC.duplicate(regions[index].object, rights: rights))
                return
            } catch {
                status = error
            }
        case nil:
            status = .invalidArgument
        }
        // A refusal: handles still in the request (none once it was taken apart) are closed.
        if let status {
            message.closeHandles()
            message = IPCMessage(label: status.rawValue)
        }
    }
}

@main
struct MemoryManagerProgram {
    static func main() {
        guard let port = ProgramStart.handle(.service) ?? System.startHandle else {
            System.panic("memory-manager: started without a port")
        }
        var service = MemoryManagerService()
        System.print("memory-manager: ready (\(MemoryManagerService.capacity) clients, objects up to 1 MiB)")
        var message = IPCMessage()
        var answer: Handle?
        while true {
            do throws(KernelError) {
                try IPC.replyAndReceive(answer, port, &message)
            } catch {
                // The port is gone (its last receive right closed): nothing left to serve.
                if error == .peerClosed || error == .invalidHandle { System.exit(0) }
                answer = nil
                continue
            }
            answer = message.replyHandle
            guard answer != nil else {
                // A send, not a call: nothing to answer; its handles are not kept.
                message.closeHandles()
                continue
            }
            service.serve(&message)
        }
    }
}
