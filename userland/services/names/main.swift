// names: the name service. It maps a service's name to a send right to the service's port and
// the generation of its registration, so that clients find services by name and can tell a
// restarted instance from the one they knew (protocol: userland/runtime/NamesProtocol.swift).
//
// Authority is the port a request arrives on, never the sender's process id: lookups and lists
// come on the public port (start block tag `service`), registrations on the registrar port (tag
// `registrar`), whose send right only the process manager holds. Started without a start block
// (by the tests, or on a system without a process manager) it serves its start handle alone and
// takes both kinds of request there: single-port mode.

/// One registered name.
struct NameSlot {
    var used = false
    var name = ServiceName()
    /// The service's port while it is up; `.none` while it restarts.
    var port = Handle.none
    var generation: UInt64 = 0
    var state = ServiceState.up
}

/// The names, in fixed storage.
struct NameTable {
    var slots = InlineArray<48, NameSlot>(repeating: NameSlot())

    func find(_ name: UnsafeRawBufferPointer) -> Int? {
        for index in 0..<NamesProtocol.maximumNames where slots[index].used && slots[index].name.equals(name) {
            return index
        }
        return nil
    }

    func freeSlot() -> Int? {
        for index in 0..<NamesProtocol.maximumNames where !slots[index].used { return index }
        return nil
    }

    /// Forgets slot `index`'s port, closing the service's send right.
    mutating func dropPort(_ index: Int) {
        if slots[index].port != .none { try? IPC.close(slots[index].port) }
        slots[index].port = .none
    }
}

/// A request's handles: closed when the request is done, except the one the service keeps.
struct ReceivedHandles {
    var handles = InlineArray<4, Handle>(repeating: .none)
    var count = 0

    init(_ message: IPCMessage) {
        count = min(max(message.handleCount, 0), IPCMessageLayout.maximumHandles)
        for index in 0..<count { handles[index] = message.handle(index) }
    }

    /// Takes handle `index` out of those to close.
    mutating func keep(_ index: Int) -> Handle {
        let handle = handles[index]
        handles[index] = .none
        return handle
    }

    func closeAll() {
        for index in 0..<count where handles[index] != .none { try? IPC.close(handles[index]) }
    }
}

struct NameService {
    var table = NameTable()

    /// Answers one request into `answer` (its label is set by the caller): the handle attached to
    /// the answer, if any. Handles of `request` the service keeps are taken out of `handles`.
    mutating func serve(_ request: inout IPCMessage, mayRegister: Bool, handles: inout ReceivedHandles,
                        answer: inout IPCMessage) throws(KernelError) -> Handle? {
        switch request.label {
        case NamesProtocol.lookup:
            guard handles.count == 0 else { throw .invalidArgument }
            let index = try find(&request)
            let slot = table.slots[index]
            answer.setWord(atByte: 0, slot.generation)
            answer.setWord(atByte: 8, slot.state.rawValue)
            answer.length = 16
            guard slot.state == .up else { throw .wouldBlock }
            let copy = try IPC.duplicate(slot.port, rights: NamesProtocol.portRights)
            answer.attach(copy)
            return copy
        case NamesProtocol.list:
            guard handles.count == 0, request.length == 0 || request.length == 8 else { throw .invalidArgument }
            let cursor = request.length == 0 ? 0 : request.word(atByte: 0)
            list(from: cursor, into: &answer)
            return nil
        case NamesProtocol.register, NamesProtocol.registerGeneration:
            guard mayRegister else { throw .accessDenied }
            guard handles.count == 1 else { throw .invalidArgument }
            // registerGeneration: the registrar says which generation this is (word 0, not 0), so
            // that numbers keep growing across restarts of this service too; the name follows.
            var given: UInt64 = 0
            if request.label == NamesProtocol.registerGeneration {
                guard request.length > 8 else { throw .invalidArgument }
                given = request.word(atByte: 0)
                // Below 2^62: a later registration adds one to it, and may never wrap.
                guard given != 0, given < 1 << 62 else { throw .invalidArgument }
                var named = IPCMessage(label: request.label)
                let original = request
                named.fill(count: request.length - 8) { original[byte: 8 + $0] }
                request = named
            }
            let name = try validName(&request)
            // The port must be a send right the service can hand out copies of.
            guard let probe = try? IPC.duplicate(handles.handles[0], rights: NamesProtocol.portRights) else {
                throw .accessDenied
            }
            try? IPC.close(probe)
            let index: Int
            if let existing = name.withBytes({ table.find($0) }) {
                index = existing
                table.dropPort(index)
                table.slots[index].generation += 1
            } else {
                guard let free = table.freeSlot() else { throw .outOfMemory }
                index = free
                table.slots[index] = NameSlot(used: true, name: name, port: .none, generation: 1, state: .up)
            }
            if given != 0 { table.slots[index].generation = given }
            table.slots[index].port = handles.keep(0)
            table.slots[index].state = .up
            answer.setWord(atByte: 0, table.slots[index].generation)
            answer.length = 8
            return nil
        case NamesProtocol.markDown:
            guard mayRegister else { throw .accessDenied }
            guard handles.count == 0 else { throw .invalidArgument }
            let index = try find(&request)
            table.dropPort(index)
            table.slots[index].state = .restarting
            answer.setWord(atByte: 0, table.slots[index].generation)
            answer.length = 8
            return nil
        case NamesProtocol.unregister:
            guard mayRegister else { throw .accessDenied }
            guard handles.count == 0 else { throw .invalidArgument }
            let index = try find(&request)
            table.dropPort(index)
            table.slots[index] = NameSlot()
            return nil
        default:
            throw .invalidArgument
        }
    }

