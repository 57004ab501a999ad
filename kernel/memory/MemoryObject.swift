// Memory objects: physical memory, a device's registers, or memory a device reads and writes
// (DMA), that processes map by handle.

/// Physical memory that can be mapped into several address spaces: for data too large for a
/// message. Its frames are freed when the last handle and the last mapping are gone. Its pages
/// are there from the start, or, for an on-demand object, each from its first touch.
final class MemoryObject: KernelObject, KernelObjectType, ChargedObject {
    static var objectKind: KernelObjectKind { .memory }

    static let maximumPages = 256 // 1 MiB

    enum Kind {
        /// Frames of RAM, the object's own.
        case memory
        /// RAM the kernel keeps (the initial ramdisk): never freed.
        case ramdisk
        /// A device's registers: mapped as Device-nGnRE, and not the object's to free.
        case deviceRegisters
        /// Physically contiguous frames a device reads and writes: mapped non-cacheable, and
        /// freed as one allocation only after the device was stopped (`DeviceAccess.quiesce`),
        /// so that no transfer still under way lands in memory given to someone else.
        case dma(UserDevice, epoch: UInt64)
    }

    /// The physical address of each page; `absent` for a page of an on-demand object not yet
    /// touched (`page(_:)` takes it).
    let frames: UnsafeMutablePointer<UInt64>
    let pageCount: Int
    let kind: Kind
    /// Its pages are taken and zeroed on first touch (`MemoryOptions.onDemand`): each absent one
    /// has a frame set aside for it (`KernelMemory.promiseFrames`) and is charged already.
    let onDemand: Bool
    /// What `frames` holds for a page not yet taken: no page's address, which is page-aligned.
    static let absent: UInt64 = 1
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
        kind = .deviceRegisters
        onDemand = false
        super.init(kind: Self.objectKind)
    }

    /// The initial ramdisk's pages (`range` starts on a page), for init to read programs from:
    /// memory the kernel reserved at boot and never frees.
    init(ramdisk range: PhysicalRange) {
        pageCount = Self.pageCount(of: range)
        frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pageCount)
        for page in 0..<pageCount { frames[page] = range.start.value + UInt64(page) * pageSize }
        kind = .ramdisk
        onDemand = false
        super.init(kind: Self.objectKind)
    }

    private init(frames: UnsafeMutablePointer<UInt64>, pages: Int, kind: Kind, charge: MemoryCharge, onDemand: Bool = false) {
        self.frames = frames
        pageCount = pages
        self.kind = kind
        self.charge = charge
        self.onDemand = onDemand
        super.init(kind: Self.objectKind)
    }

    /// Whether its pages' instructions are fetchable from the point of unification already: the
    /// ramdisk's bytes never change after boot, where they were cleaned once (`ramdiskObject`),
    /// so no mapping of them needs the data cache cleaned again.
    var isFetchable: Bool {
        if case .ramdisk = kind { return true }
        return false
    }

    /// Device registers, which only their own mapping may reach.
    var isDevice: Bool {
        if case .deviceRegisters = kind { return true }
        return false
    }

    /// Plain RAM (its own or the ramdisk's): what a program may be built from.
    var isRAM: Bool {
        switch kind {
        case .memory, .ramdisk: return true
        case .deviceRegisters, .dma: return false
        }
    }

    /// How its pages are mapped.
    var memoryType: MemoryType {
        switch kind {
        case .memory, .ramdisk: return .normal
        case .deviceRegisters: return .device
        case .dma: return .normalNonCacheable
        }
    }

    /// The physical address of its first page; for DMA memory, where the device sees it.
    var physicalStart: UInt64 { frames[0] }

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
            if Interrupts.isTimeToServe(afterPages: UInt64(page + 1)) { Interrupts.servePending() }
        }
        return MemoryObject(frames: frames, pages: pages, kind: .memory, charge: charge)
    }

    /// `pages` pages taken and zeroed on first touch, charged to `charge`'s account, which the
    /// object keeps, and each set aside now; nil when the account or memory is short (the caller
    /// still holds the charge then).
    static func allocateOnDemand(pages: Int, charge: MemoryCharge) -> MemoryObject? {
        guard pages > 0, pages <= maximumPages, let account = charge.account,
              (try? KernelMemory.promiseFrames(UInt64(pages), to: account)) != nil else { return nil }
        let frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pages)
        frames.initialize(repeating: absent, count: pages)
        return MemoryObject(frames: frames, pages: pages, kind: .memory, charge: charge, onDemand: true)
    }

    /// The physical address of page `page`, taken and zeroed now if it is the first touch of an
    /// on-demand page; nil only if the frame set aside for it is gone (the kernel's own
    /// allocations went through the reserve).
    func page(_ page: Int) -> PhysicalAddress? {
        let present = frames[page]
        if present != Self.absent { return PhysicalAddress(present) }
        guard let frame = KernelMemory.takePromisedFrame(.user) else { return nil }
        PhysicalWindow.zero(frame)
        // The zeros before any translation to the page: another CPU running a thread of the
        // same space may use the translation as soon as it is written.
        CPU.publishStores()
        frames[page] = frame.address.value
        return frame.address
    }

    /// `pages` zeroed, physically contiguous pages for `device`'s transfers, charged like
    /// `allocate`'s; nil when the account or memory is short, or no run of free frames is long
    /// enough.
    static func allocateForDevice(_ device: UserDevice, epoch: UInt64, pages: Int, charge: MemoryCharge) -> MemoryObject? {
        guard pages > 0, pages <= maximumPages, let account = charge.account,
              (try? KernelMemory.chargeFrames(UInt64(pages), to: account)) != nil else { return nil }
        guard let first = try? KernelMemory.allocatePaidFrames(count: pages, .user) else {
            account.release(UInt64(pages) * pageSize)
            return nil
        }
        let frames = UnsafeMutablePointer<UInt64>.allocate(capacity: pages)
        for page in 0..<pages {
            let frame = PageFrame(number: first.number + UInt64(page))
            PhysicalWindow.zero(frame)
            frames[page] = frame.address.value
        }
        // Zeroed through the cacheable linear map, but reached without the caches (the device,
        // and the driver's non-cacheable mapping): the zeros must be in memory, where the frames'
        // earlier contents still are, and no line left to be written back over the device's data.
        CPU.flushToPointOfCoherency(PhysicalWindow.pointer(to: first.address), size: pages * Int(pageSize))
        return MemoryObject(frames: frames, pages: pages, kind: .dma(device, epoch: epoch), charge: charge)
    }

    deinit {
        if let account = charge.account {
            switch kind {
            case .memory:
                var untouched: UInt64 = 0
                for page in 0..<pageCount {
                    if frames[page] == Self.absent {
                        untouched += 1
                    } else {
                        KernelMemory.freeFrame(PageFrame(number: frames[page] >> pageShift), for: account)
                    }
                }
                if untouched > 0 {
                    KernelMemory.withdrawPromise(untouched)
                    account.release(untouched * pageSize)
                }
            case .dma(let device, let epoch):
                DeviceAccess.releasingMemory(of: device, epoch: epoch)
                KernelMemory.freePaidFrame(PageFrame(number: frames[0] >> pageShift))
                account.release(UInt64(pageCount) * pageSize)
            case .ramdisk, .deviceRegisters:
                break
            }
        }
        frames.deallocate()
        charge.release()
    }
}
