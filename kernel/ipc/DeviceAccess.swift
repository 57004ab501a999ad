// Devices for userspace drivers, by capability. The kernel gives init, at start, a device-access
// capability naming the devices it does not keep for itself: the console UART, whose receive side
// a user-space driver runs, then the virtio-mmio transports in address order. Opening a device through it gives two narrower capabilities: its registers as
// a memory object and its interrupt as an interrupt line, which init can keep or hand on to a
// driver process. A line bound to a notification is masked when it fires and unmasked when the
// driver acknowledges, so a slow driver sees one signal, never an interrupt storm. A binding lasts
// as long as the line object bound: when its last handle goes, closed or with its process, the
// line is masked and unbound.

// Memory a device reads and writes (`dmaCreate`) is physically contiguous and mapped
// non-cacheable. The kernel cannot see what a device still does with it, so when such an object
// ends it first stops the device (a virtio device is reset, which ends its use of every buffer
// it was given), then frees the frames: a driver that crashes mid-transfer cannot make the device
// write into memory that belongs to someone else by then. A device's DMA memory has an owner (the
// process that made it) and an epoch, one more each time a new owner makes some: the device is
// reset when memory passes to a new owner, and memory of an earlier epoch ends without a reset (the
// device works for the new owner by then; the reset at the hand-over already stopped it using the
// old memory). A crashed driver's memory can outlive it briefly (its address space is freed once
// its threads on other CPUs are gone), and must not reset the device under its successor.

import _Volatile

/// A device user space may drive: its registers and its interrupt.
struct UserDevice {
    let kind: DeviceKind
    let registers: PhysicalRange
    let interrupt: UInt32
}

/// The authority to open devices (`deviceOpen`, with the open right): the devices it names, by
/// index.
final class DeviceAccessCapability: KernelObject, KernelObjectType {
    static var objectKind: KernelObjectKind { .deviceAccess }

    let devices: [UserDevice]

    init(devices: [UserDevice]) {
        self.devices = devices
        super.init(kind: Self.objectKind)
    }
}

/// A device's interrupt as a capability: a handle with the bind right may bind it to a
/// notification and acknowledge it. Each `deviceOpen` makes a new one; of the objects for one
/// line, one at a time may be bound.
final class InterruptLine: KernelObject, KernelObjectType, ChargedObject {
    static var objectKind: KernelObjectKind { .interrupt }

    let identifier: UInt32
    /// Whether `interruptBind` went through this object, so its end must unbind the line.
    fileprivate(set) var isBound = false
    /// What the opener paid for it.
    var charge = MemoryCharge()

    init(identifier: UInt32) {
        self.identifier = identifier
        super.init(kind: Self.objectKind)
    }

    /// The last handle went (closed, dropped with a message, or with its process): nothing may
    /// signal a driver that let go of its interrupt.
    deinit {
        if isBound { DeviceAccess.unbind(identifier) }
        charge.release()
    }
}

enum DeviceAccess {
    /// Init's capability: it opens devices and can pass a copy to a process it trusts.
    static let capabilityRights: Rights = [.open, .duplicate, .transfer]
    /// What `deviceOpen` gives: enough to drive the device, or to hand it on to a driver.
    static let registerRights: Rights = [.map, .write, .transfer, .duplicate]
    static let interruptRights: Rights = [.bind, .transfer, .duplicate]

    struct Binding {
        var interrupt: UInt32
        var notification: Notification
    }

    /// At most one per line a capability names; room for all of them is reserved when the
    /// capability is made, so binding never allocates. Behind `lock`: drivers on any CPU bind
    /// and unbind, and a line's interrupt may arrive on any CPU.
    nonisolated(unsafe) static var bindings: [Binding] = []

    /// Who made DMA memory for a device last, and in which epoch; one entry per device, by
    /// register address, made with the capability. Behind `lock`.
    struct DMAOwnership {
        var registers: UInt64
        var owner: UInt64 = 0
        var epoch: UInt64 = 0
    }
    /// Shared, behind `lock`: written once at boot (`start`), then read and updated under it.
    nonisolated(unsafe) static var ownership: [DMAOwnership] = []
    /// Its place in the lock order: LockOrder.deviceBindings.
    static let lock = SpinLock(.deviceBindings)

    /// The capability for init: the platform's devices the kernel leaves to user space (the
    /// console UART, when the device tree names its interrupt).
    static func capability(for platform: Platform) -> DeviceAccessCapability {
        var devices: [UserDevice] = []
        if let console = platform.console, let interrupt = console.interrupt {
            devices.append(UserDevice(kind: .uart, registers: console.registers, interrupt: interrupt))
        }
        for index in 0..<platform.virtioTransports.count {
            let transport = platform.virtioTransports[index]
            devices.append(UserDevice(kind: .virtioMMIO, registers: transport.registers, interrupt: transport.interrupt))
        }
        lock.withLock {
            bindings.reserveCapacity(devices.count)
            ownership = devices.map { DMAOwnership(registers: $0.registers.start.value) }
        }
        return DeviceAccessCapability(devices: devices)
    }

    /// Device `index` of the capability behind `handle`, which must have the open right.
    static func device(_ index: UInt64, through handle: Handle, process: Process) throws(KernelError) -> UserDevice {
        let (object, rights) = try Handles.lookup(handle, in: process, requiring: [])
        guard let capability = object.downcast(to: DeviceAccessCapability.self) else { throw .invalidHandle }
        guard rights.contains(.open) else { throw .accessDenied }
        guard index < UInt64(capability.devices.count) else { throw .notFound }
        return capability.devices[Int(index)]
    }

