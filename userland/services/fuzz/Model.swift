// What a worker believes it owns: its handles, the kernel objects behind them, the messages
// queued on its own ports, its mappings and its children. The oracles ask the model what a call
// must do; every success and failure updates it the way docs/SYSCALLS.md and docs/IPC.md say the
// kernel does, so a kernel that disagrees shows up as a violation, now or at a later call. All
// storage is allocated once at start: a worker that runs its memory out must not need more.

enum ObjectKind: Equatable {
    case port
    case notification
    case memory
}

/// Who takes the messages sent to a port.
enum Service: Equatable {
    /// This worker, with `receive`: the model keeps the port's queue.
    case worker
    /// A server child: the queue is the child's affair and the port closes when it ends.
    case child
}

struct ObjectRecord {
    var kind = ObjectKind.port
    var live = false
    /// Capabilities to it anywhere (this table, queued messages, children) and mappings of it;
    /// the kernel object lives while this is above 0.
    var references = 0
    /// Ports: capabilities with the receive right (in this table or with a child: never in a
    /// message); the last one's end closes the port.
    var receiveRights = 0
    var closed = false
    var service = Service.worker
    /// Ports: message slots (MessageRecord indices) in queue order.
    var queue = InlineArray<16, Int16>(repeating: -1)
    var queueHead = 0
    var queueCount = 0
    /// Notifications: the bits set and not yet taken.
    var bits: UInt64 = 0
    /// Memory objects: pages, and what their words hold (0: still zero).
    var pages = 0
    var pattern: UInt64 = 0
}

struct HandleRecord {
    var value: UInt64
    var object: Int
    var rights: Rights
}

struct MessageRecord {
    var live = false
    var label: UInt64 = 0
    var length = 0
    var payloadSeed: UInt64 = 0
    var handleCount = 0
    var objects = InlineArray<4, Int16>(repeating: -1)
    var rights = InlineArray<4, UInt64>(repeating: 0)
}

struct MappingRecord {
    var address: UInt64
    var bytes: UInt64
    var writable: Bool
    /// The memory object mapped, or -1 for anonymous memory.
    var object: Int
    /// Anonymous memory: what its words hold (0: still zero).
    var pattern: UInt64
}

enum ChildKind: Equatable {
    case hello
    case crasher(UInt64)
    case server
    case victim
    case probe(UInt64)
}

struct ChildRecord {
    var pid: UInt64
    var kind: ChildKind
    var killed = false
    /// For a server child: the port it serves (object index).
    var port = -1
    /// Objects whose capabilities moved to the child; released when it is reaped.
    var held = InlineArray<8, Int16>(repeating: -1)
    var heldCount = 0
}

final class Model {
    static let handleCapacity = 64
    static let objectCapacity = 96
    static let messageCapacity = 192
    static let mappingCapacity = 40
    static let childCapacity = 4
    static let staleCapacity = 32

    let handles = UnsafeMutablePointer<HandleRecord>.allocate(capacity: handleCapacity)
    var handleCount = 0
    let objects = UnsafeMutablePointer<ObjectRecord>.allocate(capacity: objectCapacity)
    let messages = UnsafeMutablePointer<MessageRecord>.allocate(capacity: messageCapacity)
    let mappings = UnsafeMutablePointer<MappingRecord>.allocate(capacity: mappingCapacity)
    var mappingCount = 0
    let children = UnsafeMutablePointer<ChildRecord>.allocate(capacity: childCapacity)
    var childCount = 0
    /// Handle values that were valid once and must never be again (generations only grow).
    let stale = UnsafeMutablePointer<UInt64>.allocate(capacity: staleCapacity)
    var staleCount = 0
    var staleNext = 0
    /// Unmapped addresses that `map` returned once: never mapped again.
    var unmappedAddress: UInt64 = 0
    /// Handles outside the model (the server's port, the read-only message's memory), which
    /// hostile values must never hit; and how many slots they take.
    var reserved = InlineArray<12, UInt64>(repeating: 0)
    var reservedCount = 0

    init() {
        objects.initialize(repeating: ObjectRecord(), count: Self.objectCapacity)
        messages.initialize(repeating: MessageRecord(), count: Self.messageCapacity)
        stale.initialize(repeating: 0, count: Self.staleCapacity)
    }

    // MARK: Handles

    /// Free slots in the kernel's handle table, as far as the model knows.
    var freeSlots: Int { IPCTableCapacity.slots - handleCount - reservedCount }

    func isLive(_ value: UInt64) -> Bool {
        for index in 0..<handleCount where handles[index].value == value { return true }
        for index in 0..<reservedCount where reserved[index] == value { return true }
        return false
    }

    /// A handle of this process to `object`, if it holds one.
    func handle(of object: Int) -> UInt64? {
        for index in 0..<handleCount where handles[index].object == object { return handles[index].value }
        return nil
    }

    func handleIndex(_ value: UInt64) -> Int? {
        for index in 0..<handleCount where handles[index].value == value { return index }
        return nil
    }

    func reserve(_ value: UInt64) {
        reserved[reservedCount] = value
        reservedCount += 1
    }

