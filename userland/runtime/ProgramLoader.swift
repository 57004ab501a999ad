// The program loader: builds a new process from a static ELF64 program in the initial ramdisk
// (or any bytes), using only the process-building calls. The kernel makes the empty process and
// maps what it is given; which file, where each segment goes, the stack and the start block
// (ProgramStart.swift) are decided here. Every file is validated by `ELFImage` before anything is
// made, and a failure at any step ends the half-built process: nothing is left behind.

/// Up to `ProgramStart.maximumHandles` handles for a new program, each under its tag, kept as the
/// start block's first words will hold them (magic, count, then a tag and a value per handle), so
/// that the loader writes them out from here with each value replaced by the program's.
public struct StartHandles {
    var words = InlineArray<26, UInt64>(repeating: 0)
    public private(set) var count = 0

    public init() {}

    public init(_ tag: StartTag, _ handle: Handle) { append(tag, handle) }

    /// Adds `handle` under `tag`; past `ProgramStart.maximumHandles` it is closed at once (the
    /// loader then refuses the set).
    public mutating func append(_ tag: StartTag, _ handle: Handle) { appendRaw(tag.rawValue, handle) }

    @inline(__always)
    mutating func appendRaw(_ tag: UInt64, _ handle: Handle) {
        if count < ProgramStart.maximumHandles {
            words[2 + 2 * count] = tag
            words[3 + 2 * count] = handle.value
        } else {
            closeOverflow(handle)
        }
        count += 1
    }

    /// A handle past the capacity: not kept, so closed here (out of line, as it is rare).
    @inline(never)
    func closeOverflow(_ handle: Handle) { try? IPC.close(handle) }

    public func tag(_ index: Int) -> UInt64 { words[2 + 2 * index] }
    public func handle(_ index: Int) -> Handle { Handle(words[3 + 2 * index]) }

    /// Closes every handle held (those appended past the capacity were closed already): for a
    /// set that will not reach the program it was for.
    public func closeAll() {
        for index in 0..<min(count, ProgramStart.maximumHandles) { try? IPC.close(handle(index)) }
    }
}

public struct ProgramLoader {
    /// The most memory one program's segments may span: a bound on what a hostile file can make
    /// the loader ask for.
    public static let maximumImageBytes: UInt64 = 16 << 20
    /// The largest memory object the kernel makes; bigger segments take several.
    public static let maximumObjectBytes: UInt64 = 1 << 20

    /// The archive's bytes, mapped read-only in this process.
    public let ramdisk: UnsafeRawBufferPointer
    /// The loader's own handle to the ramdisk's memory object (nil if it could not have one):
    /// read-only segments are mapped from it rather than copied (`SharedSource`).
    let shared: Handle?
    let archive: CPIOArchive
    /// The archive's regular files by name, read once into a page of their own: each spawn looks
    /// its program up here. Without memory for the page, lookups search the archive instead.
    let directory: CPIODirectory?
    let directoryBytes: UInt64

    /// Maps the initial ramdisk (a memory object handle; needs map) and validates its archive.
    public init(ramdisk handle: Handle) throws(KernelError) {
        // The size is the kernel's answer, not this process's mapped bytes before and after:
        // another of its threads may map or unmap meanwhile.
        let (base, mappedBytes) = try IPC.mapWithSize(handle, writable: false)
        let size = UInt64(mappedBytes)
        let bytes = UnsafeRawBufferPointer(start: base, count: mappedBytes)
        guard size > 0, size < 1 << 40, let archive = try? CPIOArchive(bytes) else {
            try? System.unmap(base, bytes: size)
            throw .invalidArgument
        }
        self.ramdisk = bytes
        self.archive = archive
        // Its own copy of the handle: the caller may close or give away the one it passed.
        shared = try? IPC.duplicate(handle, rights: .map)
        directoryBytes = alignUp(UInt64(CPIODirectory.storageBytes(for: archive)), to: pageSize) ?? pageSize
        if let storage = try? System.map(bytes: directoryBytes, access: .write) {
            directory = CPIODirectory(archive, storage: storage)
        } else {
            directory = nil
        }
    }

