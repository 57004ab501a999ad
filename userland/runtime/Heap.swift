// The user heap: the same slab allocator the kernel uses (kernel/core/KernelHeap.swift), with
// pages from the `map` system call. Every Swift allocation in a program lands here.

import UserSystemCall

/// Page runs obtained with `map`, recorded in a table that is itself mapped on first use. Runs
/// come first from a pool a program may map up front (`UserHeap.reserve`), so that once it has
/// reserved enough its heap never needs the kernel again.
struct MappedPages: HeapBackend {
    typealias Run = (start: UInt, pages: Int, kind: HeapPageKind)
    static let tableEntries = 1024
    nonisolated(unsafe) static var table: UnsafeMutablePointer<Run>?
    nonisolated(unsafe) static var used = 0
    /// The reserved pool: up to 64 pages from `poolStart`, a bit set for each page in use.
    nonisolated(unsafe) static var poolStart: UInt = 0
    nonisolated(unsafe) static var poolPages = 0
    nonisolated(unsafe) static var poolInUse: UInt64 = 0

    static func mapTable() -> Bool {
        if table != nil { return true }
        let bytes = UInt64(tableEntries * MemoryLayout<Run>.stride)
        guard let raw = try? System.map(bytes: alignUp(bytes, to: pageSize) ?? bytes, access: .write) else { return false }
        table = raw.bindMemory(to: Run.self, capacity: tableEntries)
        return true
    }

    mutating func allocatePages(count: Int, alignment: Int, kind: HeapPageKind) -> UnsafeMutableRawPointer? {
        guard Self.mapTable(), alignment <= 1, Self.used < Self.tableEntries else { return nil }
        let start: UnsafeMutableRawPointer
        if let run = Self.takePoolRun(count) {
            start = run
        } else {
            // Both sources give page-aligned memory; stricter alignment is refused above.
            guard let obtained = HeapPageSource.obtain(bytes: UInt64(count) * pageSize) else { return nil }
            start = obtained
        }
        Self.table![Self.used] = (UInt(bitPattern: start), count, kind)
        Self.used += 1
        return start
    }

    /// `count` contiguous free pool pages, marked in use; nil when the pool has no such run.
    static func takePoolRun(_ count: Int) -> UnsafeMutableRawPointer? {
        guard count > 0, count <= poolPages else { return nil }
        let mask: UInt64 = count == 64 ? .max : (1 << UInt64(count)) - 1
        for first in 0...(poolPages - count) where poolInUse & (mask << UInt64(first)) == 0 {
            poolInUse |= mask << UInt64(first)
            return UnsafeMutableRawPointer(bitPattern: poolStart + UInt(first) * UInt(pageSize))
        }
        return nil
    }

    /// Gives a run of pool pages back; false when `start` is not in the pool.
    static func returnPoolRun(_ start: UInt, pages count: Int) -> Bool {
        guard poolPages > 0, start >= poolStart, start < poolStart + UInt(poolPages) * UInt(pageSize) else { return false }
        let mask: UInt64 = count == 64 ? .max : (1 << UInt64(count)) - 1
        poolInUse &= ~(mask << UInt64((start - poolStart) / UInt(pageSize)))
        return true
    }

    mutating func freePages(_ start: UnsafeMutableRawPointer) {
        guard let table = Self.table else { return }
        for index in 0..<Self.used where table[index].start == UInt(bitPattern: start) {
            if !Self.returnPoolRun(table[index].start, pages: table[index].pages) {
                try? System.unmap(start, bytes: UInt64(table[index].pages) * pageSize)
            }
            Self.used -= 1
            table[index] = table[Self.used]
            return
        }
    }

    func pages(containing pointer: UnsafeMutableRawPointer) -> (start: UnsafeMutableRawPointer, count: Int, kind: HeapPageKind)? {
        guard let table = Self.table else { return nil }
        let address = UInt(bitPattern: pointer)
        for index in 0..<Self.used {
            let run = table[index]
            if address >= run.start && address < run.start + UInt(run.pages) * UInt(pageSize) {
                return (UnsafeMutableRawPointer(bitPattern: run.start)!, run.pages, run.kind)
            }
        }
        return nil
    }
}

