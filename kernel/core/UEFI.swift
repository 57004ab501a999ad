// What the UEFI firmware tells the kernel, in the form the EFI entry hands it over: the record it
// leaves behind boot services (UEFIHandoff), the firmware's memory map decoded into the memory
// the kernel may use and the memory the firmware keeps, and UCS-2 load options turned into a
// command line. Pure interpretation of bytes; the firmware calls themselves are in the arch layer.

/// The memory types of the UEFI specification (EFI_MEMORY_TYPE) the kernel tells apart.
public enum UEFIMemoryType {
    public static let reserved: UInt32 = 0
    public static let loaderCode: UInt32 = 1
    public static let loaderData: UInt32 = 2
    public static let bootServicesCode: UInt32 = 3
    public static let bootServicesData: UInt32 = 4
    public static let runtimeServicesCode: UInt32 = 5
    public static let runtimeServicesData: UInt32 = 6
    public static let conventional: UInt32 = 7
    public static let unusable: UInt32 = 8
    public static let acpiReclaim: UInt32 = 9
    public static let acpiNonVolatile: UInt32 = 10
    public static let memoryMappedIO: UInt32 = 11

    /// Free once boot services have ended: what the loader and boot services used, and what
    /// nobody used. Everything else (runtime services, ACPI, reserved, unusable, MMIO, and types
    /// the kernel does not know) stays the firmware's.
    public static func isUsable(_ type: UInt32) -> Bool {
        switch type {
        case loaderCode, loaderData, bootServicesCode, bootServicesData, conventional: return true
        default: return false
        }
    }
}

public struct UEFIMemoryDescriptor: Equatable {
    public var type: UInt32
    /// Page-aligned by the specification; UEFI pages are 4 KiB whatever the kernel's granule.
    public var range: PhysicalRange
    public var isUsable: Bool { UEFIMemoryType.isUsable(type) }
}

/// A memory map as GetMemoryMap returns it: descriptors `descriptorSize` bytes apart (the
/// firmware may make them larger than the fields the kernel reads).
public struct UEFIMemoryMap {
    public static let pageSize: UInt64 = 4096
    /// Type, padding, physical start, virtual start, pages, attributes.
    public static let minimumDescriptorSize = 40
    let bytes: UnsafeRawBufferPointer
    public let descriptorSize: Int

    /// Nil when the descriptor size is too small or not a multiple of 8, as no firmware makes it.
    public init?(bytes: UnsafeRawBufferPointer, descriptorSize: Int) {
        guard descriptorSize >= Self.minimumDescriptorSize, descriptorSize % 8 == 0 else { return nil }
        self.bytes = bytes
        self.descriptorSize = descriptorSize
    }

    public var count: Int { bytes.count / descriptorSize }

    /// The descriptor at `index`; a range that would pass the end of the address space is cut there.
    public func descriptor(_ index: Int) -> UEFIMemoryDescriptor {
        let offset = index * descriptorSize
        let start = bytes.littleEndian64(at: offset + 8) & ~(Self.pageSize - 1)
        let pages = bytes.littleEndian64(at: offset + 24)
        let room = (UInt64.max - start) / Self.pageSize
        let size = min(pages, room) * Self.pageSize
        return UEFIMemoryDescriptor(type: bytes.littleEndian32(at: offset), range: PhysicalRange(start: PhysicalAddress(start), size: size))
    }

    /// Bytes of every usable descriptor.
    public var usableBytes: UInt64 {
        var total: UInt64 = 0
        for index in 0..<count where descriptor(index).isUsable { total &+= descriptor(index).range.size }
        return total
    }

    /// The parts of `region` no usable descriptor covers, in address order, each as long as it
    /// can be: memory the firmware keeps, and memory the map does not mention at all (nothing
    /// says it is free). Descriptors may come in any order; the map is small, so each step
    /// looks through all of it.
    public func forEachUnusableRange<E: Error>(in region: PhysicalRange,
                                               _ body: (PhysicalRange) throws(E) -> Void) throws(E) {
        let regionEnd = region.start.value &+ region.size
        guard regionEnd > region.start.value else { return }
        var cursor = region.start.value
        while cursor < regionEnd {
            if let usableEnd = usableEnd(containing: cursor) {
                cursor = min(usableEnd, regionEnd)
                continue
            }
            let gapEnd = min(nextUsableStart(after: cursor) ?? regionEnd, regionEnd)
            try body(PhysicalRange(start: PhysicalAddress(cursor), size: gapEnd - cursor))
            cursor = gapEnd
        }
    }

    /// The end of the usable descriptor holding `address`, if one does.
    func usableEnd(containing address: UInt64) -> UInt64? {
        for index in 0..<count {
            let entry = descriptor(index)
            guard entry.isUsable, entry.range.size > 0 else { continue }
            let start = entry.range.start.value
            if address >= start && address - start < entry.range.size { return start + entry.range.size }
        }
        return nil
    }

    /// The lowest start of a usable descriptor above `address`.
    func nextUsableStart(after address: UInt64) -> UInt64? {
        var next: UInt64?
        for index in 0..<count {
            let entry = descriptor(index)
            guard entry.isUsable, entry.range.size > 0, entry.range.start.value > address else { continue }
            next = min(next ?? UInt64.max, entry.range.start.value)
        }
        return next
    }
}

