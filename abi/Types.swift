// The values that cross the system call boundary besides numbers and errors: handles and their
// rights, user addresses, message layout, memory access, exit reasons, start flags and where
// user programs live.

/// A process's name for a kernel object: a slot in its handle table and the slot's generation.
/// 0 is never a valid handle, so it stands for "none" in arguments.
public struct Handle: Equatable, Sendable {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static let none = Handle(0)
    /// The reply handle of a call a thread took in registers while its reply slot was empty: it
    /// names that thread's slot, not a table entry (generation 0, which no table gives). Only
    /// that thread answers or closes it; no other call takes it. The kernel's ReplySlot has why.
    public static let replySlot = Handle(0xFFFF_FFFF)
}

/// What a handle allows. Rights only shrink when a handle is duplicated. Each call checks the
/// rights it needs on the handles it is given; a right means nothing on an object no call checks
/// it for.
public struct Rights: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let send = Rights(rawValue: 1 << 0)
    public static let receive = Rights(rawValue: 1 << 1)
    /// May be copied with `duplicate`.
    public static let duplicate = Rights(rawValue: 1 << 2)
    /// May be moved to another process inside a message.
    public static let transfer = Rights(rawValue: 1 << 3)
    public static let signal = Rights(rawValue: 1 << 4)
    public static let wait = Rights(rawValue: 1 << 5)
    /// May be mapped (memory objects).
    public static let map = Rights(rawValue: 1 << 6)
    public static let write = Rights(rawValue: 1 << 7)
    /// The one-time right to answer a call.
    public static let reply = Rights(rawValue: 1 << 8)
    /// May open the devices a device-access capability names (`deviceOpen`): the authority to
    /// drive hardware, which the kernel gives only to init.
    public static let open = Rights(rawValue: 1 << 9)
    /// May bind an interrupt to a notification and acknowledge it (`interruptBind`,
    /// `interruptAcknowledge`): what a driver needs of its device's interrupt.
    public static let bind = Rights(rawValue: 1 << 10)
    /// May build and end a process (`processMap`, `processStart`, `processGive`, `processKill`):
    /// what its loader and supervisor hold. Waiting for its end needs `wait`.
    public static let control = Rights(rawValue: 1 << 11)
    /// May charge memory objects to the process's memory account and read the account
    /// (`memoryCreate`, `memoryAccount`): what a memory manager holds for each client.
    public static let account = Rights(rawValue: 1 << 12)

    public static let all = Rights(rawValue: 0x1FFF)

    /// What the handle a creating call returns holds, by kind of object: every right that means
    /// something for it.
    public static let newPort: Rights = [.send, .receive, .duplicate, .transfer]
    public static let newNotification: Rights = [.signal, .wait, .duplicate, .transfer]
    public static let newMemory: Rights = [.map, .write, .duplicate, .transfer]
    public static let newProcess: Rights = [.control, .wait, .account, .duplicate, .transfer]
}

/// What kind of device a device-access capability names at an index (`deviceInfo`).
public enum DeviceKind: UInt64, Sendable {
    /// An Arm PL011 UART (the console).
    case uart = 1
    /// A virtio-mmio transport (virtio 1.x over MMIO); its registers say which device, if any,
    /// sits behind it.
    case virtioMMIO = 2
}

/// An address in the caller's address space, as a system call argument or result. The kernel
/// reaches the memory behind it only through its user-memory copies, which check it.
public struct UserAddress: Equatable, Sendable {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static let none = UserAddress(0)
    /// The address `bytes` further on (wrapping; the copies check the range).
    @inline(__always)
    public func advanced(by bytes: UInt64) -> UserAddress { UserAddress(value &+ bytes) }
}

/// A message as it crosses the system call boundary: 328 bytes at an 8-byte aligned address.
/// The kernel fills `sender` (the sending process's id, which the receiver can trust) and
/// `replyHandle` (for a call); handles listed in `handles` move from sender to receiver.
/// The offsets the kernel's assembly uses are checked against these at boot.
public enum IPCMessageLayout {
    public static let label = 0
    public static let length = 8
    public static let handleCount = 16
    public static let sender = 24
    public static let replyHandle = 32
    public static let handles = 40
    public static let payload = 72
    public static let size = 328
    public static let maximumPayload = 256
    public static let maximumHandles = 4
    /// The header (everything before the payload) in words.
    public static let headerWords = payload / 8
    /// The whole message in words.
    public static let words = size / 8
}

