// Processes: an address space, one or more threads, a handle table, a name, a parent. Programs come from the initial
// ramdisk (cpio newc) and are validated as ELF64 executables before anything is mapped. A
// process ends by exit, by kill, or by a fault, which is reported and isolated: its memory and
// kernel objects are freed and its parent collects the reason with `wait`.

enum ProcessState: Equatable {
    case alive
    case zombie
}

final class Process: KernelObject, KernelObjectType, ChargedObject {
    static var objectKind: KernelObjectKind { .process }

    let id: UInt64
    var parentID: UInt64
    var name = InlineArray<24, UInt8>(repeating: 0)
    var nameLength = 0
    var addressSpace: AddressSpace?
    /// The address space of an ended process whose threads were running on other CPUs when it
    /// ended: freed with the last of them, once no CPU can walk its tables any more.
    var retiredAddressSpace: AddressSpace?
    /// Live threads; the first is the one the program started with.
    var threads: [Thread] = []
    /// Timer ticks that found a thread of it running: its CPU time, sampled.
    var ticks: UInt64 = 0
    var state = ProcessState.alive
    var exitReason = ExitReason.exited
    var exitCode: UInt64 = 0
    /// The parent's thread, while it waits in `wait` for this process to end.
    var waiter: Thread?
    var handles = HandleTable<KernelObject>(capacity: Handles.tableCapacity)
    /// Pays for everything the kernel holds for this process and its descendants.
    let account: MemoryAccount
    /// What the process object itself cost (`ObjectCost.process`), charged to its own account.
    var charge = MemoryCharge()
    /// Whether its first thread has been started: until then its builder may still map memory
    /// into it, and closing every handle to it ends it.
    var started = false
    /// Made by `processCreate`: its handles, not its parent's `wait`, decide when it leaves the table.
    var createdByHandle = false
    /// Process handles naming it, wherever they are: the last one closed before it started ends it.
    var handleCount = 0
    /// The next process whose end waits its turn (`Processes.endsWaiting`), while this one's does.
    var nextToEnd: Process?
    /// Whether its end waits its turn there.
    var endWaiting = false
    /// What its end signals (`processNotify`): a binding per notification, so that a client
    /// given a process handle cannot take away its supervisor's.
    static let maximumEndNotifications = 4
    var endNotifications = InlineArray<4, (notification: Notification, bits: UInt64)?>(repeating: nil)

    static let maximumThreads = 64

    init(id: UInt64, parentID: UInt64, name: UnsafeRawBufferPointer, addressSpace: AddressSpace) {
        self.id = id
        self.parentID = parentID
        self.addressSpace = addressSpace
        account = addressSpace.account
        for byte in name where nameLength < 24 {
            self.name[nameLength] = byte
            nameLength += 1
        }
        super.init(kind: Self.objectKind)
    }

    func describeName<Output: TextOutput>(into output: inout Output) {
        for index in 0..<nameLength { output.write(byte: name[index]) }
    }

    /// Called when one of the process's threads has been released by the scheduler.
    func threadReleased(_ thread: Thread) {
        threads.removeAll { $0 === thread }
        guard threads.isEmpty else { return }
        if let space = retiredAddressSpace {
            retiredAddressSpace = nil
            space.destroy()
        }
        if state == .zombie { Processes.wakeThreadsAwaitingRelease() }
    }

    /// A new process handle names it (`processCreate` made it, or it was duplicated).
    override func capabilityAdded(rights: Rights) { handleCount += 1 }

    /// A process handle left every table. With the last one, a process that never started ends
    /// (nobody could start it any more), and one that has ended leaves the table unless its
    /// parent may still collect it by id (`wait`): then it stays until the parent does, or ends.
    override func capabilityReleased(rights: Rights) {
        handleCount -= 1
        guard handleCount == 0 else { return }
        if !started && state == .alive { Processes.end(self, reason: .killed, code: 0) }
        if state == .zombie && (parentID == 0 || !started) { Processes.remove(self) }
    }

