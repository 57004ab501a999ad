// Fuzz target for the cpio newc reader. An input is an initial ramdisk: it is opened as
// Process.spawn opens it, every file is visited and looked up by name, and each regular file is
// validated as the program spawn would load from it.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCPIOArchive(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    guard let archive = try? CPIOArchive(bytes) else { return 0 }
    var files = 0
    var previousEnd = bytes.baseAddress
    for file in archive {
        files += 1
        expect(isInside(file.name, bytes) && isInside(file.data, bytes), "a file outside the archive")
        // Entries follow one another: a header, the name, then the data.
        expect(file.name.baseAddress! >= previousEnd! + CPIOArchive.headerSize
               && file.data.baseAddress! >= file.name.baseAddress! + file.name.count + 1, "entries overlap")
        previousEnd = file.data.baseAddress! + file.data.count
        expect(!file.nameEquals("TRAILER!!!"), "the trailer listed as a file")
        expect(file.nameEquals(file.name), "a name unequal to itself")
        consume(bytes: file.name)
        consume(endsOf: file.data)
        consume(UInt64(file.mode))
        // Name lookups rescan the archive, so only the first few files are looked up.
        guard file.isRegularFile, files <= 16 else { continue }
        let found = archive.file(named: file.name)
        expect(found?.isRegularFile == true && found?.nameEquals(file.name) == true, "a regular file not found by its name")
        if let image = try? ELFImage(file.data, userSpaceStart: UserSpace.start, userSpaceEnd: UserSpace.mapBase) {
            consume(image.entry.value &+ UInt64(image.segmentCount))
        }
    }
    expect(files == archive.fileCount, "iteration and fileCount disagree")
    consume(UInt64(archive.file(named: "init")?.data.count ?? 0))
    return 0
}
