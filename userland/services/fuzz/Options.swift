// The fuzzer's start argument: one word that says which role this copy plays and how. init
// passes the kernel command line's `fuzz=CALLS seed=N fuzzflags=F` here (the kernel packs them as
// the ABI's `FuzzerRequest`), and the driver and workers pass the same layout on to their own
// children.

/// Which copy of the fuzzer this is.
enum Role: UInt64 {
    case driver = 0
    case worker = 1
    case child = 2
}

/// Classes of calls that can be left out of a campaign, and switches for replaying one. Each
/// class makes situations a kernel has got wrong (docs/FUZZING.md).
struct FuzzFlags: OptionSet {
    let rawValue: UInt64
    /// No memory exhaustion: mapping until `outOfMemory`, then creating kernel objects.
    static let noExhaustion = FuzzFlags(rawValue: 1 << 0)
    /// No reference cycles: a port's receive right sent into its own queue (or two ports' into
    /// each other's), then every other handle closed.
    static let noCycles = FuzzFlags(rawValue: 1 << 1)
    /// No calls to the worker's own server while the handle table it shares is full.
    static let noFullServer = FuzzFlags(rawValue: 1 << 2)
    /// No probes that unmap ranges `map` never returned (a fresh process's stack, text, data).
    static let noStrayUnmap = FuzzFlags(rawValue: 1 << 3)
    /// No floods of sleeping threads, here and in children, that fill the kernel's queue of
    /// pending deadlines while the worker waits with a timeout.
    static let noDeadlineFlood = FuzzFlags(rawValue: 1 << 4)
    /// No memory objects created while memory is out (in the exhaustion episode).
    static let noMemoryObjectsWhenOut = FuzzFlags(rawValue: 1 << 5)
    /// No floods of processes that fill the kernel's process table.
    static let noProcessFlood = FuzzFlags(rawValue: 1 << 6)
    /// Every class above: a campaign of the calls no known kernel bug stops.
    static let allClasses = FuzzFlags(rawValue: 0x7F)
    /// Print every call a worker makes, for replaying a failure.
    static let trace = FuzzFlags(rawValue: 1 << 10)
    /// The driver runs one worker, seeded with the driver's own seed: a replay of that worker.
    static let singleWorker = FuzzFlags(rawValue: 1 << 11)
}

/// Bits 0-11 flags, 12-35 calls, 36-61 seed, 62-63 role: the ABI's `FuzzerRequest`, which the
/// kernel packs from its command line, with room for a child's wider parameter in `seed` and the
/// role above. For a child, `calls` names its kind and `seed` carries its parameter.
struct FuzzOptions {
    var role: Role
    var flags: FuzzFlags
    var calls: UInt64
    var seed: UInt64

    static let callBits = FuzzerRequest.callBits
    static let seedBits: UInt64 = 26
    private static let callShift = FuzzerRequest.flagBits
    private static let seedShift = FuzzerRequest.flagBits + FuzzerRequest.callBits
    /// Seeds a worker gets, and the seeds the kernel command line can give, so that a worker's
    /// seed replays as `seed=N`.
    static let replayableSeedMask: UInt64 = (1 << FuzzerRequest.seedBits) - 1

    init(role: Role, flags: FuzzFlags, calls: UInt64, seed: UInt64) {
        self.role = role
        self.flags = flags
        self.calls = calls & ((1 << Self.callBits) - 1)
        self.seed = seed & ((1 << Self.seedBits) - 1)
    }

    init(argument: UInt64) {
        self.init(role: Role(rawValue: argument >> 62) ?? .driver,
                  flags: FuzzFlags(rawValue: argument & ((1 << FuzzerRequest.flagBits) - 1)),
                  calls: argument >> Self.callShift, seed: argument >> Self.seedShift)
    }

    var argument: UInt64 { role.rawValue << 62 | seed << Self.seedShift | calls << Self.callShift | flags.rawValue }
}