    deinit {
        handles.destroy()
        charge.release()
    }
}

/// What a new process's first thread finds in x1: nothing, a handle moved out of its parent's
/// table, or a capability the kernel grants itself (init's device access).
enum StartHandle {
    case none
    case moved(Handle)
    case granted(TransferredHandle)
}

enum Processes {
    static let capacity = 256
    /// The table's storage; the pointer is written once at boot, the entries under `lock`.
    nonisolated(unsafe) static var table: UnsafeMutablePointer<Process?>?
    /// Slots at and above this index have never held a process, so scans of the table stop
    /// here. Under `lock`.
    nonisolated(unsafe) static var slotsInUse = 0
    /// The IDs the next process and thread get. Under `lock`.
    nonisolated(unsafe) static var nextID: UInt64 = 1
    nonisolated(unsafe) static var nextThreadID: UInt64 = 1
    /// The process table's entries, `slotsInUse` and the ID counters. First in the lock order
    /// (LockOrder.processTable): a process is made or freed under it, which takes Heap.lock.
    static let lock = SpinLock(.processTable)
    // Written once at boot, before any other core runs.
    nonisolated(unsafe) static var initialRamdisk: UnsafeRawBufferPointer?
    /// Set in test and bench modes: the kernel powers off when init ends.
    nonisolated(unsafe) static var powerOffWhenInitEnds = false
    nonisolated(unsafe) static var onInitExit: (@convention(c) (UInt64, UInt64) -> Void)?

    /// Threads in `wait` for an ended process whose last threads have not been released yet
    /// (on their way out of system calls, or running on other CPUs). Whenever some ended
    /// process loses its last thread they are all woken, and each looks at its own again: such
    /// waits are short and rare, so one list serves every process. Under the big kernel lock.
    nonisolated(unsafe) static var awaitingRelease: WaitList<Thread>?

    /// Ends asked for while another end is under way, oldest first, and whether one is. Ending a
    /// process closes its handles, and closing the last handle to a process that never started
    /// ends that one too: a chain of such processes, each holding the next one's handle, would
    /// otherwise end in a recursion as deep as the chain, on a kernel stack of 16 KiB. The
    /// outermost `end` ends them in turn instead. Under the big kernel lock.
    nonisolated(unsafe) static var endsWaiting: (first: Process, last: Process)?
    nonisolated(unsafe) static var ending = false

    static func start(ramdisk: UnsafeRawBufferPointer?) {
        let entries = UnsafeMutablePointer<Process?>.allocate(capacity: capacity)
        entries.initialize(repeating: nil, count: capacity)
        table = entries
        initialRamdisk = ramdisk
        awaitingRelease = WaitList()
    }

    /// An ended process has lost its last thread: the threads waiting for that look again.
    static func wakeThreadsAwaitingRelease() {
        guard let awaitingRelease else { return }
        while let waiter = awaitingRelease.removeFirst() { Scheduler.wake(waiter.takeUnretainedValue()) }
    }

    static var liveCount: Int {
        lock.withLock {
            guard let table else { return 0 }
            var count = 0
            for index in 0..<slotsInUse where table[index] != nil { count += 1 }
            return count
        }
    }

    static func find(_ id: UInt64) -> Process? {
        lock.withLock { findLocked(id) }
    }

    private static func findLocked(_ id: UInt64) -> Process? {
        guard let table else { return nil }
        for index in 0..<slotsInUse { if let process = table[index], process.id == id { return process } }
        return nil
    }

    /// Thread `id` of `process`, for calls that name a thread of the caller's own process.
    static func thread(_ id: UInt64, of process: Process) throws(KernelError) -> Thread {
        guard let thread = process.threads.first(where: { $0.id == id && $0.state != .dead }) else { throw .notFound }
        return thread
    }

