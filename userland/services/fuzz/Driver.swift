// The driver: runs the campaign as workers (this program, role worker), several at once, each
// with its own seed derived from the driver's and a time budget. A waiter thread per slot sits in
// `wait` for its worker and signals the driver, which meanwhile kills any worker past its budget
// (a hang). Each worker reports through a status page the driver maps (its calls, processes,
// violations, and the call it is in). At the end, with every worker reaped, the free frames, the
// kernel heap's blocks and the live processes must be what they were at the start.

struct Driver {
    /// The words of a worker's status page.
    enum StatusWord: Int {
        case calls = 0
        case processes
        case violations
        case number
        case argument0
        case argument1
        case argument2
        case argument3
        /// Calls the worker's main thread has made: it stalls when this stops growing.
        case progress
    }

    /// Where in the status page the last calls of the main thread are kept: entries of number,
    /// four arguments and status, the call numbered n at n % recorderEntries.
    static let recorderStart = 16
    static let recorderEntries = 32
    static let recorderWords = 6
    /// How many of them a report shows.
    static let reportedCalls = 12

    static let slots = 4
    static let callsPerWorker: UInt64 = 25_000
    /// A worker hangs when its main thread makes no call for this long (no call it makes takes
    /// more than a few seconds), or when it overruns its budget: a fixed part and a part per call
    /// for each worker running at once, several times what a worker needs (docs/FUZZING.md).
    static let stallSeconds: UInt64 = 10
    static let budgetSeconds: UInt64 = 30
    static let budgetMicrosecondsPerCall: UInt64 = 1000

    // Shared with the waiter threads; each slot's entries are written by one side at a time.
    nonisolated(unsafe) static var pids = InlineArray<4, UInt64>(repeating: 0)
    nonisolated(unsafe) static var reasons = InlineArray<4, UInt64>(repeating: 0)
    nonisolated(unsafe) static var codes = InlineArray<4, UInt64>(repeating: 0)
    nonisolated(unsafe) static var waitFailed = InlineArray<4, Bool>(repeating: false)
    nonisolated(unsafe) static var bells = InlineArray<4, Handle>(repeating: .none)
    nonisolated(unsafe) static var done = Handle.none

    let options: FuzzOptions
    let workers: UInt64
    let slotCount: Int
    let frequency: UInt64
    var statusMemory = InlineArray<4, Handle>(repeating: .none)
    var statusPages = InlineArray<4, UnsafeMutablePointer<UInt64>?>(repeating: nil)
    var workerIndex = InlineArray<4, UInt64>(repeating: 0)
    var workerSeeds = InlineArray<4, UInt64>(repeating: 0)
    var workerCalls = InlineArray<4, UInt64>(repeating: 0)
    var workerFlags = InlineArray<4, FuzzFlags>(repeating: [])
    var deadlines = InlineArray<4, UInt64>(repeating: 0)
    var lastProgress = InlineArray<4, UInt64>(repeating: 0)
    var progressAt = InlineArray<4, UInt64>(repeating: 0)
    var killed = InlineArray<4, Bool>(repeating: false)
    var workerAttempts = InlineArray<4, Int>(repeating: 0)
    var calls: UInt64 = 0
    var processes: UInt64 = 0
    var hangs: UInt64 = 0
    var failures: UInt64 = 0
    /// The next worker that has not been tried.
    var next: UInt64 = 0
    /// Workers to start again, with the attempts made: those that found memory out, at their
    /// start or in their set-up (another worker's exhaustion episode runs the machine out on
    /// purpose). A worker that has found it out `maximumAttempts` times is a failure.
    var retries = InlineArray<8, (index: UInt64, attempts: Int)>(repeating: (0, 0))
    var retryCount = 0
    /// About 30 s of looking every 100 ms: far longer than an exhaustion episode lasts.
    static let maximumAttempts = 300

    static func run(_ options: FuzzOptions) -> UInt64 {
        var driver = Driver(options)
        return driver.campaign()
    }

    init(_ options: FuzzOptions) {
        self.options = options
        let total = max(options.calls, 1)
        workers = options.flags.contains(.singleWorker) ? 1 : (total + Self.callsPerWorker - 1) / Self.callsPerWorker
        slotCount = Int(min(UInt64(Self.slots), workers))
        frequency = System.clock.frequency
    }

