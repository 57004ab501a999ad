// Interrupt dispatch: a handler per interrupt identifier, acknowledged and ended at the GIC
// around each call, spurious identifiers ignored, and counts kept for the statistics (per CPU
// where the interrupt is per CPU, see `CPUState`). A userspace driver's line is bound here to its
// notification (kernel/ipc/DeviceAccess.swift): the IRQ path masks the line, which stays masked
// until the driver acknowledges, and signals the notification itself, with no handler between.

/// Called with interrupts masked, with the interrupt identifier.
typealias InterruptHandler = @convention(c) (UInt32) -> Void

enum Interrupts {
    struct Entry {
        /// Written under `lock`; the IRQ path reads it without, one word.
        var handler: InterruptHandler?
        /// A user driver's binding (`bind`), in place of a handler. Not counted: the binding
        /// (`DeviceAccess.bindings`) holds the notification and clears this, through
        /// `unregister`, before it lets go. Written under `lock`, read by the IRQ path without.
        var notification: Unmanaged<Notification>?
        /// For shared peripheral interrupts only: written by the CPU that acknowledged the
        /// interrupt, before it ends it, and the GIC delivers an active interrupt to no other CPU.
        var count: UInt64
    }

    /// One CPU's interrupt counts, in its per-CPU block. SGIs and PPIs (identifiers below 32)
    /// are banked: each CPU has its own, so their counts are per CPU too.
    struct CPUState {
        var handled: UInt64 = 0
        var spurious: UInt64 = 0
        var privateCounts = InlineArray<32, UInt64>(repeating: 0)
        /// How other CPUs address a software-generated interrupt to this one (its GICv2 target
        /// bit or GICv3 MPIDR), written by this CPU when it starts its interface.
        var sgiAddress: UInt64 = 0
        /// Set while `servePending` lets interrupts in: one taken then switches no thread.
        var servingPending = false
    }

    static let privateInterrupts: UInt32 = 32

    // Written once at boot by `start`, before interrupts are unmasked and any other core runs.
    nonisolated(unsafe) static var controller: InterruptControllerDriver?
    /// One entry per interrupt identifier, on the heap (an inline table would be copied whole
    /// on access).
    nonisolated(unsafe) static var table: UnsafeMutablePointer<Entry>?
    nonisolated(unsafe) static var lineCount = 0
    /// The handlers of `table`. A leaf in the lock order (LockOrder.interruptTable): nothing else
    /// is taken under it but the console's.
    static let lock = SpinLock(.interruptTable)

    /// Interrupts this CPU has handled, and IRQ exceptions it took with none pending.
    static var handled: UInt64 { PerCPU.current.interrupts.handled }
    static var spurious: UInt64 { PerCPU.current.interrupts.spurious }

    static let spuriousRange: ClosedRange<UInt32> = 1020...1023

    static func start(_ description: Platform.InterruptController) -> Bool {
        guard let driver = InterruptControllerDriver.make(description, affinity: CPU.affinity) else { return false }
        driver.start()
        lineCount = driver.lineCount
        let entries = UnsafeMutablePointer<Entry>.allocate(capacity: lineCount)
        entries.initialize(repeating: Entry(handler: nil, notification: nil, count: 0), count: lineCount)
        table = entries
        controller = driver
        return true
    }

    /// Installs `handler` for `id` and unmasks it at the controller. False for an identifier the
    /// controller does not have or one that already has a handler.
    @discardableResult
    static func register(_ id: UInt32, _ handler: @escaping InterruptHandler) -> Bool {
        lock.withLock {
            guard let table, let controller, Int(id) < lineCount, table[Int(id)].handler == nil,
                  table[Int(id)].notification == nil else { return false }
            table[Int(id)].handler = handler
            controller.setEnabled(id, true)
            return true
        }
    }

    /// Binds `id` to `notification`, which its interrupts signal (bit 0), and unmasks it; each
    /// interrupt masks the line again until the driver acknowledges. The caller holds
    /// `notification` until it calls `unregister`. False as for `register`.
    static func bind(_ id: UInt32, to notification: Notification) -> Bool {
        lock.withLock {
            guard let table, let controller, Int(id) < lineCount, table[Int(id)].handler == nil,
                  table[Int(id)].notification == nil else { return false }
            table[Int(id)].notification = Unmanaged.passUnretained(notification)
            controller.setEnabled(id, true)
            return true
        }
    }