    static func thread(withID id: UInt64) -> Thread? {
        lock.withLock {
            guard let table else { return nil }
            for index in 0..<slotsInUse {
                guard let process = table[index] else { continue }
                for thread in process.threads where thread.id == id { return thread }
            }
            return nil
        }
    }

    /// A new process in a free slot; nil when the table is full.
    private static func insert(parentID: UInt64, name: UnsafeRawBufferPointer, addressSpace: AddressSpace) -> Process? {
        lock.withLock {
            guard let table else { return nil }
            for index in 0..<capacity where table[index] == nil {
                let process = Process(id: nextID, parentID: parentID, name: name, addressSpace: addressSpace)
                table[index] = process
                slotsInUse = max(slotsInUse, index + 1)
                nextID += 1
                return process
            }
            return nil
        }
    }

    private static func takeThreadID() -> UInt64 {
        lock.withLock {
            defer { nextThreadID += 1 }
            return nextThreadID
        }
    }

    static func remove(_ process: Process) {
        lock.withLock { removeLocked(process) }
    }

    /// A process holds one slot at most.
    private static func removeLocked(_ process: Process) {
        guard let table else { return }
        for index in 0..<slotsInUse where table[index] === process {
            vacate(index, in: table)
            return
        }
    }

    /// Empties slot `index`, whose process's account gives the slot back.
    private static func vacate(_ index: Int, in table: UnsafeMutablePointer<Process?>) {
        table[index]?.account.giveBackSlot(.process)
        table[index] = nil
    }

    /// Logs every process still alive whose parent is gone (their accounts hold their
    /// descendants' charges too), with what its account holds: for the leak check at the end of
    /// a test run, where all else must be back.
    static func reportSurvivors() {
        lock.withLock {
            guard let table else { return }
            for index in 0..<slotsInUse {
                guard let process = table[index], process.id != 1, process.state == .alive,
                      process.parentID <= 1 || findLocked(process.parentID) == nil else { continue }
                // Named, with its threads' states, so that a survivor says what it was doing.
                var line = TextLine()
                line.write("Memory: still alive: process ")
                line.writeDecimal(process.id)
                line.write(" (")
                process.describeName(into: &line)
                line.write("; threads:")
                for thread in process.threads {
                    switch thread.state {
                    case .running: line.write(" running")
                    case .ready: line.write(" ready")
                    case .blocked: line.write(" blocked")
                    case .dead: line.write(" ended")
                    }
                }
                line.write("), ")
                line.writeDecimal(process.account.objects)
                line.write(" kernel objects, ")
                line.writeDecimal(process.account.used)
                line.write(" bytes")
                Console.write(line)
            }
        }
    }

    // MARK: Starting programs

    /// A new process named `name`, a child of `parent` (none: init), with an empty address space
    /// and no thread. It gets a memory account under `account` (nil: its parent's, the root's for
    /// init) limited to `memoryLimit` bytes (0: only the ancestors' limits), which pays for
    /// everything it holds, the process object first.
    static func create(name: UnsafeRawBufferPointer, parent: Process?, account: MemoryAccount? = nil,
                       memoryLimit: UInt64) throws(KernelError) -> Process {
        try KernelMemory.checkRoom(for: .process)
        let parentAccount = account ?? parent?.account ?? KernelMemory.root
        // A lineage is at most this deep, ended ancestors included (MemoryAccount.maximumDepth).
        guard parentAccount.depth < MemoryAccount.maximumDepth else { throw .outOfMemory }
        let account = MemoryAccount(limit: memoryLimit == 0 ? MemoryAccount.unlimited : memoryLimit,
                                    parent: parentAccount)
        var charge = try MemoryCharge(ObjectCost.process.bytes, to: account)
        // Its slot in the table, which it holds until it leaves the table (`vacate`).
        do throws(KernelError) {
            try account.takeSlot(.process, ofTable: capacity)
        } catch {
            charge.release()
            throw error
        }
        guard let space = AddressSpace.create(account: account) else {
            account.giveBackSlot(.process)
            charge.release()
            throw .outOfMemory
        }
        guard let process = insert(parentID: parent?.id ?? 0, name: name, addressSpace: space) else {
            space.destroy()
            account.giveBackSlot(.process)
            charge.release()
            throw .outOfMemory
        }
        process.charge = charge
        return process
    }

