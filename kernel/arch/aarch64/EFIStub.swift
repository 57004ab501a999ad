// The kernel as an EFI application. The firmware enters efi_entry (boot.S), which relocates the
// image where the firmware loaded it and calls efiMain here, with boot services still running.
// efiMain gathers what the kernel needs from the firmware (device tree, command line, initial
// ramdisk, memory map) into a UEFIHandoff record, ends boot services, copies the image to a
// 2 MiB-aligned place and enters it as any Image loader would (docs/ARCHITECTURE.md, "UEFI boot").
// Until boot services end, every problem is said on the firmware's console and returned to it.

import AArch64

typealias EFIStatus = UInt

/// EFI_GUID, laid out as the specification does.
struct EFIGUID {
    var data1: UInt32
    var data2: UInt16
    var data3: UInt16
    var data4: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    static let loadedImage = EFIGUID(data1: 0x5B1B_31A1, data2: 0x9562, data3: 0x11D2,
                                     data4: (0x8E, 0x3F, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B))
    static let simpleFileSystem = EFIGUID(data1: 0x964E_5B22, data2: 0x6459, data3: 0x11D2,
                                          data4: (0x8E, 0x39, 0x00, 0xA0, 0xC9, 0x69, 0x72, 0x3B))
    static let deviceTree = EFIGUID(data1: 0xB1B6_21D5, data2: 0xF19C, data3: 0x41A5,
                                    data4: (0x83, 0x0B, 0xD9, 0x15, 0x2C, 0x69, 0xAA, 0xE0))
    static let loadFile2 = EFIGUID(data1: 0x4006_C0C1, data2: 0xFCB3, data3: 0x403E,
                                   data4: (0x99, 0x6D, 0x4A, 0x6C, 0x87, 0x24, 0xE0, 0x6D))
    /// The vendor media device path under which firmware and loaders offer an initial ramdisk
    /// through LoadFile2 (the convention Linux's EFI entry set; edk2 and U-Boot follow it).
    static let initialRamdiskMedia = EFIGUID(data1: 0x5568_E427, data2: 0x68FC, data3: 0x4F3D,
                                             data4: (0xAC, 0x74, 0xCA, 0x55, 0x52, 0x31, 0xCC, 0x68))

    /// The 16 bytes of the GUID as the specification lays them out, at `bytes`.
    func write(to bytes: UnsafeMutableRawPointer) {
        // Before the kernel's heap exists: no array, the tuple's bytes in place.
        withUnsafeBytes(of: data4) { tail in
            for index in 0..<8 { bytes.storeBytes(of: tail[index], toByteOffset: 8 + index, as: UInt8.self) }
        }
        for index in 0..<4 { bytes.storeBytes(of: UInt8(truncatingIfNeeded: data1 >> (8 * UInt32(index))), toByteOffset: index, as: UInt8.self) }
        for index in 0..<2 {
            bytes.storeBytes(of: UInt8(truncatingIfNeeded: data2 >> (8 * UInt16(index))), toByteOffset: 4 + index, as: UInt8.self)
            bytes.storeBytes(of: UInt8(truncatingIfNeeded: data3 >> (8 * UInt16(index))), toByteOffset: 6 + index, as: UInt8.self)
        }
    }

    func matches(_ bytes: UnsafeRawPointer) -> Bool {
        bytes.loadUnaligned(as: UInt32.self) == data1 && bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == data2
            && bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == data3
            && bytes.loadUnaligned(fromByteOffset: 8, as: UInt8.self) == data4.0 && bytes.loadUnaligned(fromByteOffset: 9, as: UInt8.self) == data4.1
            && bytes.loadUnaligned(fromByteOffset: 10, as: UInt8.self) == data4.2 && bytes.loadUnaligned(fromByteOffset: 11, as: UInt8.self) == data4.3
            && bytes.loadUnaligned(fromByteOffset: 12, as: UInt8.self) == data4.4 && bytes.loadUnaligned(fromByteOffset: 13, as: UInt8.self) == data4.5
            && bytes.loadUnaligned(fromByteOffset: 14, as: UInt8.self) == data4.6 && bytes.loadUnaligned(fromByteOffset: 15, as: UInt8.self) == data4.7
    }
}

