// The memory manager's protocol (userland/services/memory-manager; docs/ARCHITECTURE.md, "Memory
// manager"): labels, payload layouts, and `MemoryManager`, the client the user heap grows through.
// Every request is a call; the answer's label is 0 for success or the raw `KernelError` that
// refused it. Payload words are 64-bit little-endian at the byte offsets given.
//
// | label | request | payload in | handles in | answer |
// |---|---|---|---|---|
// | 1 allocate | memory for the caller | word 0 bytes (1 B to 1 MiB) | the caller's process handle (account) | a memory object (map, write, transfer), charged to the caller |
// | 2 statistics | what each client holds | word 0 the first client wanted | none | word 0 clients, word 1 entries here, then entries |
// | 3 account | one client's account | nothing | a process handle (account) | word 0 bytes used, word 1 limit |
// | 4 share | a named shared region | word 0 bytes (1 B to 1 MiB), word 1 name length (1-24), word 2 flags (bit 0: others may write), the name from byte 24 | the creator's process handle (account, wait) | a memory object (map, write, transfer), charged to the creator |
// | 5 open | a named shared region | word 0 name length, the name from byte 8 | none | a memory object (map, transfer; write if the creator allowed it) |
//
// A shared region lives as long as its creator (the manager holds a copy of its object and
// lets it go when the creator ends); mappings made from it stay valid after that, and after a
// restart of the manager, which forgets the names: a creator shares again.
//
// The memory of `allocate` is paid for by the process whose handle comes with the request, so
// the kernel enforces that process's limit (set from the manifest when it was made): an over-limit
// request is `outOfMemory` and changes nothing. The handle is the authority; the kernel-reported
// sender id only labels the client in statistics.

public enum MemoryManagerRequest: UInt64, Sendable {
    case allocate = 1
    case statistics = 2
    case account = 3
    case share = 4
    case open = 5
}

/// One client in a statistics answer: 0 process id, 8 allocations granted, 16 bytes granted,
/// 24 bytes its account holds (all it has: image, stacks, tables, objects), 32 its limit.
public struct MemoryClientEntry: Equatable {
    public static let size = 40
    public static let perAnswer = 6
    public var process: UInt64 = 0
    public var grants: UInt64 = 0
    public var grantedBytes: UInt64 = 0
    public var accountUsed: UInt64 = 0
    public var accountLimit: UInt64 = 0

    public init() {}

    func write(into message: inout IPCMessage, at offset: Int) {
        message.setWord(atByte: offset, process)
        message.setWord(atByte: offset + 8, grants)
        message.setWord(atByte: offset + 16, grantedBytes)
        message.setWord(atByte: offset + 24, accountUsed)
        message.setWord(atByte: offset + 32, accountLimit)
    }

    init(_ message: IPCMessage, at offset: Int) {
        process = message.word(atByte: offset)
        grants = message.word(atByte: offset + 8)
        grantedBytes = message.word(atByte: offset + 16)
        accountUsed = message.word(atByte: offset + 24)
        accountLimit = message.word(atByte: offset + 32)
    }
}

extension MemoryClientEntry {
    /// Writes `entry` as the `index`-th of a statistics answer.
    static func place(_ entry: MemoryClientEntry, at index: Int, in message: inout IPCMessage) {
        entry.write(into: &message, at: 16 + index * size)
    }
}

/// A client of the memory manager at `port`.
public struct MemoryManager {
    public var port: Handle
    public init(_ port: Handle) { self.port = port }

    /// The memory manager this program was given, if any.
    public static var given: MemoryManager? { ProgramStart.handle(.memoryManager).map { MemoryManager($0) } }

    /// A memory object of `bytes` charged to the process `account` names; `account` (needs the
    /// account and transfer rights) goes with the request and is not the caller's afterwards.
    /// Nothing here allocates: the user heap grows through it.
    public func allocate(bytes: UInt64, account: Handle) throws(KernelError) -> Handle {
        var message = IPCMessage(label: MemoryManagerRequest.allocate.rawValue)
        message.length = 8
        message.setWord(atByte: 0, bytes)
        message.attach(account)
        do throws(KernelError) {
            try IPC.call(port, &message)
        } catch {
            // Refused before it left (a dead port): the handle is still here. (If it had left,
            // its value names nothing now, and the close is refused.)
            try? IPC.close(account)
            throw error
        }
        if let error = System.answered(message.label) { throw error }
        guard message.handleCount == 1 else { throw .invalidArgument }
        return message.handle(0)
    }

    /// A named shared region of `bytes`, charged to the process `account` names (needs the
    /// account and wait rights; it goes with the request), which others may `open` while that
    /// process lives. `writable`: whether they may write it.
    public func share(_ name: UnsafeRawBufferPointer, bytes: UInt64, writable: Bool,
                      account: Handle) throws(KernelError) -> Handle {
        var message = IPCMessage(label: MemoryManagerRequest.share.rawValue)
        message.setWord(atByte: 0, bytes)
        message.setWord(atByte: 8, UInt64(name.count))
        message.setWord(atByte: 16, writable ? 1 : 0)
        guard name.count <= 24, message.setBytes(atByte: 24, name) else {
            try? IPC.close(account)
            throw .invalidArgument
        }
        message.length = 24 + name.count
        message.attach(account)
        return try callForObject(&message, carrying: account)
    }

    /// The shared region named `name`.
    public func open(_ name: UnsafeRawBufferPointer) throws(KernelError) -> Handle {
        var message = IPCMessage(label: MemoryManagerRequest.open.rawValue)
        message.setWord(atByte: 0, UInt64(name.count))
        guard name.count <= 24, message.setBytes(atByte: 8, name) else { throw .invalidArgument }
        message.length = 8 + name.count
        return try callForObject(&message, carrying: nil)
    }

    func callForObject(_ message: inout IPCMessage, carrying handle: Handle?) throws(KernelError) -> Handle {
        do throws(KernelError) {
            try IPC.call(port, &message)
        } catch {
            if let handle { try? IPC.close(handle) }
            throw error
        }
        if let error = System.answered(message.label) { throw error }
        guard message.handleCount == 1 else { throw .invalidArgument }
        return message.handle(0)
    }

    /// Entries from the `first` client on (at most `MemoryClientEntry.perAnswer`), and how many
    /// clients there are.
    public func statistics(from first: Int, into entries: inout InlineArray<6, MemoryClientEntry>) throws(KernelError)
        -> (clients: Int, count: Int) {
        var message = IPCMessage(label: MemoryManagerRequest.statistics.rawValue)
        message.length = 8
        message.setWord(atByte: 0, UInt64(first))
        try IPC.call(port, &message)
        if let error = System.answered(message.label) { throw error }
        let count = min(Int(message.word(atByte: 8)), MemoryClientEntry.perAnswer)
        for index in 0..<count { entries[index] = MemoryClientEntry(message, at: 16 + index * MemoryClientEntry.size) }
        return (Int(message.word(atByte: 0)), count)
    }
}