    /// Takes back a process that never started (its building failed): its memory, its slot.
    /// The object itself goes with its last reference.
    static func discard(_ process: Process) {
        process.state = .zombie
        process.addressSpace?.destroy()
        process.addressSpace = nil
        Handles.closeAll(in: process)
        remove(process)
    }

    /// Starts the first thread of `process` at `entry` with SP = `stack`, x0 = `argument`, x1 =
    /// the start handle's value in the process, x2 = `startBlock` and x3 = `ramdisk` (init's).
    /// The start handle leaves its holder only once everything else has succeeded: a start that
    /// fails leaves it where it was. Returns the thread's id.
    static func startFirstThread(of process: Process, entry: UInt64, stack: UInt64, argument: UInt64,
                                 start: StartHandle, from holder: Process?, startBlock: UInt64 = 0,
                                 ramdisk: Handle = .none) throws(KernelError) -> UInt64 {
        guard process.state == .alive, !process.started else { throw .invalidArgument }
        if case .moved(let handle) = start {
            guard let holder, (try? Handles.lookup(handle, in: holder, requiring: .transfer)) != nil else { throw .invalidHandle }
            // Refused before the handle moves: closing it instead could end the process itself
            // (when it is the last handle to it), which would then start with nothing.
            guard process.handles.freeSlots > 0 else { throw .handleTableFull }
        }
        var charge = try KernelMemory.charge(.thread, to: process.account)
        guard let kernelStack = KernelStacks.allocate(for: process.account) else {
            charge.release()
            throw .outOfMemory
        }
        var moved: TransferredHandle?
        switch start {
        case .none: break
        case .moved(let handle): moved = holder.flatMap { try? Handles.uninstall(handle, from: $0, requiring: .transfer) }
        case .granted(let capability): moved = capability
        }
        var startHandle = Handle.none
        if let moved {
            // There is room for a moved handle (checked above), and a granted one goes into the
            // empty table of a process the kernel itself builds: this never fails. (Were it to,
            // the release could end the process, were it its own last handle: hence the check.)
            do throws(KernelError) {
                startHandle = try Handles.install(moved.object, rights: moved.rights, in: process)
            } catch {
                moved.release()
            }
        }
        let thread = Thread(id: takeThreadID(), process: process, stack: kernelStack, priority: Scheduler.defaultPriority)
        thread.charge = charge
        thread.prepareUserEntry(entry: entry, userStack: stack, argument: argument, handle: startHandle.value,
                                startBlock: startBlock, ramdisk: ramdisk.value)
        process.started = true
        process.threads.append(thread)
        Scheduler.makeReady(thread)
        return thread.id
    }

