// Memory objects: physical memory, or a device's registers, that processes map by handle.

/// Physical memory that can be mapped into several address spaces: for data too large for a
/// message. Its frames are freed when the last handle and the last mapping are gone.
final class MemoryObject: ChargedObject {
    static let maximumPages = 256 // 1 MiB

    let frames: UnsafeMutablePointer<UInt64>
    let pageCount: Int
    /// Device registers rather than RAM: mapped as Device-nGnRE, and not the object's to free.
    let isDevice: Bool
    /// Whether the frames are the object's, freed with it (not a device's or the ramdisk's).
    let ownsFrames: Bool
    /// The object's own cost, paid by its creator; its frames are charged to the same account.
    var charge = MemoryCharge()

    /// The pages a device's registers cover.
    static func pageCount(of registers: PhysicalRange) -> Int {
        let first = alignDown(registers.start.value, to: pageSize)
        let last = alignUp(registers.start.value + registers.size, to: pageSize) ?? first + pageSize
        return Int((last - first) / pageSize)
    }

    /// The MMIO pages of a device, for a userspace driver.
    init(device registers: PhysicalRange) {
        let first = alignDown(registers.start.value, to: pageSize)
        pageCount = Self.pageCount(of: registers)
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pageCount)
        for page in 0..<pageCount { frames[page] = first + UInt64(page) * pageSize }
        isDevice = true
        ownsFrames = false
    }

    /// The initial ramdisk's pages (`range` starts on a page), for init to read programs from:
    /// memory the kernel reserved at boot and never frees.
    init(ramdisk range: PhysicalRange) {
        pageCount = Self.pageCount(of: range)
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pageCount)
        for page in 0..<pageCount { frames[page] = range.start.value + UInt64(page) * pageSize }
        isDevice = false
        ownsFrames = false
    }

    private init(frames: UnsafeMutablePointer<UInt64>, pages: Int, charge: MemoryCharge) {
        self.frames = frames
        pageCount = pages
        isDevice = false
        ownsFrames = true
        self.charge = charge
    }

    /// Zeroed frames for `pages` pages, charged to `charge`'s account, which the object keeps;
    /// nil when the account or memory is short (nothing is kept then, and the caller still holds
    /// the charge). The frames are gathered before the object exists: a failing initializer
    /// would still run the deinit, which frees every frame the object names.
    static func allocate(pages: Int, charge: MemoryCharge) -> MemoryObject? {
        guard pages > 0, pages <= maximumPages, let account = charge.account,
              (try? KernelMemory.chargeFrames(UInt64(pages), to: account)) != nil else { return nil }
        let frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pages)
        for page in 0..<pages {
            guard let frame = try? KernelMemory.allocatePaidFrame(.user) else {
                account.release(UInt64(pages - page) * pageSize)
                for earlier in 0..<page { KernelMemory.freeFrame(PageFrame(number: frames[earlier] >> pageShift), for: account) }
                frames.deallocate()
                return nil
            }
            PhysicalWindow.zero(frame)
            frames[page] = frame.address.value
        }
        return MemoryObject(frames: frames, pages: pages, charge: charge)
    }

    deinit {
        if ownsFrames, let account = charge.account {
            for page in 0..<pageCount { KernelMemory.freeFrame(PageFrame(number: frames[page] >> pageShift), for: account) }
        }
        frames.deallocate()
        charge.release()
    }
}

extension MemoryObject {
    /// A zeroed memory object of `bytes` (rounded up to pages), installed in `process`'s table and
    /// paid for by `payer`'s account (a memory manager's clients pay for what it gives them).
    static func create(bytes: UInt64, in process: Process, chargedTo payer: Process) throws(KernelError) -> Handle {
        guard bytes > 0, let size = alignUp(bytes, to: pageSize), size / pageSize <= UInt64(MemoryObject.maximumPages) else {
            throw .invalidArgument
        }
        let pages = Int(size / pageSize)
        guard payer.state == .alive else { throw .notFound }
        var charge = try KernelMemory.charge(.memoryObject(pages: pages), to: payer.account)
        guard let object = MemoryObject.allocate(pages: pages, charge: charge) else {
            charge.release()
            throw .outOfMemory
        }
        return try IPC.install(.memory(object), rights: .newMemory, in: process, isNew: true)
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