/// Text from the firmware: load options and vendor names are UCS-2, files are bytes.
public enum UEFIText {
    /// The command line in `units` (`width` bytes each, little-endian), written as ASCII into
    /// `output`: it ends at the first NUL, a line break or the end; tabs become spaces, and
    /// spaces at either end go. Nil when the units are not printable ASCII text (edk2's boot
    /// manager, for one, passes a binary GUID as the load options of the entries it makes) or
    /// the text does not fit.
    public static func commandLine(from units: UnsafeRawBufferPointer, width: Int,
                                   into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard width == 1 || width == 2 else { return nil }
        var length = 0
        var index = 0
        while index + width <= units.count {
            var unit = UInt32(units[index])
            if width == 2 { unit |= UInt32(units[index + 1]) << 8 }
            index += width
            if unit == 0 || unit == 0x0A || unit == 0x0D { break }
            if unit == 0x09 { unit = 0x20 }
            guard unit >= 0x20 && unit < 0x7F else { return nil }
            if unit == 0x20 && length == 0 { continue }
            guard length < output.count else { return nil }
            output[length] = UInt8(unit)
            length += 1
        }
        while length > 0 && output[length - 1] == 0x20 { length -= 1 }
        return length
    }

    /// A NUL-terminated UCS-2 name as ASCII in `output` (characters outside ASCII become `?`),
    /// cut to fit; returns its length. Reads at most `limit` units.
    public static func name(from units: UnsafePointer<UInt16>, limit: Int, into output: UnsafeMutableRawBufferPointer) -> Int {
        var length = 0
        while length < limit && length < output.count {
            let unit = units[length]
            if unit == 0 { break }
            output[length] = unit >= 0x20 && unit < 0x7F ? UInt8(unit) : UInt8(ascii: "?")
            length += 1
        }
        return length
    }
}

/// The record the EFI entry leaves for the kernel, in pages of its own (loader data, which the
/// kernel keeps as boot data): what the firmware said, then the final memory map. Fixed
/// little-endian fields at the offsets below.
public struct UEFIHandoff {
    public static let magic: UInt64 = 0x0001_4946_4555_4B53 // "SKUEFI", version 1
    public static let magicOffset = 0
    public static let recordSizeOffset = 8
    public static let memoryMapSizeOffset = 16
    public static let descriptorSizeOffset = 24
    public static let initialRamdiskStartOffset = 32
    public static let initialRamdiskSizeOffset = 40
    public static let commandLineLengthOffset = 48
    public static let vendorLengthOffset = 56
    public static let vendorOffset = 64
    public static let vendorCapacity = 64
    public static let commandLineOffset = 128
    public static let commandLineCapacity = 1024
    public static let memoryMapOffset = 1152

    public let bytes: UnsafeRawBufferPointer
    public let memoryMap: UEFIMemoryMap

    /// Nil unless `bytes` starts with a record whose fields are consistent and whose memory map
    /// lies inside it.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.memoryMapOffset, bytes.littleEndian64(at: Self.magicOffset) == Self.magic else { return nil }
        let recordSize = bytes.littleEndian64(at: Self.recordSizeOffset)
        let mapSize = bytes.littleEndian64(at: Self.memoryMapSizeOffset)
        guard recordSize >= UInt64(Self.memoryMapOffset), recordSize <= UInt64(bytes.count), mapSize <= recordSize - UInt64(Self.memoryMapOffset),
              bytes.littleEndian64(at: Self.commandLineLengthOffset) <= UInt64(Self.commandLineCapacity),
              bytes.littleEndian64(at: Self.vendorLengthOffset) <= UInt64(Self.vendorCapacity),
              let map = UEFIMemoryMap(bytes: UnsafeRawBufferPointer(rebasing: bytes[Self.memoryMapOffset..<(Self.memoryMapOffset + Int(mapSize))]),
                                      descriptorSize: Int(truncatingIfNeeded: bytes.littleEndian64(at: Self.descriptorSizeOffset)))
        else { return nil }
        self.bytes = UnsafeRawBufferPointer(rebasing: bytes[0..<Int(recordSize)])
        memoryMap = map
    }

    /// The size a record claims in its first 16 bytes; nil if they are not a record's.
    public static func recordSize(ofHeaderAt header: UnsafeRawBufferPointer) -> Int? {
        guard header.count >= 16, header.littleEndian64(at: magicOffset) == magic else { return nil }
        let size = header.littleEndian64(at: recordSizeOffset)
        guard size >= UInt64(memoryMapOffset), size <= 1 << 24 else { return nil }
        return Int(size)
    }

    public var size: UInt64 { UInt64(bytes.count) }

    public var commandLine: UnsafeRawBufferPointer {
        let length = Int(bytes.littleEndian64(at: Self.commandLineLengthOffset))
        return UnsafeRawBufferPointer(rebasing: bytes[Self.commandLineOffset..<(Self.commandLineOffset + length)])
    }

    public var vendor: UnsafeRawBufferPointer {
        let length = Int(bytes.littleEndian64(at: Self.vendorLengthOffset))
        return UnsafeRawBufferPointer(rebasing: bytes[Self.vendorOffset..<(Self.vendorOffset + length)])
    }

    public var initialRamdisk: PhysicalRange? {
        let size = bytes.littleEndian64(at: Self.initialRamdiskSizeOffset)
        guard size > 0 else { return nil }
        return PhysicalRange(start: PhysicalAddress(bytes.littleEndian64(at: Self.initialRamdiskStartOffset)), size: size)
    }
}