    /// Unmaps the ramdisk and the directory's page; the loader may not be used afterwards.
    public func close() {
        if let shared { try? IPC.close(shared) }
        if let storage = directory?.storage {
            try? System.unmap(storage, bytes: directoryBytes)
        }
        guard let base = ramdisk.baseAddress else { return }
        try? System.unmap(UnsafeMutableRawPointer(mutating: base), bytes: UInt64(ramdisk.count))
    }

    /// The bytes of program `name` in the ramdisk, if it holds one.
    public func file(named name: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let directory else { return archive.file(named: name)?.data }
        return directory.file(named: name)
    }

    /// Checks `file` as a static ELF64 AArch64 program this loader can place: its segments below
    /// the map area (the stack and start block lie above it) and within `maximumImageBytes`.
    public static func validate(_ file: UnsafeRawBufferPointer) throws(ELFError) -> ELFImage {
        try ELFImage(file, userSpaceStart: UserSpace.start, userSpaceEnd: UserSpace.mapBase,
                     maximumPageBytes: maximumImageBytes)
    }

    /// Starts program `name` from the ramdisk as a new child of this process: `argument` in its
    /// x0, `startHandle` (moved; needs transfer) in its x1, `handles` (moved) in its start block
    /// with `arguments` as its argument text, its memory account under `account`'s (a process
    /// handle with the account right) or this process's. Returns a process handle (control, wait,
    /// duplicate, transfer) and its id. `notFound` if the ramdisk has no such program,
    /// `invalidArgument` if it is not a program this loader can place.
    public func spawn(_ name: UnsafeRawBufferPointer, argument: UInt64 = 0, startHandle: Handle? = nil,
                      handles: StartHandles = StartHandles(),
                      arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                      memoryLimit: UInt64 = 0, account: Handle = .none) throws(KernelError) -> (process: Handle, id: UInt64) {
        guard let file = file(named: name) else { throw .notFound }
        return try Self.spawn(file: file, name: name, argument: argument, startHandle: startHandle, handles: handles,
                              arguments: arguments, memoryLimit: memoryLimit, account: account, sharing: sharedSource)
    }

    /// The ramdisk, for `spawn(file:)` of a file in it to map read-only segments from.
    public var sharedSource: SharedSource? { shared.map { SharedSource(memory: $0, bytes: ramdisk) } }

