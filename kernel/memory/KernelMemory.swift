// What the kernel holds for processes, and the rule that keeps it from running dry: every page
// and every kernel object made on a process's behalf is charged to the process's memory account
// (core/MemoryAccount.swift) before it is made, and refused with `outOfMemory` when the account,
// or the machine, cannot pay. A reserve of frames stays out of reach of those requests: the
// kernel heap alone may use it, so the kernel can always finish what it started, and end a
// process and free its objects, however full memory is.
//
// Kernel objects are Swift class instances, and a Swift allocation cannot fail gracefully, so
// the heap must never be asked for memory it cannot find. Every object kind therefore has a
// price (its heap bytes, an upper bound) and a bound on the new heap pages making it can take;
// an object is made only after its price is charged and the free frames outside the reserve
// cover those pages (the heap's slabs are one page each, so any free frame will do). The boot
// self-tests check each price and bound against what the heap really gives out.

/// What one kernel object costs: the heap bytes it holds (the heap's rounding included) and the
/// most new heap pages making it can take.
struct ObjectCost {
    let bytes: UInt64
    let heapPages: UInt64

    /// A port: the object, its waiter list, its message ring and a page of payload buffers.
    static let port = ObjectCost(bytes: 8 * 1024, heapPages: 4)
    /// What a port comes down to once closed (MessagePort.close frees its queue and buffers),
    /// while send rights keep it: the object and its waiter list. Bytes only: it takes no page.
    static let closedPort = ObjectCost(bytes: 256, heapPages: 0)
    static let notification = ObjectCost(bytes: 64, heapPages: 1)
    /// A thread's heap part: the object, its saved context and FP/SIMD registers, its message
    /// buffers, wait links and reply capability (its kernel stack is charged by the page). The
    /// bound includes a page for its process's thread list, which may grow to take it.
    static let thread = ObjectCost(bytes: 4 * 1024, heapPages: 9)
    /// A process's heap part: the object, its account, handle table, its thread list at its
    /// largest (64 threads), and its address space's object and region table (pages and tables
    /// are charged as they are mapped).
    static let process = ObjectCost(bytes: 8 * 1024, heapPages: 8)
    static let interruptLine = ObjectCost(bytes: 64, heapPages: 1)
    /// The kernel log's reader: the object and its queue, a run of pages.
    static let kernelLogReader = ObjectCost(bytes: UInt64(KernelLogReader.queueBytes) + 4 * 1024, heapPages: 6)

    /// A memory object of `pages` pages: the object and its frame list (the frames themselves are
    /// charged by the page).
    static func memoryObject(pages: Int) -> ObjectCost {
        ObjectCost(bytes: 128 + max(16, UInt64(pages) * 16), heapPages: 2)
    }
}

/// A kernel object that keeps what it cost, and releases it in its deinit.
protocol ChargedObject: AnyObject {
    var charge: MemoryCharge { get set }
}

enum KernelMemory {
    /// Frames that requests made for processes never take (1 MiB): the heap's, for the kernel's
    /// own needs.
    static let reserveFrames: UInt64 = 256