    mutating func campaign() -> UInt64 {
        System.print("fuzz: seed \(options.seed), \(options.calls) calls in \(workers) workers, \(slotCount) at a time, flags \(hex: options.flags.rawValue, digits: 2)")
        guard setUp() else {
            System.print("fuzz: the driver could not set itself up")
            return 1
        }
        // Everything the driver keeps for the campaign exists now: the baseline.
        let framesBefore = System.memory.freeFrames
        let heapBefore = System.kernelHeap
        let processesBefore = System.processes.live
        let objectsBefore = Self.kernelObjects()
        let started = System.clock.ticks

        var running = 0
        while next < workers || retryCount > 0 || running > 0 {
            var deferred = false
            for slot in 0..<slotCount where Self.pids[slot] == 0 {
                guard let (index, attempts) = takeWorker() else { break }
                switch start(index, attempt: attempts, in: slot) {
                case .started: running += 1
                case .failed: break
                case .deferred:
                    retry(index, attempts: attempts + 1)
                    deferred = true
                }
                if deferred { break }
            }
            guard running > 0 else {
                // Nothing runs to give memory back: wait a little before the next attempt.
                if deferred { System.sleep(nanoseconds: 100_000_000) }
                continue
            }
            // Looks every 100 ms at the workers. Not with a timed wait: when the kernel's queue
            // of deadlines is full, a timed wait may never end (a deadline flood makes it so),
            // where a sleep says it could not be armed and returns.
            var finished = (try? IPC.wait(Self.done, timeout: 0)) ?? 0
            if finished == 0 {
                do throws(KernelError) {
                    _ = try System.invoke(SystemCall.Sleep(nanoseconds: 100_000_000))
                } catch {
                    System.yield()
                }
                finished = (try? IPC.wait(Self.done, timeout: 0)) ?? 0
            }
            for slot in 0..<slotCount where finished & 1 << UInt64(slot) != 0 {
                collect(slot)
                running -= 1
            }
            let now = System.clock.ticks
            for slot in 0..<slotCount where Self.pids[slot] != 0 && !killed[slot] {
                let progress = statusPages[slot]![StatusWord.progress.rawValue]
                if progress != lastProgress[slot] {
                    lastProgress[slot] = progress
                    progressAt[slot] = now
                }
                guard now >= deadlines[slot] || now - progressAt[slot] >= Self.stallSeconds * frequency else { continue }
                reportHang(slot)
                killed[slot] = true
                try? System.kill(ProcessID(Self.pids[slot]))
            }
        }
        let elapsed = System.clock.elapsed(sinceTicks: started, perSecond: 1000)

        // Children of killed workers end by themselves once orphaned; give them the time to.
        var waited = 0
        while System.processes.live != processesBefore && waited < 250 {
            System.sleep(nanoseconds: 20_000_000)
            waited += 1
        }
        // The last workers' threads go back as their CPUs next switch: looked at until all is
        // back, for up to a second. A leak is what stays.
        let (framesAfter, heapAfter, objectsAfter) = MachineReading.settled(looks: 101, until: { reading in
            reading.0 &+ reading.1.pages == framesBefore &+ heapBefore.pages && reading.1.blocks == heapBefore.blocks
                && reading.2.objects == objectsBefore.objects && reading.2.charged == objectsBefore.charged
        }) { (System.memory.freeFrames, System.kernelHeap, Self.kernelObjects()) }
        let processesAfter = System.processes.live
        // A frame is free or held by the kernel heap (as warm slabs, say): any other is leaked.
        let leakedFrames = Int64(bitPattern: framesBefore &+ heapBefore.pages &- framesAfter &- heapAfter.pages)
        let leakedObjects = Int64(bitPattern: heapAfter.blocks &- heapBefore.blocks)
        System.print("fuzz: \(workers) workers in \(elapsed) ms; free frames \(framesBefore) + heap pages \(heapBefore.pages) before, \(framesAfter) + \(heapAfter.pages) after; heap blocks \(heapBefore.blocks) before, \(heapAfter.blocks) after; live processes \(processesBefore) before, \(processesAfter) after")
        System.print("fuzz: kernel objects \(objectsBefore.objects) before, \(objectsAfter.objects) after; bytes charged \(objectsBefore.charged) before, \(objectsAfter.charged) after")
        System.print("fuzz: \(calls) calls, \(processes) processes, 0 kernel panics, \(hangs) hangs, leaked frames \(leakedFrames), leaked objects \(leakedObjects)")
        let clean = failures == 0 && hangs == 0 && leakedFrames == 0 && leakedObjects == 0 && processesAfter == processesBefore
            && objectsAfter.objects == objectsBefore.objects && objectsAfter.charged == objectsBefore.charged
        return clean ? 0 : 1
    }