    /// Loads `name` from the initial ramdisk into a new process and starts it, with `start` as
    /// its start handle: how the kernel starts init, the one program it loads (every other is
    /// loaded in user space, with the process-building calls). Returns the new process's id.
    /// Init also gets `ramdisk`, installed in its table and passed in x3.
    static func spawn(name: UnsafeRawBufferPointer, argument: UInt64, parent: Process?, memoryLimit: UInt64,
                      start: StartHandle, ramdisk: TransferredHandle? = nil) throws(KernelError) -> UInt64 {
        guard let ramdiskBytes = initialRamdisk, let archive = try? CPIOArchive(ramdiskBytes),
              let file = archive.file(named: name) else { throw .notFound }
        let image: ELFImage
        do throws(ELFError) {
            image = try ELFImage(file.data, userSpaceStart: UserSpace.start, userSpaceEnd: UserSpace.mapBase)
        } catch {
            throw .invalidArgument
        }
        let process = try create(name: name, parent: parent, memoryLimit: memoryLimit)
        do throws(KernelError) {
            guard let space = process.addressSpace else { throw .outOfMemory }
            for index in 0..<image.segmentCount {
                let segment = image.segment(index)
                let (start, size) = segment.pageSpan
                try space.mapZeroed(at: start, size: size, permissions: segment.permissions, kind: .program)
                let bytes = UnsafeRawBufferPointer(rebasing: file.data[Int(segment.fileOffset)..<Int(segment.fileOffset + segment.fileSize)])
                space.fill(at: segment.virtualAddress.value, from: bytes)
                if segment.permissions.contains(.execute) { space.synchronizeInstructions(start: start, size: size) }
            }
            try space.mapZeroed(at: UserSpace.stackTop - UserSpace.stackSize, size: UserSpace.stackSize,
                                permissions: .readWrite, kind: .program)
            let ramdiskHandle = try ramdisk.map { ramdisk throws(KernelError) in
                try Handles.install(ramdisk.object, rights: ramdisk.rights, in: process)
            } ?? .none
            _ = try startFirstThread(of: process, entry: image.entry.value, stack: UserSpace.stackTop,
                                     argument: argument, start: start, from: parent, ramdisk: ramdiskHandle)
        } catch {
            discard(process)
            throw error
        }
        return process.id
    }

    // MARK: Ending processes

    /// Ends `process` for `reason`: frees its memory, hands its children to no one (they are
    /// reaped when they end), wakes a waiting parent. If it is the running process, its thread is
    /// marked dead and the switch away happens when the exception returns.
    static func end(_ process: Process, reason: ExitReason, code: UInt64) {
        guard process.state == .alive, !process.endWaiting else { return }
        process.exitReason = reason
        process.exitCode = code
        guard !ending else {
            // Within another end: this one waits its turn (see `endsWaiting`).
            endLater(process)
            return
        }
        ending = true
        endNow(process)
        while let (next, last) = endsWaiting {
            endsWaiting = next === last ? nil : (next.nextToEnd.unsafelyUnwrapped, last)
            next.nextToEnd = nil
            next.endWaiting = false
            endNow(next)
        }
        ending = false
    }

    /// Puts `process`, its reason and code set, last among the ends that wait their turn.
    private static func endLater(_ process: Process) {
        process.endWaiting = true
        if let waiting = endsWaiting {
            waiting.last.nextToEnd = process
            endsWaiting = (waiting.first, process)
        } else {
            endsWaiting = (process, process)
        }
    }

    /// Puts the children `process` never started last among the ends that wait their turn.
    /// Rare, and out of line: `end`'s own loop over the table stays as short as it was.
    @inline(never)
    private static func endUnstartedChildren(of process: Process) {
        lock.withLock {
            guard let table else { return }
            for index in 0..<slotsInUse {
                guard let child = table[index], child.parentID == process.id, !child.started, child.state == .alive,
                      !child.endWaiting else { continue }
                child.exitReason = .killed
                child.exitCode = 0
                endLater(child)
            }
        }
    }

