// Log descriptions of the core's error values, so that a failure names its cause.

extension DeviceTreeError: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) {
        switch self {
        case .truncated: output.write("device tree truncated")
        case .badMagic(let value):
            output.write("bad device tree magic ")
            output.writeHex(UInt64(value), digits: 8)
        case .unsupportedVersion(let version):
            output.write("unsupported device tree version ")
            output.writeDecimal(UInt64(version))
        case .blockOutOfBounds: output.write("device tree block outside the blob")
        case .misalignedBlock: output.write("misaligned device tree block")
        case .badToken(let offset):
            output.write("bad structure token at offset ")
            output.writeDecimal(UInt64(offset))
        case .unterminatedString(let offset):
            output.write("unterminated string at offset ")
            output.writeDecimal(UInt64(offset))
        case .malformedProperty(let offset):
            output.write("malformed property at offset ")
            output.writeDecimal(UInt64(offset))
        case .tooDeep: output.write("device tree nested too deeply")
        case .unbalancedNodes: output.write("unbalanced device tree nodes")
        case .badCellCount(let cells):
            output.write("unsupported cell count ")
            output.writeDecimal(UInt64(cells))
        case .malformedValue: output.write("malformed reg, ranges or interrupts value")
        case .unterminatedReservationMap: output.write("memory reservation map not terminated")
        }
    }
}

extension FrameAllocatorError: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) {
        func frame(_ name: StaticString, _ frame: PageFrame) {
            output.write(name)
            output.write(" (frame at ")
            output.writeHex(frame.address.value)
            output.write(")")
        }
        switch self {
        case .outOfMemory: output.write("out of physical memory")
        case .outsideRAM(let value): frame("frame outside RAM", value)
        case .doubleFree(let value): frame("double free", value)
        case .notAllocated(let value): frame("free of a frame never allocated", value)
        case .notAllocationStart(let value): frame("free inside an allocation", value)
        case .invalidRequest: output.write("invalid frame request")
        case .tooManyRanges: output.write("too many memory regions or reservations")
        case .noRoomForMetadata: output.write("no room for the frame allocator's metadata")
        }
    }
}

extension PageTableError: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) {
        func address(_ name: StaticString, _ value: VirtualAddress) {
            output.write(name)
            output.write(" ")
            output.writeHex(value.value)
        }
        switch self {
        case .misaligned: output.write("misaligned mapping")
        case .addressOutOfRange(let value): address("address outside the table's half", value)
        case .alreadyMapped(let value): address("already mapped:", value)
        case .notMapped(let value): address("not mapped:", value)
        case .writableAndExecutable: output.write("writable and executable mapping refused (W^X)")
        case .outOfMemory: output.write("out of memory for translation tables")
        }
    }
}

extension CPUIdentity: TextDescribable {}