/// Status codes: errors have the top bit set.
enum EFIStatusCode {
    static let success: EFIStatus = 0
    static let loadError: EFIStatus = 1 << 63 | 1
    static let unsupported: EFIStatus = 1 << 63 | 3
    static let bufferTooSmall: EFIStatus = 1 << 63 | 5
    static let outOfResources: EFIStatus = 1 << 63 | 9
    static let notFound: EFIStatus = 1 << 63 | 14
}

// The firmware's functions the kernel calls; AArch64 firmware uses the standard calling convention.
typealias EFIOutputString = @convention(c) (UnsafeMutableRawPointer, UnsafePointer<UInt16>) -> EFIStatus
typealias EFIAllocatePages = @convention(c) (UInt32, UInt32, UInt, UnsafeMutablePointer<UInt64>) -> EFIStatus
typealias EFIFreePages = @convention(c) (UInt64, UInt) -> EFIStatus
typealias EFIGetMemoryMap = @convention(c) (UnsafeMutablePointer<UInt>, UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt>,
                                            UnsafeMutablePointer<UInt>, UnsafeMutablePointer<UInt32>) -> EFIStatus
typealias EFIHandleProtocol = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer,
                                              UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> EFIStatus
typealias EFIExitBootServices = @convention(c) (UnsafeMutableRawPointer?, UInt) -> EFIStatus
typealias EFILocateDevicePath = @convention(c) (UnsafeRawPointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                                                UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> EFIStatus
typealias EFILoadFile = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?, UInt8,
                                        UnsafeMutablePointer<UInt>, UnsafeMutableRawPointer?) -> EFIStatus
typealias EFIOpenVolume = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> EFIStatus
typealias EFIFileOpen = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                                        UnsafePointer<UInt16>, UInt64, UInt64) -> EFIStatus
typealias EFIFileClose = @convention(c) (UnsafeMutableRawPointer) -> EFIStatus
typealias EFIFileRead = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UInt>, UnsafeMutableRawPointer) -> EFIStatus
typealias EFIFileSetPosition = @convention(c) (UnsafeMutableRawPointer, UInt64) -> EFIStatus
typealias EFIFileGetPosition = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UInt64>) -> EFIStatus

/// Byte offsets of the fields read in the firmware's tables (UEFI specification, 64-bit layouts).
enum EFILayout {
    static let systemTableSignature: UInt64 = 0x5453_5953_2049_4249 // "IBI SYST"
    static let systemFirmwareVendor = 24
    static let systemConsoleOut = 64
    static let systemBootServices = 96
    static let systemTableEntryCount = 104
    static let systemConfigurationTable = 112
    static let configurationEntrySize = 24
    static let outputString = 8
    static let bootAllocatePages = 40
    static let bootFreePages = 48
    static let bootGetMemoryMap = 56
    static let bootHandleProtocol = 152
    static let bootLocateDevicePath = 184
    static let bootExitBootServices = 232
    static let loadedImageDeviceHandle = 24
    static let loadedImageOptionsSize = 48
    static let loadedImageOptions = 56
    static let fileSystemOpenVolume = 8
    static let fileOpen = 8
    static let fileClose = 16
    static let fileRead = 32
    static let fileGetPosition = 48
    static let fileSetPosition = 56
    static let allocateAnyPages: UInt32 = 0
    static let fileModeRead: UInt64 = 1
}

/// The firmware while boot services run: its tables, and the calls the EFI entry makes.
struct Firmware {
    let imageHandle: UnsafeMutableRawPointer?
    let systemTable: UnsafeMutableRawPointer
    let bootServices: UnsafeMutableRawPointer
    let consoleOut: UnsafeMutableRawPointer?

    init?(imageHandle: UnsafeMutableRawPointer?, systemTable: UnsafeMutableRawPointer?) {
        guard let systemTable, systemTable.load(as: UInt64.self) == EFILayout.systemTableSignature,
              let bootServices = systemTable.load(fromByteOffset: EFILayout.systemBootServices, as: UnsafeMutableRawPointer?.self)
        else { return nil }
        self.imageHandle = imageHandle
        self.systemTable = systemTable
        self.bootServices = bootServices
        consoleOut = systemTable.load(fromByteOffset: EFILayout.systemConsoleOut, as: UnsafeMutableRawPointer?.self)
    }

    func bootService<Function>(_ offset: Int, as type: Function.Type) -> Function {
        bootServices.load(fromByteOffset: offset, as: type)
    }