    /// The kernel's own count of live objects and of bytes charged to processes.
    static func kernelObjects() -> (objects: UInt64, charged: UInt64) {
        guard let result = try? System.invoke(SystemCall.KernelObjects()) else { return (0, 0) }
        return (result.objects, result.chargedBytes)
    }

    /// Per slot: a status memory object mapped here, a notification to start its waiter, and
    /// the waiter; one notification for all waiters to report on.
    mutating func setUp() -> Bool {
        // The loader the workers are spawned with (the ramdisk mapped, its directory's page) is
        // kept for the campaign: made now, it is in the baseline.
        guard System.prepareSpawn(), let done = try? IPC.createNotification() else { return false }
        Self.done = done
        for slot in 0..<slotCount {
            guard let memory = try? IPC.createMemory(bytes: pageSize), let page = try? IPC.map(memory, writable: true),
                  let bell = try? IPC.createNotification() else { return false }
            statusMemory[slot] = memory
            statusPages[slot] = page.assumingMemoryBound(to: UInt64.self)
            Self.bells[slot] = bell
            guard (try? System.createThread(stackBytes: 16 << 10, argument: UInt64(slot), { slot in Driver.waiter(Int(slot)) })) != nil
            else { return false }
        }
        return true
    }

    /// A waiter thread: for each worker of its slot, waits for its end and reports it.
    static func waiter(_ slot: Int) {
        while true {
            _ = try? IPC.wait(bells[slot])
            do throws(KernelError) {
                let status = try System.wait(ProcessID(pids[slot]))
                reasons[slot] = status.reason.rawValue
                codes[slot] = status.code
                waitFailed[slot] = false
            } catch {
                waitFailed[slot] = true
            }
            try? IPC.signal(done, bits: 1 << UInt64(slot))
        }
    }

    enum StartOutcome {
        case started
        /// Counted as a failure.
        case failed
        /// Memory was out: to be tried again.
        case deferred
    }

    /// The worker to start next, and the attempts made at it: one to try again first.
    mutating func takeWorker() -> (UInt64, Int)? {
        if retryCount > 0 {
            retryCount -= 1
            let (index, attempts) = retries[retryCount]
            return (index, attempts)
        }
        guard next < workers else { return nil }
        next += 1
        return (next - 1, 0)
    }

    /// Keeps worker `index` to start again, unless it has been tried often enough (a failure).
    mutating func retry(_ index: UInt64, attempts: Int) {
        guard attempts < Self.maximumAttempts, retryCount < retries.count else {
            System.print("fuzz: worker \(index) found memory out \(attempts) times; given up")
            failures += 1
            return
        }
        if attempts == 1 { System.print("fuzz: worker \(index) found memory out; started again later") }
        retries[retryCount] = (index, attempts)
        retryCount += 1
    }

    /// Starts worker `index` in `slot`, `attempt` times tried before.
    mutating func start(_ index: UInt64, attempt: Int, in slot: Int) -> StartOutcome {
        let single = options.flags.contains(.singleWorker)
        let seed = single ? options.seed : derivedSeed(options.seed, index) & FuzzOptions.replayableSeedMask
        let total = max(options.calls, 1)
        let share = total / workers + (index < total % workers ? 1 : 0)
        // One worker in every `slots` runs memory out: more would only wait for each other.
        var flags = options.flags
        if index % UInt64(Self.slots) != 0 { flags.insert(.noExhaustion) }
        let argument = FuzzOptions(role: .worker, flags: flags, calls: share, seed: seed).argument
        guard let page = statusPages[slot] else { return .failed }
        for word in 0..<Self.recorderStart + Self.recorderEntries * Self.recorderWords { page[word] = 0 }
        let worker: ChildProcess
        do throws(KernelError) {
            let handle = try IPC.duplicate(statusMemory[slot], rights: [.map, .write, .transfer])
            do throws(KernelError) {
                worker = try System.spawn("fuzz", argument: argument, handle: handle)
            } catch {
                // The handle that was to move stays here.
                try? IPC.close(handle)
                throw error
            }
        } catch {
            if error == .outOfMemory { return .deferred }
            System.print("fuzz: worker \(index) (seed \(seed)) could not start: \(error)")
            failures += 1
            return .failed
        }
        do throws(KernelError) {
            // Known by id from here: the waiter threads collect workers with `wait`.
            try? IPC.close(worker.process)
            workerIndex[slot] = index
            workerAttempts[slot] = attempt
            workerSeeds[slot] = seed
            workerCalls[slot] = share
            workerFlags[slot] = flags
            killed[slot] = false
            lastProgress[slot] = 0
            progressAt[slot] = System.clock.ticks
            deadlines[slot] = System.clock.ticks
                + (Self.budgetSeconds * 1_000_000 + share * UInt64(slotCount) * Self.budgetMicrosecondsPerCall)
                * (frequency / 1_000_000)
            Self.pids[slot] = worker.id.value
            try IPC.signal(Self.bells[slot], bits: 1)
            return .started
        } catch {
            System.print("fuzz: worker \(index) (seed \(seed)) started, but its waiter could not be told: \(error)")
            failures += 1
            return .failed
        }
    }