    /// The account every process's account descends from; unlimited (memory itself is the limit).
    static let root = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)

    /// Charges `cost` to `account` for an object about to be made, which keeps the charge and
    /// releases it when it goes. Throws `outOfMemory`, charging nothing, when the account cannot
    /// pay, when the free frames outside the reserve cannot cover the heap pages the object may
    /// need, or when a fault is injected.
    static func charge(_ cost: ObjectCost, to account: MemoryAccount) throws(KernelError) -> MemoryCharge {
        try checkRoom(for: cost)
        return try MemoryCharge(cost.bytes, to: account)
    }

    /// Whether the heap could grow by `cost.heapPages` without touching the reserve (and no
    /// fault is injected): the machine-wide half of `charge`, for a caller that must make the
    /// account it charges first.
    static func checkRoom(for cost: ObjectCost) throws(KernelError) {
        try FaultInjection.check()
        guard PhysicalFrames.unpromisedFrames >= reserveFrames + cost.heapPages else { throw .outOfMemory }
    }

    /// `make()`'s object, after its `cost` is charged to `account` (see `charge`); the object
    /// keeps the charge.
    static func make<Object: ChargedObject>(_ cost: ObjectCost, for account: MemoryAccount,
                                            _ make: () -> Object) throws(KernelError) -> Object {
        let charge = try charge(cost, to: account)
        let object = make()
        object.charge = charge
        return object
    }

    /// A frame for `purpose`, charged to `account` (a page): never one of the reserve's.
    static func allocateFrame(_ purpose: FramePurpose, for account: MemoryAccount) throws(KernelError) -> PageFrame {
        try chargeFrames(1, to: account)
        do throws(KernelError) {
            return try allocatePaidFrame(purpose)
        } catch {
            account.release(pageSize)
            throw error
        }
    }

    /// Charges `count` frames to `account` at once, for a caller about to take them with
    /// `allocatePaidFrame` (each is given back by `freeFrame`; any not taken, with `release`).
    /// Refuses at once when the machine has fewer free outside the reserve: a request that
    /// cannot be met should not zero and map most of it before finding out.
    static func chargeFrames(_ count: UInt64, to account: MemoryAccount) throws(KernelError) {
        try FaultInjection.check()
        guard PhysicalFrames.unpromisedFrames >= reserveFrames + count else { throw .outOfMemory }
        try account.charge(count * pageSize)
    }

    /// `chargeFrames` for pages taken on demand: `count` frames are charged to `account` and set
    /// aside now, so that taking one later (`takePromisedFrame`) cannot fail. Each taken is given
    /// back by `freeFrame`; any never taken, with `withdrawPromise` and `release`.
    static func promiseFrames(_ count: UInt64, to account: MemoryAccount) throws(KernelError) {
        try FaultInjection.check()
        try account.charge(count * pageSize)
        guard PhysicalFrames.promise(count, keepingFree: reserveFrames) else {
            account.release(count * pageSize)
            throw .outOfMemory
        }
    }

    /// A frame `promiseFrames` set aside, for a page touched now (nil only if the kernel's own
    /// allocations have gone through the reserve).
    static func takePromisedFrame(_ purpose: FramePurpose) -> PageFrame? { PhysicalFrames.takePromised(purpose) }

    /// Gives back `count` frames `promiseFrames` set aside and never took.
    static func withdrawPromise(_ count: UInt64) { PhysicalFrames.withdrawPromise(count) }

    /// A frame already charged with `chargeFrames`: never one of the reserve's.
    static func allocatePaidFrame(_ purpose: FramePurpose) throws(KernelError) -> PageFrame {
        do throws(FrameAllocatorError) {
            return try PhysicalFrames.allocate(purpose, keepingFree: reserveFrames)
        } catch {
            throw .outOfMemory
        }
    }

    /// `count` physically contiguous frames already charged with `chargeFrames`, never the
    /// reserve's: one allocation, freed by its first frame with `freePaidFrame`.
    static func allocatePaidFrames(count: Int, _ purpose: FramePurpose) throws(KernelError) -> PageFrame {
        do throws(FrameAllocatorError) {
            return try PhysicalFrames.allocate(count: count, alignment: 1, purpose, keepingFree: reserveFrames)
        } catch {
            throw .outOfMemory
        }
    }

    /// Frees a frame `allocateFrame` gave out and gives its page back to `account`.
    static func freeFrame(_ frame: PageFrame, for account: MemoryAccount) {
        freePaidFrame(frame)
        account.release(pageSize)
    }

    /// Frees a frame whose page the caller gives back to its account itself. A frame that cannot
    /// be freed is a kernel bug.
    static func freePaidFrame(_ frame: PageFrame) {
        do throws(FrameAllocatorError) {
            try PhysicalFrames.free(frame)
        } catch {
            kernelPanic("frame \(frame.address) charged to a process could not be freed")
        }
    }
}

/// Translation tables of a user address space: frames charged to its process's account.
struct UserTableFrames: TableFrameSource {
    let account: MemoryAccount

    mutating func allocateTable() -> PhysicalAddress? {
        (try? KernelMemory.allocateFrame(.pageTables, for: account))?.address
    }

    mutating func freeTable(_ table: PhysicalAddress) {
        KernelMemory.freeFrame(PageFrame(containing: table), for: account)
    }
}

/// Kernels built with FAULTS=1 (KERNEL_FAULT_INJECTION) can make requests for memory fail on
/// purpose: with `faults=N` on the command line, each request (kernel object, user page,
/// translation table, kernel stack) made by a process init started fails with a chance of one
/// in N, from a pseudo-random sequence fixed by `faultseed=S`. Every failure must reach its
/// caller as `outOfMemory` and leave nothing behind; a boot scenario runs the user test suite
/// this way. The processes those start run unperturbed, so that each failure the suite sees
/// traces back to a refusal it received itself.
enum FaultInjection {
    #if KERNEL_FAULT_INJECTION
    static let isAvailable = true
    #else
    static let isAvailable = false
    #endif
    /// One failure in this many requests; 0: off. Set once at boot.
    nonisolated(unsafe) static var oneIn: UInt64 = 0
    /// The generator and the counts: shared, behind the big kernel lock. `check` counts only
    /// requests made for a process, which come from its system calls, and those run under it
    /// once more than one CPU runs threads.
    nonisolated(unsafe) static var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    nonisolated(unsafe) static var requests: UInt64 = 0
    nonisolated(unsafe) static var injected: UInt64 = 0

    /// Reads `faults=N` from the command line.
    static func start(_ arguments: BootArguments) {
        guard let rate = arguments.number(of: "faults"), rate > 0 else { return }
        guard isAvailable else {
            log("Memory: faults=\(rate) ignored: this kernel was built without FAULTS=1")
            return
        }
        oneIn = rate
        if let seed = arguments.number(of: "faultseed"), seed != 0 { state = seed }
        log("Memory: fault injection on: one request for memory in \(rate) fails (init's children)")
    }

    @inline(__always)
    static func check() throws(KernelError) {
        #if KERNEL_FAULT_INJECTION
        guard oneIn > 0, let process = Scheduler.current?.process, process.parentID == 1 else { return }
        requests += 1
        // xorshift64: the same sequence every boot, so a failure can be replayed.
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        if state % oneIn == 0 {
            injected += 1
            throw .outOfMemory
        }
        #endif
    }
}
