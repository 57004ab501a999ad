// `memoryWrite` and `memoryRead` (docs/SYSCALLS.md): bytes copied between this program's memory
// and a memory object's pages without mapping it, across a page boundary, checked through a
// mapping; the rights each needs, ranges past the object, bad addresses (a copy that faults at a
// page boundary keeps what came before it), handles of another kind; nothing left behind.

private func patternByte(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 7 &+ 3) }

private func copyError(_ number: SystemCallNumber, _ memory: Handle, offset: UInt64, address: UInt64,
                       bytes: UInt64) -> KernelError? {
    catching { () throws(KernelError) in
        if number == .memoryWrite {
            _ = try System.invoke(SystemCall.MemoryWrite(memory: memory, offset: offset, address: UserAddress(address),
                                                         bytes: bytes))
        } else {
            _ = try System.invoke(SystemCall.MemoryRead(memory: memory, offset: offset, address: UserAddress(address),
                                                        bytes: bytes))
        }
    }
}

func testMemoryCopies(_ suite: inout Suite) {
    let before = KernelFootprint.steady()
    guard let memory = try? IPC.createMemory(bytes: 8192), let view = try? IPC.map(memory, writable: false) else {
        suite.check(false, "a memory object to copy into, mapped read-only to look at it")
        return
    }
    let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 5000, alignment: 8)
    let back = UnsafeMutableRawBufferPointer.allocate(byteCount: 5000, alignment: 8)
    defer {
        source.deallocate()
        back.deallocate()
    }
    for index in 0..<5000 { source[index] = patternByte(index) }

    // 5000 bytes at offset 3000: the end of the first page and most of the second.
    var written = catching { () throws(KernelError) in
        try IPC.writeMemory(memory, at: 3000, from: UnsafeRawBufferPointer(source))
    } == nil
    for index in 0..<8192 where written {
        let expected: UInt8 = index >= 3000 && index < 8000 ? patternByte(index - 3000) : 0
        if view.load(fromByteOffset: index, as: UInt8.self) != expected { written = false }
    }
    let read = catching { () throws(KernelError) in try IPC.readMemory(memory, at: 3000, into: back) } == nil
        && (0..<5000).allSatisfy { back[$0] == patternByte($0) }
    suite.check(written && read,
                "memoryWrite puts 5000 bytes at offset 3000 of an object, across its page boundary (a mapping sees them, the rest stays zero); memoryRead gives them back")

    // Rights: writing needs write, reading needs map.
    let mapOnly = try? IPC.duplicate(memory, rights: [.map])
    let writeOnly = try? IPC.duplicate(memory, rights: [.write])
    let base = UInt64(UInt(bitPattern: source.baseAddress!))
    let rights = mapOnly.map { copyError(.memoryWrite, $0, offset: 0, address: base, bytes: 8) } == .accessDenied
        && writeOnly.map { copyError(.memoryRead, $0, offset: 0, address: base, bytes: 8) } == .accessDenied
        && mapOnly.map { copyError(.memoryRead, $0, offset: 0, address: base, bytes: 8) } == .some(nil)
        && writeOnly.map { copyError(.memoryWrite, $0, offset: 0, address: base, bytes: 8) } == .some(nil)
    suite.check(rights, "memoryWrite needs the write right and memoryRead the map right: accessDenied without")

    // Ranges past the object, and handles that are not memory objects.
    let port = try? IPC.createPort()
    var ranges = true
    for number in [SystemCallNumber.memoryWrite, .memoryRead] {
        ranges = ranges && copyError(number, memory, offset: 8192, address: base, bytes: 1) == .invalidArgument
            && copyError(number, memory, offset: 4096, address: base, bytes: 4097) == .invalidArgument
            && copyError(number, memory, offset: UInt64.max, address: base, bytes: 2) == .invalidArgument
            && copyError(number, memory, offset: 8192, address: base, bytes: 0) == nil
            && copyError(number, .none, offset: 0, address: base, bytes: 8) == .invalidHandle
            && port.map { copyError(number, $0, offset: 0, address: base, bytes: 8) } == .accessDenied
    }
    suite.check(ranges, "memoryWrite and memoryRead refuse a range past the object's end (invalidArgument), no handle (invalidHandle) and a port's (accessDenied: it has neither right); 0 bytes at the end is nothing to do")

    // Bad addresses: below user space, across its end, kernel, in it but never mapped, and a
    // read into a page that is not writable. A source that runs off its mapping faults at the
    // page boundary, and the bytes before it are written.
    var addresses = true
    for address: UInt64 in [1, UserSpace.end - 4, 0xFFFF_0000_4000_0000, 0x0000_0800_0000_0000] {
        addresses = addresses && copyError(.memoryWrite, memory, offset: 0, address: address, bytes: 8) == .badAddress
            && copyError(.memoryRead, memory, offset: 0, address: address, bytes: 8) == .badAddress
    }
    let viewAddress = UInt64(UInt(bitPattern: view))
    addresses = addresses && copyError(.memoryRead, memory, offset: 0, address: viewAddress, bytes: 8) == .badAddress
    var partial = false
    if let other = try? IPC.createMemory(bytes: 4096), let page = try? IPC.map(other, writable: true) {
        for index in 0..<4096 { page.storeBytes(of: patternByte(index + 1), toByteOffset: index, as: UInt8.self) }
        // The page after a mapping is never mapped (map leaves a gap).
        let error = copyError(.memoryWrite, memory, offset: 0, address: UInt64(UInt(bitPattern: page)) + 2048, bytes: 4096)
        partial = error == .badAddress
            && (0..<2048).allSatisfy { view.load(fromByteOffset: $0, as: UInt8.self) == patternByte($0 + 2049) }
        try? System.unmap(page, bytes: 4096)
        try? IPC.close(other)
    }
    suite.check(addresses && partial,
                "memoryWrite and memoryRead refuse bad addresses (outside user space, never mapped, a read-only destination) with badAddress; a source that runs off its mapping writes what came before the page boundary")

    try? System.unmap(view, bytes: 8192)
    for handle in [memory, mapOnly, writeOnly, port] { if let handle { try? IPC.close(handle) } }
    suite.check(KernelFootprint.settled(toward: before) == before,
                "after the memory copies every frame and kernel object is back")
}

