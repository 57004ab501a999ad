// Fuzz target for the service manifest reader. An input is a manifest: it is parsed as the process
// manager parses the ramdisk's `manifest`, and the result is held to the reader's promises: every
// service kept is valid, the start order lists each service once and after all it depends on, and
// every service is either in the order or reported; every problem is formatted.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServiceManifest(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    withExactCopy(of: bytes) { text in
        let manifest = ServiceManifest(parsing: text)
        expect(manifest.count <= ServiceManifest.maximumServices, "more services than the table holds")
        expect(manifest.problemCount <= ServiceManifest.maximumProblems, "more problems than the list holds")
        var placed: UInt64 = 0
        for position in 0..<manifest.order.count {
            let index = manifest.order[position]
            expect(index >= 0 && index < manifest.count, "an order entry that names no service")
            let bit: UInt64 = 1 << UInt64(index)
            expect(placed & bit == 0, "a service started twice")
            expect(manifest[index].dependencies & ~placed == 0, "a service started before a dependency")
            placed |= bit
        }
        expect(manifest.order.count + manifest.order.problemCount == manifest.count,
               "a service neither started nor reported")
        var names: UInt64 = 0
        for index in 0..<manifest.count {
            let entry = manifest[index]
            expect(entry.name.withBytes { ServiceManifest.isValidName($0) }, "a service with a bad name")
            expect(entry.program.withBytes { ServiceManifest.isValidName($0) }, "a service with a bad program")
            expect(entry.dependencies >> UInt64(manifest.count) == 0, "a dependency on no service")
            expect(entry.name.withBytes { manifest.index(of: $0) } == index, "a name defined twice")
            consume(UInt64(entry.line) &+ entry.memoryLimit &+ entry.devices.rawValue &+ entry.restart.rawValue)
            consume(bytes: (0..<entry.arguments.count).map { entry.arguments[$0] })
            names &+= UInt64(entry.name.count)
        }
        consume(names)
        for index in 0..<manifest.problemCount {
            var line = TextLine()
            manifest.problem(index).describe(into: &line)
            line.forEachByte { consume(UInt64($0)) }
        }
    }
    return 0
}