    /// "SwiftKernel: " and `message`, with `status` in hex when given, on the firmware's console.
    func say(_ message: StaticString, status: EFIStatus? = nil) {
        guard let consoleOut else { return }
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 256) { line in
            var length = 0
            func append(_ text: StaticString) {
                let bytes = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
                for byte in bytes where length < 240 {
                    line[length] = UInt16(byte)
                    length += 1
                }
            }
            append("SwiftKernel: ")
            append(message)
            if let status {
                append(" (status 0x")
                for shift in stride(from: 60, through: 0, by: -4) {
                    let digit = UInt16((status >> UInt(shift)) & 0xF)
                    line[length] = digit < 10 ? 0x30 + digit : 0x61 + digit - 10
                    length += 1
                }
                append(")")
            }
            append("\r\n")
            line[length] = 0
            let output = consoleOut.load(fromByteOffset: EFILayout.outputString, as: EFIOutputString.self)
            _ = output(consoleOut, UnsafePointer(line.baseAddress!))
        }
    }

    func handleProtocol(_ handle: UnsafeMutableRawPointer?, _ guid: EFIGUID) -> UnsafeMutableRawPointer? {
        var guid = guid
        var interface: UnsafeMutableRawPointer?
        let call = bootService(EFILayout.bootHandleProtocol, as: EFIHandleProtocol.self)
        let status = withUnsafePointer(to: &guid) { call(handle, UnsafeRawPointer($0), &interface) }
        guard status == EFIStatusCode.success else { return nil }
        return interface
    }

    /// `pages` pages anywhere, of `memoryType` (loader code or data), or nil.
    func allocatePages(_ pages: UInt, memoryType: UInt32) -> UInt64? {
        var address: UInt64 = 0
        let call = bootService(EFILayout.bootAllocatePages, as: EFIAllocatePages.self)
        guard call(EFILayout.allocateAnyPages, memoryType, pages, &address) == EFIStatusCode.success else { return nil }
        return address
    }

    func freePages(_ address: UInt64, _ pages: UInt) {
        _ = bootService(EFILayout.bootFreePages, as: EFIFreePages.self)(address, pages)
    }

    /// The vendor table of the configuration table entry named `guid`.
    func configurationTable(_ guid: EFIGUID) -> UnsafeMutableRawPointer? {
        let count = systemTable.load(fromByteOffset: EFILayout.systemTableEntryCount, as: UInt.self)
        guard let table = systemTable.load(fromByteOffset: EFILayout.systemConfigurationTable, as: UnsafeMutableRawPointer?.self),
              count < 1024 else { return nil }
        for index in 0..<Int(count) {
            let entry = table + index * EFILayout.configurationEntrySize
            if guid.matches(entry) { return entry.load(fromByteOffset: 16, as: UnsafeMutableRawPointer?.self) }
        }
        return nil
    }
}

/// A file of the volume the kernel was loaded from: its bytes in new pages of loader data.
struct LoadedFile {
    var address: UInt64
    var size: UInt64
}

extension Firmware {
    /// The root directory of the volume holding the kernel's own file.
    func bootVolume() -> UnsafeMutableRawPointer? {
        guard let image = handleProtocol(imageHandle, .loadedImage),
              let device = image.load(fromByteOffset: EFILayout.loadedImageDeviceHandle, as: UnsafeMutableRawPointer?.self),
              let fileSystem = handleProtocol(device, .simpleFileSystem) else { return nil }
        var root: UnsafeMutableRawPointer?
        let open = fileSystem.load(fromByteOffset: EFILayout.fileSystemOpenVolume, as: EFIOpenVolume.self)
        guard open(fileSystem, &root) == EFIStatusCode.success else { return nil }
        return root
    }