    /// `end`'s work for one process, whose reason and code are set.
    private static func endNow(_ process: Process) {
        guard process.state == .alive else { return }
        let reason = process.exitReason
        let code = process.exitCode
        process.state = .zombie
        let isCurrent = Scheduler.current?.process === process
        var runningElsewhere = false
        for thread in process.threads where thread !== Scheduler.current {
            Clock.cancelDeadline(token: thread.id)
            if thread.inSystemCall {
                // Its stack holds system call frames: let it wake and unwind, then it ends. At
                // least at the default level: the process's end (its waiter, its stack) waits
                // for it, and below that it might never run.
                thread.killed = true
                Scheduler.raiseToDefault(thread)
                Scheduler.wake(thread)
            } else if thread.state == .running {
                // In user space on another CPU (or waiting there for the big kernel lock): it ends
                // as that CPU enters the kernel, which the reschedule interrupt makes it do now.
                // That may first put it back in its queue (the interrupt preempts it), so it too
                // goes to the default level at least: below, ready threads above it could keep
                // it from ever running to its end.
                thread.killed = true
                Scheduler.raiseToDefault(thread)
                runningElsewhere = true
                Scheduler.requestReschedule(of: thread.cpu, from: PerCPU.current.index)
            } else {
                // Preempted in user space: nothing on its stack to unwind.
                if thread.state == .ready { Scheduler.removeFromQueue(thread) }
                thread.state = .dead
                LazyFloatingPoint.forget(thread.floatingPoint)
                thread.release()
            }
        }
        process.threads.removeAll { $0 !== Scheduler.current && $0.state == .dead }
        for thread in process.threads { thread.translationBase = .none }
        if isCurrent {
            // The space is live in TTBR0: leave it before freeing it.
            NoAddressSpace.activate()
        }
        if runningElsewhere {
            // Other CPUs may still walk its tables until those threads are gone.
            process.retiredAddressSpace = process.addressSpace
        } else {
            process.addressSpace?.destroy()
        }
        process.addressSpace = nil
        Handles.closeAll(in: process)
        // Its children lose their parent (zombies among them are reaped), and it leaves the table
        // now if no parent will wait for it. A zombie freed here under the lock only gives back
        // heap memory: its handles were closed when it ended. A child it never started ends
        // with it (`endUnstartedChildren`): nobody is left to start it, and handles that keep it
        // alive may be in its own table, or in a cycle of such children.
        var unstartedChildren = false
        lock.withLock {
            guard let table else { return }
            for index in 0..<slotsInUse {
                guard let child = table[index], child.parentID == process.id else { continue }
                if child.state == .zombie {
                    vacate(index, in: table)
                } else if !child.started {
                    unstartedChildren = true
                } else {
                    child.parentID = 0
                }
            }
            if process.parentID == 0 || findLocked(process.parentID) == nil
                || (process.createdByHandle && !process.started && process.handleCount == 0) {
                removeLocked(process)
            }
        }
        if unstartedChildren { endUnstartedChildren(of: process) }
        if let waiter = process.waiter {
            process.waiter = nil
            Scheduler.wake(waiter)
        }
        for index in 0..<Process.maximumEndNotifications {
            guard let (notification, bits) = process.endNotifications[index] else { continue }
            process.endNotifications[index] = nil
            notification.signal(bits)
        }
        if process.id == 1, let onInitExit { onInitExit(UInt64(reason.rawValue), code) }
        if isCurrent { Scheduler.markCurrentDead() }
    }

    /// A fault of user code: report it, naming the program's function where its symbol table
    /// allows, and end the process; the exception path then runs something else.
    static func fault(_ frame: ExceptionFrame, kind: VectorKind) {
        guard let process = Scheduler.current?.process else { exceptionPanic(frame: frame, kind: kind) }
        var line = TextLine()
        line.write("Process ")
        line.writeDecimal(process.id)
        line.write(" (")
        process.describeName(into: &line)
        line.write(") killed: ")
        frame.syndrome.describe(into: &line)
        line.write(" at ")
        line.writeHex(frame.syndrome.isAbort ? frame.faultAddress : frame.exceptionLinkRegister)
        line.write(", ELR ")
        line.writeHex(frame.exceptionLinkRegister)
        var function = TextLine()
        if ProgramSymbols.describe(frame.exceptionLinkRegister, in: process, into: &function) {
            line.write(" in ")
            function.forEachByte { line.write(byte: $0) }
        }
        Console.write(line)
        guard process.state == .alive else {
            // A thread of a process that has ended already (`end` would do nothing) must not
            // return to fault again.
            if Scheduler.current?.state != .dead { Scheduler.markCurrentDead() }
            return
        }
        end(process, reason: .faulted, code: frame.syndrome.value)
    }

