// Memory objects: physical memory, or a device's registers, that processes map by handle.

/// Physical memory that can be mapped into several address spaces: for data too large for a
/// message. Its frames are freed when the last handle and the last mapping are gone.
final class MemoryObject {
    static let maximumPages = 256 // 1 MiB

    let frames: UnsafeMutablePointer<UInt64>
    let pageCount: Int
    /// Device registers rather than RAM: mapped as Device-nGnRE, and not the object's to free.
    let isDevice: Bool

    /// The MMIO pages of a device, for a userspace driver.
    init(device registers: PhysicalRange) {
        let first = alignDown(registers.start.value, to: pageSize)
        let last = alignUp(registers.start.value + registers.size, to: pageSize) ?? first + pageSize
        pageCount = Int((last - first) / pageSize)
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pageCount)
        for page in 0..<pageCount { frames[page] = first + UInt64(page) * pageSize }
        isDevice = true
    }

    /// Zeroed frames for `pages` pages, or nil when memory is short (nothing is kept then).
    init?(pages: Int) {
        guard pages > 0, pages <= Self.maximumPages else { return nil }
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pages)
        pageCount = pages
        isDevice = false
        for page in 0..<pages {
            guard let frame = try? PhysicalFrames.allocate(.user) else {
                for earlier in 0..<page { try? PhysicalFrames.free(PageFrame(number: frames[earlier] >> pageShift)) }
                frames.deallocate()
                return nil
            }
            let pointer = PhysicalWindow.pointer(to: frame.address)
            for word in 0..<Int(pageSize / 8) { pointer.storeBytes(of: UInt64(0), toByteOffset: word * 8, as: UInt64.self) }
            frames[page] = frame.address.value
        }
    }

    deinit {
        if !isDevice {
            for page in 0..<pageCount { try? PhysicalFrames.free(PageFrame(number: frames[page] >> pageShift)) }
        }
        frames.deallocate()
    }
}

extension MemoryObject {
    /// A zeroed memory object of `bytes` (rounded up to pages), installed in `process`'s table.
    static func create(bytes: UInt64, in process: Process) throws(KernelError) -> Handle {
        guard bytes > 0, let size = alignUp(bytes, to: pageSize), size / pageSize <= UInt64(MemoryObject.maximumPages) else {
            throw .invalidArgument
        }
        guard let object = MemoryObject(pages: Int(size / pageSize)) else { throw .outOfMemory }
        return try IPC.install(.memory(object), rights: .all, in: process, isNew: true)
    }

    /// Maps memory object `handle` (needs map; writable also needs write; never executable).
    static func map(_ handle: Handle, access: MemoryAccess, in process: Process) throws(KernelError) -> UserAddress {
        guard access.isSubset(of: .write), let space = process.addressSpace else { throw .invalidArgument }
        let needed: Rights = access.contains(.write) ? [.map, .write] : [.map]
        guard case .memory(let object) = try IPC.lookup(handle, in: process, requiring: needed).object else {
            throw .invalidHandle
        }
        return try space.mapShared(object, permissions: access.contains(.write) ? .readWrite : .readOnly)
    }
}