    /// The file `name` (ASCII, a path from the volume's root) read whole into pages of loader
    /// data, or nil if there is no such file or it cannot be read; `limit` bounds its size.
    func readFile(_ name: StaticString, in root: UnsafeMutableRawPointer, limit: UInt64) -> LoadedFile? {
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 64) { path -> LoadedFile? in
            let bytes = UnsafeRawBufferPointer(start: name.utf8Start, count: min(name.utf8CodeUnitCount, 63))
            for (index, byte) in bytes.enumerated() { path[index] = UInt16(byte) }
            path[bytes.count] = 0
            var file: UnsafeMutableRawPointer?
            let open = root.load(fromByteOffset: EFILayout.fileOpen, as: EFIFileOpen.self)
            guard open(root, &file, UnsafePointer(path.baseAddress!), EFILayout.fileModeRead, 0) == EFIStatusCode.success,
                  let file else { return nil }
            defer { _ = file.load(fromByteOffset: EFILayout.fileClose, as: EFIFileClose.self)(file) }
            // The size: the position at the end of the file.
            let setPosition = file.load(fromByteOffset: EFILayout.fileSetPosition, as: EFIFileSetPosition.self)
            var size: UInt64 = 0
            guard setPosition(file, UInt64.max) == EFIStatusCode.success,
                  file.load(fromByteOffset: EFILayout.fileGetPosition, as: EFIFileGetPosition.self)(file, &size) == EFIStatusCode.success,
                  setPosition(file, 0) == EFIStatusCode.success, size > 0, size <= limit else { return nil }
            let pages = UInt((size + 4095) / 4096)
            guard let address = allocatePages(pages, memoryType: UEFIMemoryType.loaderData) else { return nil }
            var remaining = UInt(size)
            let read = file.load(fromByteOffset: EFILayout.fileRead, as: EFIFileRead.self)
            guard read(file, &remaining, UnsafeMutableRawPointer(bitPattern: UInt(address))!) == EFIStatusCode.success,
                  UInt64(remaining) == size else {
                freePages(address, pages)
                return nil
            }
            return LoadedFile(address: address, size: size)
        }
    }
}

extension Firmware {
    /// The initial ramdisk a firmware or loader offers through the LoadFile2 protocol on the
    /// initial-ramdisk media device path (edk2 for QEMU -kernel/-initrd, U-Boot), read into
    /// pages of loader data; nil when none is offered or it cannot be read.
    func offeredRamdisk(limit: UInt64) -> LoadedFile? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { storage -> LoadedFile? in
            // One vendor media node (type 4, subtype 3, 20 bytes, the GUID), then the end node.
            let path = UnsafeMutableRawPointer(storage.baseAddress!)
            let header: [UInt8] = [4, 3, 20, 0]
            for index in 0..<4 { path.storeBytes(of: header[index], toByteOffset: index, as: UInt8.self) }
            EFIGUID.initialRamdiskMedia.write(to: path + 4)
            let end: [UInt8] = [0x7F, 0xFF, 4, 0]
            for index in 0..<4 { path.storeBytes(of: end[index], toByteOffset: 20 + index, as: UInt8.self) }
            var remaining: UnsafeMutableRawPointer? = path
            var device: UnsafeMutableRawPointer?
            var guid = EFIGUID.loadFile2
            let locate = bootService(EFILayout.bootLocateDevicePath, as: EFILocateDevicePath.self)
            guard withUnsafePointer(to: &guid, { locate(UnsafeRawPointer($0), &remaining, &device) }) == EFIStatusCode.success,
                  let device, let loader = handleProtocol(device, .loadFile2) else { return nil }
            let load = loader.load(as: EFILoadFile.self)
            var size: UInt = 0
            guard load(loader, remaining, 0, &size, nil) == EFIStatusCode.bufferTooSmall, size > 0, UInt64(size) <= limit else { return nil }
            let pages = (size + 4095) / 4096
            guard let address = allocatePages(pages, memoryType: UEFIMemoryType.loaderData) else { return nil }
            var loaded = size
            guard load(loader, remaining, 0, &loaded, UnsafeMutableRawPointer(bitPattern: UInt(address))) == EFIStatusCode.success,
                  loaded == size else {
                freePages(address, pages)
                return nil
            }
            return LoadedFile(address: address, size: UInt64(size))
        }
    }
}

/// The largest initial ramdisk the EFI entry reads.
let efiRamdiskLimit: UInt64 = 1 << 30
/// Attempts at ExitBootServices: each failure means the memory map changed since it was read.
let efiExitAttempts = 8