    /// Starts a further thread in `process` at `entry` with SP = `stack`, x0 = `argument0`,
    /// x1 = `argument1`; the caller provides (maps) the stack. Returns the thread's id.
    static func createThread(in process: Process, entry: UserAddress, stack: UserAddress, argument0: UInt64,
                             argument1: UInt64) throws(KernelError) -> UInt64 {
        // An entry must be an instruction's address; the stack's top 16 bytes must be mapped
        // and writable, where the thread's first pushes go.
        guard entry.value & 3 == 0, UserMemory.isUserRange(entry, 4), stack.value & 15 == 0, stack.value >= 16,
              UserMemory.isUserRange(UserAddress(stack.value - 16), 16), let space = process.addressSpace,
              space.isWritable(start: stack.value - 16, size: 16) else { throw .invalidArgument }
        guard process.threads.count < Process.maximumThreads else { throw .outOfMemory }
        var charge = try KernelMemory.charge(.thread, to: process.account)
        guard let kernelStack = KernelStacks.allocate(for: process.account) else {
            charge.release()
            throw .outOfMemory
        }
        let thread = Thread(id: takeThreadID(), process: process, stack: kernelStack, priority: Scheduler.defaultPriority)
        thread.charge = charge
        // Where its creator may run, it may (`threadAffinity`).
        if let creator = Scheduler.current, creator.process === process { thread.affinity = creator.affinity }
        thread.prepareUserEntry(entry: entry.value, userStack: stack.value, argument: argument0, handle: argument1)
        process.threads.append(thread)
        Scheduler.makeReady(thread)
        return thread.id
    }

    /// Ends the calling thread; the last thread to end ends its process with `code`.
    static func exitThread(_ thread: Thread, code: UInt64) {
        guard let process = thread.process else { return }
        if process.threads.count <= 1 {
            end(process, reason: .exited, code: code)
            return
        }
        Clock.cancelDeadline(token: thread.id)
        Scheduler.markCurrentDead()
    }

    /// `wait`: blocks until child `id` of `caller` ends, then collects it.
    static func wait(for id: UInt64, caller: Process) throws(KernelError) -> (code: UInt64, reason: ExitReason) {
        guard let child = find(id), child.parentID == caller.id, let thread = Scheduler.current else { throw .notFound }
        return try wait(for: child, thread: thread, collecting: true)
    }

    /// Blocks `thread` until `process` ends, then reports how; a child of the waiting process is
    /// collected (it leaves the table). One thread waits for a process at a time.
    static func wait(for process: Process, thread: Thread,
                     collecting: Bool) throws(KernelError) -> (code: UInt64, reason: ExitReason) {
        if process.state != .zombie {
            guard process.waiter == nil else { throw .notFound }
            while process.state != .zombie && !thread.killed {
                process.waiter = thread
                Scheduler.block()
            }
            process.waiter = nil
            guard !thread.killed else { throw .peerClosed }
        }
        // Threads still unwinding out of system calls, or still running on another CPU until it
        // enters the kernel, finish first, so that when `wait` returns every resource of the
        // process is back. The waiter sleeps until the last is released (`threadReleased`): a
        // loop that yielded here would hold the big kernel lock that those threads' CPUs need.
        // (Any number of threads may wait here: holders of process handles as well as the parent.)
        while !process.threads.isEmpty && !thread.killed, let awaitingRelease {
            awaitingRelease.append(thread.receiveLink)
            Scheduler.block()
            awaitingRelease.remove(thread.receiveLink)
        }
        guard !thread.killed else { throw .peerClosed }
        if collecting { remove(process) }
        return (process.exitCode, process.exitReason)
    }
}
