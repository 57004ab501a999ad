// Fuzz target for the ELF validator. An input is a program file from the initial ramdisk: it is
// validated with the bounds Process.spawn uses and with the defaults, and every segment is then
// used as spawn uses it (page range, file bytes copied), checking each promise the validator makes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzELFImage(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let file = UnsafeRawBufferPointer(start: data, count: count)
    load(file, userSpaceStart: UserSpace.start, userSpaceEnd: UserSpace.mapBase)
    load(file, userSpaceStart: 0x1000, userSpaceEnd: UserSpace.end)
    return 0
}

func load(_ file: UnsafeRawBufferPointer, userSpaceStart: UInt64, userSpaceEnd: UInt64) {
    guard let image = try? ELFImage(file, userSpaceStart: userSpaceStart, userSpaceEnd: userSpaceEnd) else { return }
    expect(image.segmentCount > 0 && image.segmentCount <= ELFImage.maximumSegments, "segment count out of range")
    var entryIsExecutable = false
    for index in 0..<image.segmentCount {
        let segment = image.segment(index)
        let address = segment.virtualAddress.value
        expect(segment.permissions.contains(.user), "a segment without the user permission")
        expect(!segment.permissions.contains([.write, .execute]), "a writable and executable segment")
        expect(segment.memorySize > 0 && segment.fileSize <= segment.memorySize, "file size exceeds memory size")
        let (end, overflow) = address.addingReportingOverflow(segment.memorySize)
        expect(!overflow && address >= userSpaceStart && end <= userSpaceEnd, "a segment outside user space")
        expect(address % pageSize == segment.fileOffset % pageSize, "a segment misaligned with its file offset")
        // Process.spawn maps the segment's whole pages, then copies its file bytes.
        let firstPage = alignDown(address, to: pageSize)
        expect(alignUp(end, to: pageSize) != nil, "a segment's last page wraps")
        let (fileEnd, fileOverflow) = segment.fileOffset.addingReportingOverflow(segment.fileSize)
        expect(!fileOverflow && fileEnd <= UInt64(file.count), "a segment outside the file")
        consume(endsOf: UnsafeRawBufferPointer(rebasing: file[Int(segment.fileOffset)..<Int(fileEnd)]))
        for other in 0..<index {
            let earlier = image.segment(other)
            let earlierFirst = alignDown(earlier.virtualAddress.value, to: pageSize)
            let earlierLast = alignDown(earlier.virtualAddress.value + earlier.memorySize - 1, to: pageSize)
            let last = alignDown(end - 1, to: pageSize)
            expect(firstPage > earlierLast || earlierFirst > last, "two segments share a page")
        }
        let entry = image.entry.value
        if segment.permissions.contains(.execute), entry >= address, entry - address < segment.memorySize {
            entryIsExecutable = true
        }
    }
    expect(entryIsExecutable, "the entry point is in no executable segment")
    expectEveryLoadableSegment(of: file, in: image)
}

/// Reads the program header table directly: every PT_LOAD with a memory size is a segment of
/// the image, in table order, with its fields unchanged. Only called on an accepted file.
func expectEveryLoadableSegment(of file: UnsafeRawBufferPointer, in image: ELFImage) {
    func little(_ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in (0..<width).reversed() { value = value << 8 | UInt64(file[offset + index]) }
        return value
    }
    let table = Int(little(32, 8))
    var found = 0
    for index in 0..<Int(little(56, 2)) {
        let header = table + index * 56
        guard little(header, 4) == 1, little(header + 40, 8) > 0 else { continue }
        expect(found < image.segmentCount, "a loadable segment is missing from the image")
        let segment = image.segment(found)
        expect(segment.fileOffset == little(header + 8, 8) && segment.virtualAddress.value == little(header + 16, 8)
               && segment.fileSize == little(header + 32, 8) && segment.memorySize == little(header + 40, 8),
               "a segment differs from its program header")
        let flags = little(header + 4, 4)
        expect(segment.permissions.contains(.execute) == (flags & 1 != 0)
               && segment.permissions.contains(.write) == (flags & 2 != 0), "a segment's permissions differ from its flags")
        found += 1
    }
    expect(found == image.segmentCount, "the image has a segment the table does not")
}