@_cdecl("efi_main")
func efiMain(_ imageHandle: UnsafeMutableRawPointer?, _ systemTable: UnsafeMutableRawPointer?) -> EFIStatus {
    guard let firmware = Firmware(imageHandle: imageHandle, systemTable: systemTable) else { return EFIStatusCode.loadError }
    firmware.say("started as an EFI application")

    guard let tree = firmware.configurationTable(.deviceTree) else {
        firmware.say("the firmware publishes no device tree, which the kernel needs (QEMU: -machine acpi=off)")
        return EFIStatusCode.notFound
    }
    let treeHeader = UnsafeRawBufferPointer(start: tree, count: DeviceTree.headerSize)
    guard UInt(bitPattern: tree) & 7 == 0, let treeSize = try? DeviceTree.totalSize(ofHeaderAt: treeHeader),
          treeSize <= maximumDeviceTreeSize else {
        firmware.say("the firmware's device tree is not a valid flattened device tree")
        return EFIStatusCode.loadError
    }

    // The record: its fields, then room for the memory map as it is now and the few descriptors
    // the allocations below may add.
    var mapSize: UInt = 0
    var mapKey: UInt = 0
    var descriptorSize: UInt = 0
    var descriptorVersion: UInt32 = 0
    let getMemoryMap = firmware.bootService(EFILayout.bootGetMemoryMap, as: EFIGetMemoryMap.self)
    let probe = getMemoryMap(&mapSize, nil, &mapKey, &descriptorSize, &descriptorVersion)
    guard probe == EFIStatusCode.bufferTooSmall, descriptorSize >= UInt(UEFIMemoryMap.minimumDescriptorSize) else {
        firmware.say("cannot read the firmware's memory map", status: probe)
        return probe == EFIStatusCode.success ? EFIStatusCode.loadError : probe
    }
    let mapCapacity = mapSize + 64 * descriptorSize
    let recordPages = (UInt(UEFIHandoff.memoryMapOffset) + mapCapacity + 4095) / 4096
    guard let recordAddress = firmware.allocatePages(recordPages, memoryType: UEFIMemoryType.loaderData) else {
        firmware.say("no memory for the boot record and memory map")
        return EFIStatusCode.outOfResources
    }
    let record = UnsafeMutableRawPointer(bitPattern: UInt(recordAddress))!
    _ = memset(record, 0, Int(recordPages) * 4096)

    recordFirmwareVendor(firmware, into: record)
    recordCommandLine(firmware, into: record)

    // The initial ramdisk: the boot volume's, else one the firmware or loader offers.
    var ramdisk: LoadedFile?
    if let root = firmware.bootVolume() {
        ramdisk = firmware.readFile("\\initrd.cpio", in: root, limit: efiRamdiskLimit)
    }
    if ramdisk == nil { ramdisk = firmware.offeredRamdisk(limit: efiRamdiskLimit) }
    if let ramdisk {
        record.storeBytes(of: ramdisk.address, toByteOffset: UEFIHandoff.initialRamdiskStartOffset, as: UInt64.self)
        record.storeBytes(of: ramdisk.size, toByteOffset: UEFIHandoff.initialRamdiskSizeOffset, as: UInt64.self)
    } else {
        firmware.say("no \\initrd.cpio on the boot volume and no initial ramdisk offered (LoadFile2); the kernel starts without one")
    }

    // Where the kernel will run: the Image protocol's 2 MiB-aligned base, in loader code (which
    // the firmware lets execute).
    let alignment: UInt64 = 2 << 20
    let imageSize = KernelImage.size
    let imagePages = UInt((imageSize + alignment + 4095) / 4096)
    // What to give back when the kernel cannot start: a failed start leaves the firmware as it was.
    func release() {
        if let ramdisk { firmware.freePages(ramdisk.address, UInt((ramdisk.size + 4095) / 4096)) }
        firmware.freePages(recordAddress, recordPages)
    }
    guard let imageRegion = firmware.allocatePages(imagePages, memoryType: UEFIMemoryType.loaderCode) else {
        firmware.say("no memory for the kernel image")
        release()
        return EFIStatusCode.outOfResources
    }
    let imageBase = (imageRegion + alignment - 1) & ~(alignment - 1)

    // The final memory map, and the end of boot services. A failure means the map changed
    // (its key is stale): read it again and retry. Once ExitBootServices has been called, even
    // in vain, the firmware may have shut part of itself down and only GetMemoryMap may be
    // called again: a failure after that is returned without a word or a release.
    let map = record + UEFIHandoff.memoryMapOffset
    var exitStatus = EFIStatusCode.loadError
    var attempt = 0
    while attempt < efiExitAttempts {
        mapSize = mapCapacity
        let status = getMemoryMap(&mapSize, map, &mapKey, &descriptorSize, &descriptorVersion)
        guard status == EFIStatusCode.success else {
            if attempt == 0 {
                firmware.say(status == EFIStatusCode.bufferTooSmall ? "the firmware's memory map does not fit the room kept for it"
                                                                    : "cannot read the firmware's memory map", status: status)
                firmware.freePages(imageRegion, imagePages)
                release()
            }
            return status
        }
        attempt += 1
        exitStatus = firmware.bootService(EFILayout.bootExitBootServices, as: EFIExitBootServices.self)(imageHandle, mapKey)
        if exitStatus == EFIStatusCode.success { break }
    }
    guard exitStatus == EFIStatusCode.success else { return exitStatus }

    // Boot services are over: no firmware calls from here on.
    let recordSize = UInt64(UEFIHandoff.memoryMapOffset) + UInt64(mapSize)
    record.storeBytes(of: UInt64(mapSize), toByteOffset: UEFIHandoff.memoryMapSizeOffset, as: UInt64.self)
    record.storeBytes(of: UInt64(descriptorSize), toByteOffset: UEFIHandoff.descriptorSizeOffset, as: UInt64.self)
    record.storeBytes(of: recordSize, toByteOffset: UEFIHandoff.recordSizeOffset, as: UInt64.self)
    record.storeBytes(of: UEFIHandoff.magic, toByteOffset: UEFIHandoff.magicOffset, as: UInt64.self)
    aarch64_write_efi_handoff_address(recordAddress)

    // The copy carries the record's address; BSS is the kernel's to clear. Everything the kernel
    // reads with its caches off goes to the point of coherency.
    let fileSize = aarch64_address_of_end_of_file() - KernelImage.start
    _ = memcpy(UnsafeMutableRawPointer(bitPattern: UInt(imageBase))!, UnsafeRawPointer(bitPattern: UInt(KernelImage.start))!, Int(fileSize))
    dcache_clean_range(imageBase, imageSize)
    dcache_clean_range(recordAddress, recordSize)
    dcache_clean_range(UInt64(UInt(bitPattern: tree)), UInt64(treeSize))
    if let ramdisk { dcache_clean_range(ramdisk.address, ramdisk.size) }
    efi_start_kernel(imageBase, UInt64(UInt(bitPattern: tree)))
}