/// A message in registers (`callRegisters`, `replyReceiveRegisters`): a label and up to 64 bytes
/// of payload, no handles, moved from the sender's registers to the receiver's without passing
/// through memory. The payload's words travel in x9-x16, past x8 (the call number); words past
/// the length arrive as zero.
public enum RegisterMessageLayout {
    /// The registers of a message's fields (x0 holds the handle going in and the status coming out).
    public static let label = 1
    public static let length = 2
    /// Coming out of `replyReceiveRegisters`: the reply handle of a call (0 for a plain send;
    /// `Handle.replySlot` when the call went to the receiving thread's reply slot).
    public static let replyHandle = 3
    /// Coming out of `replyReceiveRegisters`: the sender's process id, written by the kernel.
    public static let sender = 4
    /// The first payload register; the payload's word `n` is in x(9 + n).
    public static let payload = 9
    public static let payloadWords = 8
    public static let maximumPayload = payloadWords * 8
}

/// Storage for one whole message, for user programs' message buffers (a host test checks its
/// size against `IPCMessageLayout.size`).
public typealias IPCMessageWords = InlineArray<41, UInt64>

/// How a process ended, as `wait` reports it.
public enum ExitReason: UInt64, Equatable, Sendable {
    /// It called `exit`; the code is its exit code.
    case exited = 0
    /// The kernel ended it for a fault; the code is the ESR of the fault.
    case faulted = 1
    /// Another process ended it with `kill`.
    case killed = 2
}

/// How `processWait` waits: bit 0 `poll`, do not wait. Any other bit is `invalidArgument`.
public struct ProcessWaitOptions: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let poll = ProcessWaitOptions(rawValue: 1 << 0)
}

/// Access for `map` and `memoryMap`: readable always; these bits add to it. Never writable and
/// executable.
public struct MemoryAccess: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let write = MemoryAccess(rawValue: 1 << 0)
    public static let execute = MemoryAccess(rawValue: 1 << 1)
}

/// How `memoryCreate` makes a memory object's pages.
public struct MemoryOptions: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Each page is taken and zeroed when it is first touched (by a mapping's load or store, a
    /// system call reaching it, `memoryWrite` or `memoryRead`), not when the object is made: for
    /// memory that may stay mostly untouched, such as a stack. Its pages are charged and set
    /// aside at once all the same, so a touch never fails. Never executable.
    public static let onDemand = MemoryOptions(rawValue: 1 << 0)
}

/// The start argument the kernel gives init: what the kernel command line asked the system to do.
public struct StartFlags: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// `test` on the command line: run the user-space test suite and end with its result.
    public static let runTests = StartFlags(rawValue: 1 << 0)
    /// `bench` on the command line: run the benchmarks (the PMU cycle counter is readable at EL0).
    public static let runBenchmarks = StartFlags(rawValue: 1 << 1)
    /// `fuzz` (or `fuzz=CALLS`) on the command line: run the system call fuzzer and end with its
    /// result; bits 8-63 of the start argument then carry its options (docs/FUZZING.md).
    public static let runFuzzer = StartFlags(rawValue: 1 << 2)

    /// `runBenchmarks` with `selection` in bits 8-15, which `benchmarks` reads back.
    public static func benchmarking(_ selection: BenchmarkSelection) -> StartFlags {
        StartFlags(rawValue: runBenchmarks.rawValue | selection.rawValue << 8)
    }

    /// With `runBenchmarks`: which benchmarks, from bits 8-15 (`bench=NAME` on the command line).
    public var benchmarks: BenchmarkSelection { BenchmarkSelection(rawValue: rawValue >> 8 & 0xFF) ?? .operations }

    /// `runFuzzer` with the campaign the command line asks for in bits 8-63.
    public static func fuzzing(_ request: FuzzerRequest) -> StartFlags {
        StartFlags(rawValue: runFuzzer.rawValue | request.packed << 8)
    }

    /// With `runFuzzer`: the campaign, packed as the fuzzer's start argument (`FuzzerRequest`).
    public var fuzzerArgument: UInt64 { rawValue >> 8 }

    /// `runTests` with `soak=N` on the command line: N kills of a service in the services' stage
    /// of the test run, in bits 8-63.
    public static func testing(serviceKills: UInt64) -> StartFlags {
        StartFlags(rawValue: runTests.rawValue | min(serviceKills, (1 << 56) - 1) << 8)
    }

    /// With `runTests`: the service kills asked for (0 without `soak=N`).
    public var serviceKills: UInt64 { rawValue >> 8 }
}