    /// The request's payload as a name, if it is one.
    func validName(_ request: inout IPCMessage) throws(KernelError) -> ServiceName {
        let name = NamesProtocol.withPayload(&request) { payload -> ServiceName? in
            let bytes = UnsafeRawBufferPointer(payload)
            guard ServiceManifest.isValidName(bytes) else { return nil }
            return ServiceName(bytes)
        }
        guard let name else { throw .invalidArgument }
        return name
    }

    /// The slot of the name the request carries.
    func find(_ request: inout IPCMessage) throws(KernelError) -> Int {
        let name = try validName(&request)
        guard let index = name.withBytes({ table.find($0) }) else { throw .notFound }
        return index
    }

    /// As many records as fit, from slot `cursor` on; the cursor to continue from.
    func list(from cursor: UInt64, into answer: inout IPCMessage) {
        var next = NamesProtocol.endOfList
        var count: UInt64 = 0
        var offset = NamesProtocol.recordsOffset
        withUnsafeMutableBytes(of: &answer.words) { words in
            let payload = UnsafeMutableRawBufferPointer(rebasing: words[IPCMessageLayout.payload...])
            var index = Int(min(cursor, UInt64(NamesProtocol.maximumNames)))
            while index < NamesProtocol.maximumNames {
                let slot = table.slots[index]
                index += 1
                guard slot.used else { continue }
                let size = NamesProtocol.recordHeader + slot.name.count
                guard offset + size <= IPCMessageLayout.maximumPayload else {
                    next = UInt64(index - 1)
                    break
                }
                for byte in 0..<8 { payload[offset + byte] = UInt8(truncatingIfNeeded: slot.generation >> (8 * UInt64(byte))) }
                payload[offset + 8] = UInt8(slot.state.rawValue)
                payload[offset + 9] = UInt8(slot.name.count)
                for byte in 0..<slot.name.count { payload[offset + NamesProtocol.recordHeader + byte] = slot.name[byte] }
                offset += size
                count += 1
            }
        }
        answer.setWord(atByte: 0, next)
        answer.setWord(atByte: 8, count)
        answer.length = offset
    }
}

@main
struct NamesProgram {
    static func main() {
        let ports: [Handle]
        /// Requests on ports from this index on may register.
        let registering: Int
        if let service = ProgramStart.handle(.service) {
            if let registrar = ProgramStart.handle(.registrar) {
                ports = [service, registrar]
            } else {
                System.print("names: started without a registrar port; serving lookups only")
                ports = [service]
            }
            registering = 1
        } else if let single = System.startHandle {
            ports = [single]
            registering = 0
        } else {
            System.panic("names: started without a port")
        }
        var service = NameService()
        var request = IPCMessage()
        System.print("names: ready (\(NamesProtocol.maximumNames) names max)")
        // The ports in the order they are looked at: `waitAny` gives the first that has a
        // message, so the one just served goes last, and a flood of lookups on the public port
        // cannot keep the process manager's registrations waiting.
        var order = ports
        while true {
            guard let ready = try? IPC.waitAny(order), ready >= 0, ready < order.count else {
                System.sleep(nanoseconds: 1_000_000) // not expected; never spin on it
                continue
            }
            let port = order[ready]
            order.append(order.remove(at: ready))
            // A message that cannot be taken (a call whose reply capability found no room, now failed)
            // is not this service's to answer.
            guard (try? IPC.receive(port, into: &request, timeout: 0)) != nil else { continue }
            var handles = ReceivedHandles(request)
            guard let reply = request.replyHandle else {
                handles.closeAll() // a plain send expects no answer: it is no request
                continue
            }
            let mayRegister = registering == 0 || port != ports[0]
            var answer = IPCMessage(label: NamesProtocol.success)
            var attached: Handle?
            do throws(KernelError) {
                attached = try service.serve(&request, mayRegister: mayRegister, handles: &handles, answer: &answer)
            } catch {
                answer.label = error.rawValue
            }
            handles.closeAll()
            do throws(KernelError) {
                try IPC.reply(reply, &answer)
            } catch {
                // The answer could not be sent: nothing moved, so the copy made for it and the
                // reply capability are still here. (When the caller is gone, the kernel has
                // closed both already, and these find nothing.)
                if let attached { try? IPC.close(attached) }
                try? IPC.close(reply)
            }
        }
    }
}