/// The firmware vendor's name (the system table's UCS-2 string) as ASCII in the record.
func recordFirmwareVendor(_ firmware: Firmware, into record: UnsafeMutableRawPointer) {
    guard let vendor = firmware.systemTable.load(fromByteOffset: EFILayout.systemFirmwareVendor, as: UnsafePointer<UInt16>?.self) else { return }
    let output = UnsafeMutableRawBufferPointer(start: record + UEFIHandoff.vendorOffset, count: UEFIHandoff.vendorCapacity)
    let length = UEFIText.name(from: vendor, limit: UEFIHandoff.vendorCapacity, into: output)
    record.storeBytes(of: UInt64(length), toByteOffset: UEFIHandoff.vendorLengthOffset, as: UInt64.self)
}

/// The command line: the load options when they are text (a boot entry's, a shell's or another
/// loader's), else the file \cmdline.txt on the boot volume, else none.
func recordCommandLine(_ firmware: Firmware, into record: UnsafeMutableRawPointer) {
    let output = UnsafeMutableRawBufferPointer(start: record + UEFIHandoff.commandLineOffset, count: UEFIHandoff.commandLineCapacity)
    var length: Int?
    if let image = firmware.handleProtocol(firmware.imageHandle, .loadedImage),
       let options = image.load(fromByteOffset: EFILayout.loadedImageOptions, as: UnsafeRawPointer?.self) {
        let size = Int(image.load(fromByteOffset: EFILayout.loadedImageOptionsSize, as: UInt32.self))
        length = UEFIText.commandLine(from: UnsafeRawBufferPointer(start: options, count: min(size, 4 * UEFIHandoff.commandLineCapacity)),
                                      width: 2, into: output)
    }
    if length == nil || length == 0, let root = firmware.bootVolume(),
       let file = firmware.readFile("\\cmdline.txt", in: root, limit: UInt64(UEFIHandoff.commandLineCapacity)) {
        let text = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(file.address)), count: Int(file.size))
        length = UEFIText.commandLine(from: text, width: 1, into: output)
        if length == nil { firmware.say("\\cmdline.txt is not a line of text; ignored") }
        firmware.freePages(file.address, UInt((file.size + 4095) / 4096))
    }
    record.storeBytes(of: UInt64(length ?? 0), toByteOffset: UEFIHandoff.commandLineLengthOffset, as: UInt64.self)
}