/// Where the heap's pages come from: the memory manager, when the program was given one and its
/// own process handle to pay with (docs/ARCHITECTURE.md, "Memory manager"), else `map`. Either way
/// the pages are charged to this process and the kernel enforces its limit; through the memory
/// manager they are also on its books. A run is one memory object, mapped and its handle closed,
/// so unmapping the run frees it. Nothing here allocates from the heap.
enum HeapPageSource {
    nonisolated(unsafe) static var manager = MemoryManager.given
    /// How many runs came from the memory manager, and how many from `map` because it could not
    /// be reached (its restarts show here).
    nonisolated(unsafe) static var managedRuns: UInt64 = 0
    nonisolated(unsafe) static var directRuns: UInt64 = 0
    /// Requests to the memory manager that found no instance to answer them.
    nonisolated(unsafe) static var unansweredRequests: UInt64 = 0
    /// How many requests to make, with a pause that doubles after each, while a memory manager
    /// restarts, before mapping directly.
    nonisolated(unsafe) static var patience = 20
    /// Set when `patience` requests went unanswered: the manager is stopped, not restarting (the
    /// process manager leaves a service that keeps failing stopped). Until one is answered again,
    /// each growth makes one request and one look for a new instance, without pauses, before it
    /// maps directly: a manager stopped for good costs a request, not `patience` pauses each time.
    nonisolated(unsafe) static var unreachable = false
    /// Where a new instance is looked for (tests put a private one in its place), with how many
    /// tries of the name service.
    nonisolated(unsafe) static var findAgain: (_ attempts: Int) -> MemoryManager? = MemoryManager.reconnect(attempts:)

    static func obtain(bytes: UInt64) -> UnsafeMutableRawPointer? {
        if manager != nil, bytes <= 1 << 20, let own = ProgramStart.handle(.ownProcess) {
            let tries = unreachable ? 1 : patience
            var attempt = 0
            while let current = manager, attempt < tries {
                attempt += 1
                guard let payer = try? IPC.duplicate(own, rights: [.account, .wait, .transfer]) else { break }
                do throws(KernelError) {
                    let object = try current.allocate(bytes: bytes, account: payer)
                    defer { try? IPC.close(object) }
                    let pointer = try IPC.map(object, writable: true)
                    managedRuns &+= 1
                    unreachable = false
                    return pointer
                } catch {
                    // The limit, or no memory: the kernel would refuse `map` as well.
                    if error == .outOfMemory { return nil }
                    if error != .peerClosed && error != .invalidHandle { break }
                    unansweredRequests &+= 1
                    if attempt == tries {
                        unreachable = true
                    } else {
                        // Restarting: find the new instance, after a pause that doubles.
                        System.sleep(nanoseconds: 1_000_000 << UInt64(min(attempt, 7)))
                    }
                    if let found = findAgain(unreachable ? 1 : 3) {
                        try? IPC.close(current.port)
                        manager = found
                    }
                }
            }
        }
        guard let mapped = try? System.map(bytes: bytes, access: .write) else { return nil }
        directRuns &+= 1
        return mapped
    }
}

extension MemoryManager {
    /// The running instance, found again after a restart through the name service (`attempts`
    /// tries: the caller waits between its own), if any.
    static func reconnect(attempts: Int) -> MemoryManager? {
        (try? SystemServices.lookup("memory-manager", attempts: attempts)).map { MemoryManager($0.port) }
    }
}

public enum UserHeap {
    nonisolated(unsafe) static var heap = KernelHeap(backend: MappedPages(), poisoning: false)

    /// Maps `pages` (at most 64) single heap pages now, to be used before the heap asks the kernel
    /// for more: a program that must keep working under memory pressure reserves what it needs
    /// at its start. Once only.
    public static func reserve(pages: Int) throws(KernelError) {
        guard pages > 0, pages <= 64, MappedPages.poolPages == 0 else { throw .invalidArgument }
        guard MappedPages.mapTable() else { throw .outOfMemory }
        let start = try System.map(bytes: UInt64(pages) * pageSize, access: .write)
        MappedPages.poolStart = UInt(bitPattern: start)
        MappedPages.poolPages = pages
    }
}

@_cdecl("posix_memalign")
func posixMemalign(_ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    guard alignment >= MemoryLayout<UnsafeRawPointer>.size, alignment & (alignment - 1) == 0,
          alignment <= Int(pageSize) else { return 22 } // EINVAL
    guard let block = UserHeap.heap.allocate(size: size, alignment: alignment) else {
        // Swift cannot go on without the memory it asked for: end clearly rather than fault on a
        // null object later.
        System.panic("out of memory: the heap could not grow by \(size) bytes", code: System.outOfMemoryExitCode)
    }
    result.pointee = block
    return 0
}

@_cdecl("user_free")
func userFree(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    do throws(HeapError) {
        try UserHeap.heap.free(pointer)
    } catch {
        System.panic("free of \(hex: UInt(bitPattern: pointer)): not a live heap block")
    }
}

@_cdecl("__stack_chk_fail")
func stackCheckFail() -> Never {
    System.panic("stack smashing detected")
}

/// Seeds the standard library's hash randomisation from the clock; not cryptographic.
@_cdecl("arc4random_buf")
func arc4randomBuffer(_ buffer: UnsafeMutableRawPointer, _ count: Int) {
    var state = System.clock.ticks
    for index in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        buffer.storeBytes(of: UInt8(truncatingIfNeeded: state >> 33), toByteOffset: index, as: UInt8.self)
    }
}