/// On-demand memory objects (`MemoryOptions.onDemand`): their pages are set aside when the object
/// is made (free frames, as `memoryStatistics` counts them, drop by all of them at once) and
/// taken, zeroed, at their first touch, which then changes no count: a store or a load through a
/// mapping, the kernel writing into one for a system call (a copy that faults there goes on),
/// `memoryWrite` or `memoryRead`. Two mappings of the object share its pages; it is never mapped
/// executable, and other option bits are refused. Everything goes back when it goes.
func testOnDemandMemory(_ suite: inout Suite) {
    // Steady first: the counts below are the machine's, read in a window that nothing else
    // giving back frames may cross.
    let footprintBefore = KernelFootprint.steady()
    let (before, objectsBefore) = (footprintBefore.frames, footprintBefore.objects)
    let pages = 16
    guard let plain = try? IPC.createMemory(bytes: 4096) else {
        suite.check(false, "a plain memory object")
        return
    }
    let withPlain = framesAvailable()
    guard let memory = try? IPC.createMemory(bytes: UInt64(pages) * 4096, options: .onDemand) else {
        suite.check(false, "an on-demand memory object of 16 pages")
        try? IPC.close(plain)
        return
    }
    let afterCreate = framesAvailable()
    guard let view = try? IPC.map(memory, writable: true), let second = try? IPC.map(memory, writable: false) else {
        suite.check(false, "two mappings of the on-demand object")
        try? IPC.close(memory)
        try? IPC.close(plain)
        return
    }
    let afterMap = framesAvailable()
    // Through the mapping: a store to page 0, a load from page 5.
    view.storeBytes(of: 0x0123_4567_89AB_CDEF as UInt64, toByteOffset: 8, as: UInt64.self)
    let loaded = view.load(fromByteOffset: 5 * 4096 + 16, as: UInt64.self)
    // The kernel writes into page 9 for memoryRead (from the plain object), memoryWrite fills page
    // 12, and memoryRead takes page 14 to read its zeros.
    var pattern = InlineArray<64, UInt8>(repeating: 0)
    for index in 0..<64 { pattern[index] = UInt8(truncatingIfNeeded: index &* 13 &+ 1) }
    var copied = false
    var readZeros = false
    var back = InlineArray<64, UInt8>(repeating: 0xFF)
    withUnsafeBytes(of: &pattern) { bytes in
        copied = (try? IPC.writeMemory(plain, at: 0, from: bytes)) != nil
            && (try? IPC.readMemory(plain, at: 0, into: UnsafeMutableRawBufferPointer(start: view + 9 * 4096 + 32, count: 64))) != nil
            && (try? IPC.writeMemory(memory, at: 12 * 4096 + 100, from: bytes)) != nil
    }
    withUnsafeMutableBytes(of: &back) { bytes in
        readZeros = (try? IPC.readMemory(memory, at: 14 * 4096, into: bytes)) != nil && bytes.allSatisfy { $0 == 0 }
    }
    let seen = (0..<64).allSatisfy { view.load(fromByteOffset: 9 * 4096 + 32 + $0, as: UInt8.self) == pattern[$0] }
        && (0..<64).allSatisfy { second.load(fromByteOffset: 12 * 4096 + 100 + $0, as: UInt8.self) == pattern[$0] }
        && second.load(fromByteOffset: 8, as: UInt64.self) == 0x0123_4567_89AB_CDEF
        && second.load(fromByteOffset: 3 * 4096, as: UInt64.self) == 0
    let afterTouches = framesAvailable()
    suite.check(copied && readZeros && seen && loaded == 0 && withPlain &- afterCreate == UInt64(pages) && afterTouches == afterMap,
                "an on-demand object's 16 pages are set aside when it is made (\(Int64(bitPattern: withPlain &- afterCreate))); touches through two mappings, a kernel copy, memoryWrite and memoryRead find them zeroed and shared, and change no count (\(Int64(bitPattern: afterMap &- afterTouches)))")

    // Never executable; no other option bit.
    var executable: KernelError?
    if let process = try? ProcessHandles.create("on-demand").handle {
        executable = catching { () throws(KernelError) in
            try ProcessHandles.map(memory, into: process, at: 0x40_0000, access: .execute)
        }
        ProcessHandles.discard(process)
    }
    let unknownOption = catching { () throws(KernelError) in
        _ = try IPC.createMemory(bytes: 4096, options: MemoryOptions(rawValue: 1 << 1))
    }
    try? System.unmap(view, bytes: UInt64(pages) * 4096)
    try? System.unmap(second, bytes: UInt64(pages) * 4096)
    try? IPC.close(memory)
    try? IPC.close(plain)
    let after = KernelFootprint.settled(toward: footprintBefore)
    suite.check(executable == .invalidArgument && unknownOption == .invalidArgument && after.frames == before
                    && after.objects == objectsBefore,
                "an on-demand object is refused an executable mapping, an unknown option bit is refused, and its pages, tables and objects all go back (frames \(before) -> \(after.frames))")
}