    /// A new capability in the table: created or duplicated (`isNew`), or taken from a message.
    func addHandle(_ value: UInt64, object: Int, rights: Rights, isNew: Bool) {
        handles[handleCount] = HandleRecord(value: value, object: object, rights: rights)
        handleCount += 1
        guard isNew else { return }
        objects[object].references += 1
        if objects[object].kind == .port && rights.contains(.receive) { objects[object].receiveRights += 1 }
    }

    /// Takes a handle out of the table without ending the capability (it moves on).
    func takeHandle(at index: Int) -> HandleRecord {
        let record = handles[index]
        markStale(record.value)
        handleCount -= 1
        handles[index] = handles[handleCount]
        return record
    }

    /// A handle closed: its capability ends.
    func closeHandle(at index: Int) {
        let record = takeHandle(at: index)
        capabilityEnded(object: record.object, rights: record.rights)
    }

    func markStale(_ value: UInt64) {
        stale[staleNext] = value
        staleNext = (staleNext + 1) % Self.staleCapacity
        staleCount = min(staleCount + 1, Self.staleCapacity)
    }

    // MARK: Objects

    func newObject(_ kind: ObjectKind) -> Int? {
        for index in 0..<Self.objectCapacity where !objects[index].live {
            objects[index] = ObjectRecord()
            objects[index].kind = kind
            objects[index].live = true
            return index
        }
        return nil
    }

    /// A capability left every table for good: the last receive right closes its port.
    func capabilityEnded(object: Int, rights: Rights) {
        objects[object].references -= 1
        if objects[object].kind == .port && rights.contains(.receive) {
            objects[object].receiveRights -= 1
            if objects[object].receiveRights == 0 { closePort(object) }
        }
        collect(object)
    }

    /// No receiver is left: queued messages are dropped with every handle they carry.
    func closePort(_ port: Int) {
        objects[port].closed = true
        while let message = popMessage(port) { dropMessage(message) }
    }

    func collect(_ object: Int) {
        if objects[object].references <= 0 { objects[object].live = false }
    }

    // MARK: Messages

    func newMessage() -> Int? {
        for index in 0..<Self.messageCapacity where !messages[index].live {
            messages[index] = MessageRecord()
            messages[index].live = true
            return index
        }
        return nil
    }

    func queueIsFull(_ port: Int) -> Bool { objects[port].queueCount == Worker.queueCapacity }

    /// Queues message `message` on `port`; its capabilities are now inside the queue.
    func pushMessage(_ message: Int, on port: Int) {
        let slot = (objects[port].queueHead + objects[port].queueCount) % Worker.queueCapacity
        objects[port].queue[slot] = Int16(message)
        objects[port].queueCount += 1
    }

    func headMessage(_ port: Int) -> Int? {
        guard objects[port].queueCount > 0 else { return nil }
        return Int(objects[port].queue[objects[port].queueHead])
    }

    /// Takes the head message off `port`'s queue.
    func popMessage(_ port: Int) -> Int? {
        guard let message = headMessage(port) else { return nil }
        objects[port].queueHead = (objects[port].queueHead + 1) % Worker.queueCapacity
        objects[port].queueCount -= 1
        return message
    }

    /// A message dropped with its port: every capability it carries ends.
    func dropMessage(_ message: Int) {
        messages[message].live = false
        for index in 0..<messages[message].handleCount {
            capabilityEnded(object: Int(messages[message].objects[index]),
                            rights: Rights(rawValue: messages[message].rights[index]))
        }
    }

    /// Handles needed to receive `port`'s next message.
    func slotsNeeded(_ port: Int) -> Int {
        guard let message = headMessage(port) else { return 0 }
        return messages[message].handleCount
    }

    // MARK: Mappings

    func addMapping(_ mapping: MappingRecord) -> Bool {
        guard mappingCount < Self.mappingCapacity else { return false }
        mappings[mappingCount] = mapping
        mappingCount += 1
        if mapping.object >= 0 { objects[mapping.object].references += 1 }
        return true
    }

    func removeMapping(at index: Int) {
        let mapping = mappings[index]
        unmappedAddress = mapping.address
        mappingCount -= 1
        mappings[index] = mappings[mappingCount]
        if mapping.object >= 0 {
            objects[mapping.object].references -= 1
            collect(mapping.object)
        }
    }

    /// Whether `address` starts a mapping the model knows (or any other region it must not
    /// disturb: those are never chosen as hostile values in the first place).
    func mappingIndex(startingAt address: UInt64) -> Int? {
        for index in 0..<mappingCount where mappings[index].address == address { return index }
        return nil
    }

    // MARK: Children

    /// Callers check there is room (`childCapacity`).
    func addChild(_ child: ChildRecord) {
        children[childCount] = child
        childCount += 1
    }

    func childIndex(_ pid: UInt64) -> Int? {
        for index in 0..<childCount where children[index].pid == pid { return index }
        return nil
    }

    /// A child was reaped: what it held ends, and a server child's port closed with it.
    func removeChild(at index: Int) {
        let child = children[index]
        for held in 0..<child.heldCount { capabilityEnded(object: Int(child.held[held]), rights: []) }
        if child.port >= 0 { objects[child.port].closed = true }
        childCount -= 1
        children[index] = children[childCount]
    }
}

/// The kernel's handle table size (docs/SYSCALLS.md, `handleTableFull`).
enum IPCTableCapacity {
    static let slots = 64
}
