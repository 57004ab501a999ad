// Validation of static ELF64 AArch64 executables before they are loaded into a user address
// space: header, program header table and every loadable segment are checked against the file
// and against user space, so a hostile file is an `ELFError`, never a bad mapping.

public enum ELFError: Error, Equatable {
    case truncated
    case badMagic
    case notELF64
    case notLittleEndian
    case badVersion
    case notExecutable
    case wrongMachine
    case badProgramHeaderTable
    case tooManySegments
    case noLoadableSegments
    case segmentOutsideFile
    case segmentOutsideUserSpace
    case segmentsOverlap
    case misalignedSegment
    case fileSizeExceedsMemorySize
    case writableAndExecutable
    case entryNotExecutable
}

public struct ELFSegment: Equatable {
    public var virtualAddress: VirtualAddress
    public var memorySize: UInt64
    public var fileOffset: UInt64
    public var fileSize: UInt64
    /// Always includes `.user`.
    public var permissions: MappingPermissions

    /// The whole pages the segment occupies: the first one's address and their bytes. (An
    /// `ELFImage`'s segments end inside user space, so the rounding cannot overflow.)
    public var pageSpan: (start: UInt64, bytes: UInt64) {
        let start = alignDown(virtualAddress.value, to: pageSize)
        let end = alignUp(virtualAddress.value + memorySize, to: pageSize) ?? start
        return (start, end - start)
    }
}

public struct ELFImage {
    public static var maximumSegments: Int { 16 }
    static var headerSize: Int { 64 }
    static var programHeaderSize: Int { 56 }

    public let entry: VirtualAddress
    public private(set) var segmentCount = 0
    /// The whole pages of all the segments, in bytes: what placing the image takes.
    public private(set) var pageBytes: UInt64 = 0
    var segments = InlineArray<16, ELFSegment>(repeating: ELFSegment(virtualAddress: VirtualAddress(0), memorySize: 0,
                                                                      fileOffset: 0, fileSize: 0, permissions: []))

    /// Read through the array's span: its subscript copies all 16 segments (640 bytes) to
    /// read one.
    public func segment(_ index: Int) -> ELFSegment { segments.span[index] }

    /// Validates `file`: its segments must lie in `userSpaceStart..<userSpaceEnd` and their
    /// whole pages take at most `maximumPageBytes` (else `segmentOutsideUserSpace`).
    public init(_ file: UnsafeRawBufferPointer, userSpaceStart: UInt64 = 0x1000,
                userSpaceEnd: UInt64 = 0x0000_8000_0000_0000, maximumPageBytes: UInt64 = .max) throws(ELFError) {
        guard file.count >= Self.headerSize else { throw .truncated }
        guard file[0] == 0x7F, file[1] == UInt8(ascii: "E"), file[2] == UInt8(ascii: "L"), file[3] == UInt8(ascii: "F") else {
            throw .badMagic
        }
        guard file[4] == 2 else { throw .notELF64 }
        guard file[5] == 1 else { throw .notLittleEndian }
        guard file[6] == 1, file.littleEndian32(at: 20) == 1 else { throw .badVersion }
        guard file.littleEndian16(at: 16) == 2 else { throw .notExecutable }
        guard file.littleEndian16(at: 18) == 183 else { throw .wrongMachine }
        entry = VirtualAddress(file.littleEndian64(at: 24))
        let tableOffset = file.littleEndian64(at: 32)
        let entrySize = Int(file.littleEndian16(at: 54))
        let entryCount = Int(file.littleEndian16(at: 56))
        guard entrySize == Self.programHeaderSize,
              tableOffset <= UInt64(file.count),
              UInt64(entryCount * entrySize) <= UInt64(file.count) - tableOffset else { throw .badProgramHeaderTable }

        for index in 0..<entryCount {
            let header = Int(tableOffset) + index * entrySize
            guard file.littleEndian32(at: header) == 1 else { continue } // PT_LOAD only
            let flags = file.littleEndian32(at: header + 4)
            let offset = file.littleEndian64(at: header + 8)
            let address = file.littleEndian64(at: header + 16)
            let fileSize = file.littleEndian64(at: header + 32)
            let memorySize = file.littleEndian64(at: header + 40)
            guard memorySize > 0 else { continue }
            guard segmentCount < Self.maximumSegments else { throw .tooManySegments }
            guard fileSize <= memorySize else { throw .fileSizeExceedsMemorySize }
            let (fileEnd, fileOverflow) = offset.addingReportingOverflow(fileSize)
            guard !fileOverflow, fileEnd <= UInt64(file.count) else { throw .segmentOutsideFile }
            let (end, overflow) = address.addingReportingOverflow(memorySize)
            guard !overflow, address >= userSpaceStart, end <= userSpaceEnd else { throw .segmentOutsideUserSpace }
            guard address & (pageSize - 1) == offset & (pageSize - 1) else { throw .misalignedSegment }
            let writable = flags & 0x2 != 0
            let executable = flags & 0x1 != 0
            guard !(writable && executable) else { throw .writableAndExecutable }
            var permissions: MappingPermissions = [.user]
            if writable { permissions.insert(.write) }
            if executable { permissions.insert(.execute) }
            let firstPage = alignDown(address, to: pageSize)
            let lastPage = alignDown(end - 1, to: pageSize)
            for other in 0..<segmentCount {
                // The subscript, not `segment(_:)`: a span of the array while it is being filled
                // had the compiler copy it at each read.
                let existing = segments[other]
                let otherFirst = alignDown(existing.virtualAddress.value, to: pageSize)
                let otherLast = alignDown(existing.virtualAddress.value + existing.memorySize - 1, to: pageSize)
                if firstPage <= otherLast && otherFirst <= lastPage { throw .segmentsOverlap }
            }
            let added = ELFSegment(virtualAddress: VirtualAddress(address), memorySize: memorySize, fileOffset: offset,
                                   fileSize: fileSize, permissions: permissions)
            // Each span is below `userSpaceEnd`, so 16 of them cannot overflow the sum.
            pageBytes += added.pageSpan.bytes
            guard pageBytes <= maximumPageBytes else { throw .segmentOutsideUserSpace }
            segments[segmentCount] = added
            segmentCount += 1
        }
        guard segmentCount > 0 else { throw .noLoadableSegments }
        for index in 0..<segmentCount {
            let segment = segments[index]
            if segment.permissions.contains(.execute), entry.value >= segment.virtualAddress.value,
               entry.value - segment.virtualAddress.value < segment.memorySize { return }
        }
        throw .entryNotExecutable
    }
}