    static func unregister(_ id: UInt32) {
        lock.withLock {
            guard let table, let controller, Int(id) < lineCount else { return }
            controller.setEnabled(id, false)
            table[Int(id)].handler = nil
            table[Int(id)].notification = nil
        }
    }

    /// How often `id` was handled: on this CPU for an SGI or PPI, on all CPUs for an SPI.
    static func count(of id: UInt32) -> UInt64 {
        guard let table, Int(id) < lineCount else { return 0 }
        return id < privateInterrupts ? PerCPU.current.interrupts.privateCounts[Int(id)] : table[Int(id)].count
    }

    /// Serves the interrupts that became pending while this CPU, in a long system call, works
    /// with them masked (zeroing or freeing a gigabyte takes seconds under QEMU): its ticks,
    /// deadlines, device and reschedule interrupts are handled now, not when the call ends.
    /// Only where the call holds no spin lock. An interrupt taken here switches no thread (not
    /// even when the call runs on the idle thread, releasing ended threads), so the call goes on
    /// where it was, and switches on its way out if asked to.
    @inline(never)
    static func servePending() {
        guard controller != nil else { return }
        #if KERNEL_DEBUG
        if PerCPU.current.locksHeld & ~LockOrder.bigKernel.bit != 0 { kernelPanic("interrupts served with a spin lock held") }
        #endif
        PerCPU.current.interrupts.servingPending = true
        CPU.takePendingInterrupts()
        PerCPU.current.interrupts.servingPending = false
    }

    /// Whether this CPU is taking interrupts inside `servePending`, in the middle of a call.
    static var isServingPending: Bool { PerCPU.current.interrupts.servingPending }

    /// How many pages a long loop over memory handles between two `servePending` calls (a power
    /// of two, so that the test is a mask): about a million instructions, a millisecond or less.
    static let pagesBetweenServing: UInt64 = 256

    /// Whether a loop that has handled `pages` pages serves pending interrupts now.
    @inline(__always)
    static func isTimeToServe(afterPages pages: UInt64) -> Bool { pages & (pagesBetweenServing - 1) == 0 }

    /// One more of interrupt `id` handled: on this CPU for an SGI or PPI, in the table for an SPI.
    @inline(__always)
    private static func count(_ id: UInt32, in table: UnsafeMutablePointer<Entry>) {
        if id < privateInterrupts {
            PerCPU.current.interrupts.privateCounts[Int(id)] &+= 1
        } else {
            table[Int(id)].count &+= 1
        }
    }

    /// The IRQ exception path: one interrupt per exception, as seL4 takes them. Another one
    /// pending raises the exception again once this one has returned (or, at EL1 with interrupts
    /// masked, at the next `servePending` or idle wait), so one read of the acknowledge register
    /// is all an interrupt costs, and the path keeps few values live. An IRQ exception that finds
    /// nothing to acknowledge is spurious.
    static func handleIRQ() {
        guard let controller, let table else { return }
        let acknowledged = controller.acknowledge()
        let id = acknowledged & 0x3FF
        guard !spuriousRange.contains(id) else {
            PerCPU.current.interrupts.spurious &+= 1
            return
        }
        PerCPU.current.interrupts.handled &+= 1
        if Int(id) < lineCount, let bound = table[Int(id)].notification {
            count(id, in: table)
            // A user driver's line: masked until the driver has served it and acknowledges,
            // then ended, and the driver's notification signalled straight from here.
            controller.setEnabled(id, false)
            controller.endOfInterrupt(acknowledged)
            bound._withUnsafeGuaranteedRef { $0.signal(1) { Scheduler.wakeForInterrupt($0) } }
        } else if Int(id) < lineCount, let handler = table[Int(id)].handler {
            controller.endOfInterrupt(acknowledged)
            handler(id)
            // Counted after the handler, so that this frame stays under it (a backtrace from a
            // handler, a panic's, names the IRQ path) rather than the call becoming a jump.
            count(id, in: table)
        } else {
            // Enabled but unclaimed: mask it so it cannot storm.
            controller.setEnabled(id, false)
            controller.endOfInterrupt(acknowledged)
        }
    }
}
