// Devices for userspace drivers: init, the root task, may open a device the kernel does not keep
// for itself (today the console UART's input side) as a memory object of its registers, and bind
// the device's interrupt to a notification. The kernel masks the line when it fires and unmasks
// it when the driver acknowledges, so a slow driver sees one signal, never an interrupt storm.

enum DeviceAccess {
    struct Binding {
        var notification: Notification
        var processID: UInt64
        var interrupt: UInt32
    }

    /// Devices user space may open, by index; set from the platform at boot.
    nonisolated(unsafe) static var console: Platform.Console?
    nonisolated(unsafe) static var bindings: [Binding] = []

    /// The registers and interrupt of device `index`, for process 1 only.
    static func open(_ index: UInt64, process: Process) throws(KernelError) -> (registers: Handle, interrupt: UInt64) {
        guard process.id == 1 else { throw .accessDenied }
        guard index == 0, let console, let interrupt = console.interrupt else { throw .notFound }
        let handle = try IPC.install(.memory(MemoryObject(device: console.registers)),
                                     rights: [.map, .write, .transfer, .duplicate], in: process, isNew: true)
        return (handle, UInt64(interrupt))
    }

    /// Binds an openable device's interrupt to a notification of process 1.
    static func bind(_ interrupt: UInt64, notification handle: Handle, process: Process) throws(KernelError) {
        guard process.id == 1 else { throw .accessDenied }
        guard let id = console?.interrupt, interrupt == UInt64(id) else { throw .notFound }
        guard !bindings.contains(where: { $0.interrupt == id }) else { throw .accessDenied }
        let notification = try IPC.notification(handle, in: process, requiring: .signal)
        bindings.append(Binding(notification: notification, processID: process.id, interrupt: id))
        guard Interrupts.register(id, deliver) else {
            bindings.removeAll { $0.interrupt == id }
            throw .accessDenied
        }
    }

    static func acknowledge(_ interrupt: UInt64, process: Process) throws(KernelError) {
        guard bindings.contains(where: { UInt64($0.interrupt) == interrupt && $0.processID == process.id }) else {
            throw .notFound
        }
        Interrupts.controller?.setEnabled(UInt32(interrupt), true)
    }

    /// A bound interrupt: signal the driver, mask the line until it acknowledges.
    static let deliver: InterruptHandler = { id in
        Interrupts.controller?.setEnabled(id, false)
        for binding in DeviceAccess.bindings where binding.interrupt == id { binding.notification.signal(1) }
    }

    /// The binder ended: unbind its interrupts so nothing signals a dead driver.
    static func processEnded(_ process: Process) {
        for binding in bindings where binding.processID == process.id { Interrupts.unregister(binding.interrupt) }
        bindings.removeAll { $0.processID == process.id }
    }
}