    /// The registers and interrupt of device `index` of the capability behind `handle`, as new
    /// handles in `process`.
    static func open(_ index: UInt64, through handle: Handle, process: Process) throws(KernelError)
        -> (registers: Handle, interrupt: Handle) {
        let device = try device(index, through: handle, process: process)
        let line = try KernelMemory.make(.interruptLine, for: process.account) {
            InterruptLine(identifier: device.interrupt)
        }
        let window = try KernelMemory.make(.memoryObject(pages: MemoryObject.pageCount(of: device.registers)),
                                           for: process.account) { MemoryObject(device: device.registers) }
        let registers = try Handles.install(window, rights: registerRights, in: process)
        do throws(KernelError) {
            let interrupt = try Handles.install(line, rights: interruptRights, in: process)
            return (registers, interrupt)
        } catch {
            try? Handles.close(registers, in: process)
            throw error
        }
    }

    /// Zeroed, physically contiguous memory of `bytes` for device `index` to transfer to and
    /// from, charged to `process`: its handle and the address the device sees.
    static func createDMA(bytes: UInt64, for index: UInt64, through handle: Handle,
                          process: Process) throws(KernelError) -> (memory: Handle, deviceAddress: UInt64) {
        let device = try device(index, through: handle, process: process)
        guard bytes > 0, let size = alignUp(bytes, to: pageSize),
              size / pageSize <= UInt64(MemoryObject.maximumPages) else { throw .invalidArgument }
        let pages = Int(size / pageSize)
        var charge = try KernelMemory.charge(.memoryObject(pages: pages), to: process.account)
        let epoch = takeOwnership(of: device, for: process)
        guard let object = MemoryObject.allocateForDevice(device, epoch: epoch, pages: pages, charge: charge) else {
            charge.release()
            throw .outOfMemory
        }
        let memory = try Handles.install(object, rights: .newMemory, in: process, isNew: true)
        return (memory, object.physicalStart)
    }

    /// The epoch of `process`'s DMA memory for `device`: the current one if it made the last, else
    /// a new one, after the device was stopped using the previous owner's memory.
    static func takeOwnership(of device: UserDevice, for process: Process) -> UInt64 {
        lock.withLock {
            guard let index = ownership.firstIndex(where: { $0.registers == device.registers.start.value }) else { return 0 }
            if ownership[index].owner != process.id {
                if ownership[index].owner != 0 { quiesce(device) }
                ownership[index].owner = process.id
                ownership[index].epoch += 1
            }
            return ownership[index].epoch
        }
    }

    /// DMA memory of `device` from `epoch` is about to be freed: stop the device first, unless
    /// the memory is from an earlier owner (the device was stopped when it changed hands).
    static func releasingMemory(of device: UserDevice, epoch: UInt64) {
        lock.withLock {
            let current = ownership.first(where: { $0.registers == device.registers.start.value })?.epoch
            if current == nil || current == epoch { quiesce(device) }
        }
    }

    /// Stops `device` from reading or writing memory: called before memory given to it is
    /// freed. A virtio device is reset (status 0, virtio 1.x section 4.2.2.1), which the
    /// specification says ends its use of every buffer; the kernel reaches the transport through
    /// its own mapping of the virtio-mmio pages (KernelAddressSpace).
    static func quiesce(_ device: UserDevice) {
        guard device.kind == .virtioMMIO else { return }
        let base = UInt(PhysicalWindow.linearMapBase + device.registers.start.value)
        let status = VolatileMappedRegister<UInt32>(unsafeBitPattern: base + 0x070)
        status.store(0)
        // QEMU resets at once; a device that takes its time gets a bounded wait.
        var patience = 1_000_000
        while status.load() != 0 && patience > 0 { patience -= 1 }
    }

    /// Binds the line behind `handle` to notification `notificationHandle`; returns the line's
    /// identifier.
    static func bind(_ handle: Handle, notification notificationHandle: Handle,
                     process: Process) throws(KernelError) -> UInt32 {
        let line = try interruptLine(handle, in: process)
        let notification = try IPC.notification(notificationHandle, in: process, requiring: .signal)
        // The kernel runs with interrupts masked, so the line cannot fire before the binding is
        // recorded.
        try lock.withLock { () throws(KernelError) in
            guard !bindings.contains(where: { $0.interrupt == line.identifier }),
                  Interrupts.bind(line.identifier, to: notification) else { throw .accessDenied }
            bindings.append(Binding(interrupt: line.identifier, notification: notification))
        }
        line.isBound = true
        return line.identifier
    }

    /// Unmasks the line behind `handle`, which must be the object bound.
    static func acknowledge(_ handle: Handle, process: Process) throws(KernelError) {
        let line = try interruptLine(handle, in: process)
        guard line.isBound else { throw .notFound }
        Interrupts.controller?.setEnabled(line.identifier, true)
    }

    /// The interrupt line behind `handle`: invalid if it names anything else, denied without the
    /// bind right.
    private static func interruptLine(_ handle: Handle, in process: Process) throws(KernelError) -> InterruptLine {
        let (object, rights) = try Handles.lookup(handle, in: process, requiring: [])
        guard let line = object.downcast(to: InterruptLine.self) else { throw .invalidHandle }
        guard rights.contains(.bind) else { throw .accessDenied }
        return line
    }

    /// The bound line object ended: the line is masked and signals no one.
    fileprivate static func unbind(_ id: UInt32) {
        lock.withLock {
            Interrupts.unregister(id)
            bindings.removeAll { $0.interrupt == id }
        }
    }
}