    /// A worker ended: its figures join the totals and its end is judged.
    mutating func collect(_ slot: Int) {
        let page = statusPages[slot]!
        let (seed, share) = (workerSeeds[slot], workerCalls[slot])
        let violations = page[StatusWord.violations.rawValue]
        calls += page[StatusWord.calls.rawValue]
        processes += max(page[StatusWord.processes.rawValue], 1)
        let reason = Self.reasons[slot]
        let code = Self.codes[slot]
        if Self.waitFailed[slot] {
            System.print("fuzz: worker seed \(seed): wait failed")
            failures += 1
        } else if killed[slot] {
            hangs += 1
        } else if reason == ExitReason.exited.rawValue && violations == 0
                    && (code == Worker.setUpFailed
                        || code == System.outOfMemoryExitCode && page[StatusWord.calls.rawValue] == 0) {
            // Memory was out while it set itself up (its heap could not grow, or a call failed):
            // not a finding; it runs again.
            retry(workerIndex[slot], attempts: workerAttempts[slot] + 1)
        } else if reason == ExitReason.faulted.rawValue {
            System.print("fuzz: worker seed \(seed) (\(share) calls) faulted, ESR \(hex: code), at call \(page[StatusWord.calls.rawValue]): \(callText(page)); \(replay(slot))")
            printRecorder(page)
            failures += 1
        } else if reason != ExitReason.exited.rawValue || code != 0 || violations != 0 {
            System.print("fuzz: worker seed \(seed) (\(share) calls) ended with reason \(reason), code \(code), \(violations) violations; \(replay(slot))")
            failures += 1
        }
        Self.pids[slot] = 0
    }

    func reportHang(_ slot: Int) {
        let page = statusPages[slot]!
        let (seed, share) = (workerSeeds[slot], workerCalls[slot])
        System.print("fuzz: worker seed \(seed) (\(share) calls) hung at call \(page[StatusWord.calls.rawValue]): \(callText(page)); \(replay(slot))")
        printRecorder(page)
    }

    /// The last calls of a worker's main thread, oldest first, the unfinished one last.
    func printRecorder(_ page: UnsafeMutablePointer<UInt64>) {
        let made = page[StatusWord.progress.rawValue]
        let first = made > UInt64(Self.reportedCalls) ? made - UInt64(Self.reportedCalls) + 1 : 1
        guard made >= first else { return }
        for number in first...made {
            let entry = page + Self.recorderStart + Int(number % UInt64(Self.recorderEntries)) * Self.recorderWords
            let status: FormattedText = number == made && entry[5] == UInt64.max ? "(in progress)" : "\(entry[5])"
            System.print("fuzz:   main \(number) \(name(of: entry[0]))(\(hex: entry[1]), \(hex: entry[2]), \(hex: entry[3]), \(hex: entry[4])) = \(status)")
        }
    }

    /// The kernel command line that runs this slot's worker alone.
    func replay(_ slot: Int) -> FormattedText {
        "replay: fuzz=\(workerCalls[slot]) seed=\(workerSeeds[slot]) fuzzflags=\(workerFlags[slot].rawValue | FuzzFlags.singleWorker.rawValue)"
    }

    /// The call a worker was last in, from its status page.
    func callText(_ page: UnsafeMutablePointer<UInt64>) -> FormattedText {
        "\(name(of: page[StatusWord.number.rawValue]))(\(hex: page[StatusWord.argument0.rawValue]), \(hex: page[StatusWord.argument1.rawValue]), \(hex: page[StatusWord.argument2.rawValue]), \(hex: page[StatusWord.argument3.rawValue]))"
    }
}