    public func spawn(_ name: StaticString, argument: UInt64 = 0, startHandle: Handle? = nil,
                      handles: StartHandles = StartHandles(), memoryLimit: UInt64 = 0) throws(KernelError)
        -> (process: Handle, id: UInt64) {
        try spawn(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), argument: argument,
                  startHandle: startHandle, handles: handles, memoryLimit: memoryLimit)
    }

    /// Starts the program in `file` (any bytes: they are validated first) under `name`; read-only
    /// segments that `sharing` holds page for page are mapped from it, the rest copied.
    public static func spawn(file: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer, argument: UInt64 = 0,
                             startHandle: Handle? = nil, handles: StartHandles = StartHandles(),
                             arguments: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                             memoryLimit: UInt64 = 0, account: Handle = .none, sharing: SharedSource? = nil) throws(KernelError)
        -> (process: Handle, id: UInt64) {
        let image: ELFImage
        do throws(ELFError) {
            image = try validate(file)
        } catch {
            throw .invalidArgument
        }
        guard handles.count <= ProgramStart.maximumHandles, arguments.count <= ProgramStart.maximumArgumentsLength,
              name.count >= 1, name.count <= 64 else { throw .invalidArgument }
        let (process, id) = try ProcessHandles.create(name, memoryLimit: memoryLimit, account: account)
        // The program's own process handle, to pay the memory manager with (`ownProcess`), where
        // the start block has room for it.
        var given = handles
        var own: Handle?
        do throws(KernelError) {
            if given.count < ProgramStart.maximumHandles {
                own = try IPC.duplicate(process, rights: [.account, .wait, .duplicate, .transfer])
                if let own { given.append(.ownProcess, own) }
            }
            for index in 0..<image.segmentCount {
                try load(image.segment(index), from: file, into: process, sharing: sharing)
            }
            // The stack's pages are taken as the program first touches them: most programs use
            // a few of its 64 KiB.
            try mapZeroed(UserSpace.stackSize, at: UserSpace.stackTop - UserSpace.stackSize, access: .write,
                          options: .onDemand, in: process)
            try giveStartBlock(handles: &given, arguments: arguments, to: process)
            try ProcessHandles.start(process, entry: image.entry.value, stackTop: UserSpace.stackTop, argument: argument,
                                     handle: startHandle, startBlock: ProgramStart.blockAddress)
        } catch {
            // Its own handle, if it did not reach it (a stale value is refused), then the process.
            if let own { try? IPC.close(own) }
            ProcessHandles.discard(process)
            throw error
        }
        return (process, id.value)
    }

    /// Places one segment, a megabyte of its pages at a time: mapped straight from `sharing` if
    /// it holds them (`SharedSource.pageOffset`), else a memory object per megabyte, each given
    /// its share of the file bytes with `memoryWrite` (the rest stays zero; the loader never maps
    /// it) and then mapped in `process` only.
    @inline(__always)
    static func load(_ segment: ELFSegment, from file: UnsafeRawBufferPointer, into process: Handle,
                     sharing: SharedSource? = nil) throws(KernelError) {
        let (start, bytes) = segment.pageSpan
        let access: MemoryAccess = segment.permissions.contains(.write) ? .write
            : segment.permissions.contains(.execute) ? .execute : []
        let shared = sharing.flatMap { source in source.pageOffset(of: segment, in: file).map { (source.memory, $0) } }
        let dataStart = segment.virtualAddress.value
        let dataEnd = dataStart + segment.fileSize
        var chunk = start
        while chunk < start + bytes {
            let chunkBytes = min(maximumObjectBytes, start + bytes - chunk)
            if let (memory, offset) = shared {
                try ProcessHandles.map(memory, into: process, at: chunk, access: access, offset: offset + (chunk - start),
                                       bytes: chunkBytes)
                chunk += chunkBytes
                continue
            }
            let memory = try createMemory(bytes: chunkBytes, for: process)
            defer { try? IPC.close(memory) }
            let copyStart = max(chunk, dataStart)
            let copyEnd = min(chunk + chunkBytes, dataEnd)
            if copyStart < copyEnd {
                let source = file.baseAddress! + Int(segment.fileOffset + (copyStart - dataStart))
                try IPC.writeMemory(memory, at: copyStart - chunk,
                                    from: UnsafeRawBufferPointer(start: source, count: Int(copyEnd - copyStart)))
            }
            try ProcessHandles.map(memory, into: process, at: chunk, access: access)
            chunk += chunkBytes
        }
    }

    /// Memory that holds programs' files page for page, whose read-only segments a loader may map
    /// instead of copying: the initial ramdisk, whose archive starts every file on a page
    /// (tools/pack-ramdisk.py). Nobody can write it, so every child sees what the file says.
    public struct SharedSource {
        /// A memory object of the bytes (needs map).
        let memory: Handle
        /// The same bytes, mapped in this process.
        let bytes: UnsafeRawBufferPointer

        /// Where `segment`'s page span starts in the object, if the object holds exactly its
        /// pages: a segment never writable, with no zeroed tail, whose bytes lie in `bytes` at
        /// the same place within a page as in the program, and whose whole pages lie in `file`
        /// (a mapping shows no byte of another file).
        func pageOffset(of segment: ELFSegment, in file: UnsafeRawBufferPointer) -> UInt64? {
            guard !segment.permissions.contains(.write), segment.fileSize == segment.memorySize,
                  let base = bytes.baseAddress, let fileBase = file.baseAddress,
                  fileBase >= base, fileBase + file.count <= base + bytes.count else { return nil }
            let (start, span) = segment.pageSpan
            let lead = segment.virtualAddress.value - start
            // The validator keeps a segment's file bytes inside the file.
            guard segment.fileOffset >= lead, segment.fileOffset - lead + span <= UInt64(file.count) else { return nil }
            let offset = UInt64(fileBase - base) + segment.fileOffset - lead
            return offset & (pageSize - 1) == 0 ? offset : nil
        }
    }

    /// A zeroed memory object charged to `process`'s own account (the process handle's account
    /// right): a program pays for its image and stack, within the limit it was made with, and
    /// the loader pays nothing once it has closed its handles.
    static func createMemory(bytes: UInt64, options: MemoryOptions = [], for process: Handle) throws(KernelError) -> Handle {
        try System.invoke(SystemCall.MemoryCreate(bytes: bytes, account: process, options: options)).handle
    }

    /// Maps `bytes` of fresh zeroed memory at `address` in `process`.
    static func mapZeroed(_ bytes: UInt64, at address: UInt64, access: MemoryAccess, options: MemoryOptions = [],
                          in process: Handle) throws(KernelError) {
        let memory = try createMemory(bytes: bytes, options: options, for: process)
        defer { try? IPC.close(memory) }
        try ProcessHandles.map(memory, into: process, at: address, access: access)
    }

    /// Writes the start block and maps it read-only in `process`, then moves `handles` there and
    /// writes each one's value in the new process: the moves come last, so a failure before
    /// them leaves the caller its handles. The block is written with `memoryWrite`, never mapped
    /// here: the arguments first, then its first words (magic, count, a tag and a value per
    /// handle: `handleCountOffset` follows `magicOffset`, `handlesOffset` the count) in one call,
    /// from `handles` itself, which is left holding the program's values.
    static func giveStartBlock(handles: inout StartHandles, arguments: UnsafeRawBufferPointer,
                               to process: Handle) throws(KernelError) {
        let memory = try createMemory(bytes: UInt64(ProgramStart.blockSize), for: process)
        defer { try? IPC.close(memory) }
        var length = UInt64(arguments.count)
        try withUnsafeBytes(of: &length) { bytes throws(KernelError) in
            try IPC.writeMemory(memory, at: UInt64(ProgramStart.argumentsLengthOffset), from: bytes)
        }
        try IPC.writeMemory(memory, at: UInt64(ProgramStart.argumentsOffset), from: arguments)
        try ProcessHandles.map(memory, into: process, at: ProgramStart.blockAddress, access: [])
        // The magic, the count, then a tag and a handle for each, written out from `handles`
        // (which keeps them so) with each value replaced by the program's.
        let count = min(handles.count, ProgramStart.maximumHandles)
        handles.words[0] = ProgramStart.magic
        handles.words[1] = 0
        for index in 0..<count {
            let given = try ProcessHandles.give(handles.handle(index), to: process)
            handles.words[1] = UInt64(index + 1)
            handles.words[3 + 2 * index] = given.value
        }
        try withUnsafeBytes(of: &handles.words) { bytes throws(KernelError) in
            try IPC.writeMemory(memory, at: UInt64(ProgramStart.magicOffset),
                                from: UnsafeRawBufferPointer(rebasing: bytes[0..<(16 + 16 * count)]))
        }
    }
}

extension ProcessHandles {
    /// Ends `process` if it still runs, waits until it has (collecting it if it is the caller's
    /// child) and closes the handle: nothing of it is left behind. The handle needs control and
    /// wait, as `create` gives it.
    public static func discard(_ process: Handle) {
        // Only a process this kill ended is sure to end: otherwise look, and leave it to the
        // close (which ends one that never started).
        let killed = (try? kill(process)) != nil
        _ = try? wait(process, poll: !killed)
        try? IPC.close(process)
    }
}