/// The fuzzing campaign `fuzz=CALLS seed=N fuzzflags=F` asks for (docs/FUZZING.md), packed into
/// one word that init passes on as the fuzzer's start argument: bits 0-11 flags, 12-35 calls,
/// 36-55 seed. The fuzzer's own argument (userland/services/fuzz/Options.swift) has the same
/// fields and adds a role above them, 0 (the driver) here.
public struct FuzzerRequest: Equatable, Sendable {
    public static let flagBits: UInt64 = 12
    public static let callBits: UInt64 = 24
    /// 20 bits: every seed a worker is given can be replayed as `seed=N`.
    public static let seedBits: UInt64 = 20

    public var flags: UInt64
    public var calls: UInt64
    public var seed: UInt64

    /// Flags and seed keep their low bits; a larger call count is cut to the largest there is.
    public init(flags: UInt64, calls: UInt64, seed: UInt64) {
        self.flags = flags & ((1 << Self.flagBits) - 1)
        self.calls = min(calls, (1 << Self.callBits) - 1)
        self.seed = seed & ((1 << Self.seedBits) - 1)
    }

    public var packed: UInt64 { seed << (Self.flagBits + Self.callBits) | calls << Self.flagBits | flags }
}

/// The benchmarks a `bench` boot runs (docs/BENCHMARKS.md).
public enum BenchmarkSelection: UInt64, Sendable {
    /// `bench`: the kernel's and user space's operations, in instructions per operation.
    case operations = 0
    /// `bench=cores`: call+reply between threads on two cores (needs two).
    case crossCore = 1
    /// `bench=scaling`: the same CPU-bound work in 1, 2 and 4 processes, in wall time (meant to
    /// run without icount, where the cores run in parallel).
    case scaling = 2
}

/// Where user programs live: the lower half of the address space, above the first page.
public enum UserSpace {
    public static let start: UInt64 = 0x1000
    public static let end: UInt64 = 0x0000_8000_0000_0000
    /// Initial stack of a program's first thread: 64 KiB below this address.
    public static let stackTop: UInt64 = 0x0000_7FFF_FFFF_0000
    public static let stackSize: UInt64 = 64 * 1024
    /// Where `map` places anonymous memory, growing upwards.
    public static let mapBase: UInt64 = 0x0000_1000_0000_0000

    /// Whether `[address, address + count)` lies inside user space.
    @inline(__always)
    public static func contains(_ address: UserAddress, count: UInt64) -> Bool {
        let (end, overflow) = address.value.addingReportingOverflow(count)
        return !overflow && address.value >= start && end <= self.end
    }
}

/// The longest record of the kernel log: `logRead` needs a buffer at least this large.
public let logRecordMaximum = 512

/// What `cpuStatistics` writes for one CPU: `CPUStatistics.size` bytes, eight words in this order,
/// each counted since the CPU came online.
public struct CPUStatistics: Equatable, Sendable {
    public static let words = 8
    public static let size = words * 8
    /// Timer ticks the CPU counted.
    public var ticks: UInt64
    /// Ticks that found its idle thread running: idle time, sampled.
    public var idleTicks: UInt64
    /// Thread switches on it.
    public var switches: UInt64
    /// System calls it took.
    public var systemCalls: UInt64
    /// Interrupts it handled (timer, devices and reschedule requests).
    public var interrupts: UInt64
    /// Reschedule interrupts it sent to other CPUs, and received from them.
    public var reschedulesSent: UInt64
    public var reschedulesReceived: UInt64
    /// Threads it took from other CPUs' run queues.
    public var steals: UInt64

    public init(ticks: UInt64 = 0, idleTicks: UInt64 = 0, switches: UInt64 = 0, systemCalls: UInt64 = 0,
                interrupts: UInt64 = 0, reschedulesSent: UInt64 = 0, reschedulesReceived: UInt64 = 0, steals: UInt64 = 0) {
        (self.ticks, self.idleTicks, self.switches, self.systemCalls) = (ticks, idleTicks, switches, systemCalls)
        (self.interrupts, self.reschedulesSent, self.reschedulesReceived, self.steals) =
            (interrupts, reschedulesSent, reschedulesReceived, steals)
    }

    /// Word `index` in the order above.
    public func word(_ index: Int) -> UInt64 {
        switch index {
        case 0: return ticks
        case 1: return idleTicks
        case 2: return switches
        case 3: return systemCalls
        case 4: return interrupts
        case 5: return reschedulesSent
        case 6: return reschedulesReceived
        default: return steals
        }
    }

    /// From the words in the order above (`words` of them at `base`).
    public init(words base: UnsafePointer<UInt64>) {
        self.init(ticks: base[0], idleTicks: base[1], switches: base[2], systemCalls: base[3], interrupts: base[4],
                  reschedulesSent: base[5], reschedulesReceived: base[6], steals: base[7])
    }
}
