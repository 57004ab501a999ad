// The user heap: the same slab allocator the kernel uses (kernel/core/KernelHeap.swift), with
// pages from the `map` system call. Every Swift allocation in a program lands here.

import UserSystemCall

/// Page runs obtained with `map`, recorded in a table that is itself mapped on first use.
struct MappedPages: HeapBackend {
    static let tableEntries = 1024
    nonisolated(unsafe) static var table: UnsafeMutablePointer<(start: UInt, pages: Int, kind: HeapPageKind)>?
    nonisolated(unsafe) static var used = 0

    mutating func allocatePages(count: Int, alignment: Int, kind: HeapPageKind) -> UnsafeMutableRawPointer? {
        if Self.table == nil {
            let bytes = UInt64(Self.tableEntries * MemoryLayout<(start: UInt, pages: Int, kind: HeapPageKind)>.stride)
            guard let raw = try? System.map(bytes: alignUp(bytes, to: pageSize) ?? bytes, access: .write) else { return nil }
            Self.table = raw.bindMemory(to: (start: UInt, pages: Int, kind: HeapPageKind).self, capacity: Self.tableEntries)
        }
        // `map` returns page-aligned memory; stricter alignment is obtained by over-allocating.
        guard alignment <= 1, Self.used < Self.tableEntries,
              let start = try? System.map(bytes: UInt64(count) * pageSize, access: .write) else { return nil }
        Self.table![Self.used] = (UInt(bitPattern: start), count, kind)
        Self.used += 1
        return start
    }

    mutating func freePages(_ start: UnsafeMutableRawPointer) {
        guard let table = Self.table else { return }
        for index in 0..<Self.used where table[index].start == UInt(bitPattern: start) {
            try? System.unmap(start, bytes: UInt64(table[index].pages) * pageSize)
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

enum UserHeap {
    nonisolated(unsafe) static var heap = KernelHeap(backend: MappedPages(), poisoning: false)
}

@_cdecl("posix_memalign")
func posixMemalign(_ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    guard alignment >= MemoryLayout<UnsafeRawPointer>.size, alignment & (alignment - 1) == 0,
          alignment <= Int(pageSize) else { return 22 } // EINVAL
    guard let block = UserHeap.heap.allocate(size: size, alignment: alignment) else {
        result.pointee = nil
        return 12 // ENOMEM
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
