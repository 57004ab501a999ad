// The oracles every call passes through. A call is made with every register the ABI preserves
// holding a fresh random value (FuzzRegisters.h), and afterwards: the status is 0 or a
// KernelError; x3-x30, SP and q0-q31 are unchanged; x1-x2 are unchanged when the call failed;
// and the outcome agrees with what the caller's model of its objects expects. A violation is
// printed with the call and counted; a worker with any exits non-zero.

import FuzzRegisters

/// What the model says about a call before it is made.
enum Expectation {
    /// Anything the ABI allows: the model cannot tell.
    case any
    case success
    /// Success, or an error that only says a resource ran out (memory, regions, handle slots).
    case successUnlessShort
    case failure
    case error(KernelError)
}

/// A call's status and values as the registers held them on return.
struct Outcome {
    let status: UInt64
    let value1: UInt64
    let value2: UInt64
    var succeeded: Bool { status == systemCallSuccess }
    var error: KernelError? { KernelError(rawValue: status) }
}

/// What a worker's threads share: counts, the driver's status page, and the console reports.
enum Report {
    nonisolated(unsafe) static var violations: UInt64 = 0
    nonisolated(unsafe) static var seed: UInt64 = 0
    nonisolated(unsafe) static var tracing = false
    /// The page the driver reads to follow this worker (Driver.StatusWord), if it gave one.
    nonisolated(unsafe) static var statusPage: UnsafeMutablePointer<UInt64>?
    /// Violations printed in full; after these only the count grows.
    static let printedViolations: UInt64 = 12

    static func violation(_ call: Int, _ number: UInt64, _ arguments: UnsafePointer<UInt64>, _ status: UInt64,
                          _ problem: FormattedText) {
        violations += 1
        statusPage?[Driver.StatusWord.violations.rawValue] = violations
        guard violations <= printedViolations else { return }
        System.print("fuzz: VIOLATION seed \(seed) call \(call): \(name(of: number))(\(hex: arguments[0]), \(hex: arguments[1]), \(hex: arguments[2]), \(hex: arguments[3])) = \(status)")
        var line = TextLine()
        line.write("fuzz:   ")
        problem.line.forEachByte { line.write(byte: $0) }
        System.print(FormattedText(line: line))
    }

    /// A problem found outside a call (memory contents, a child's end).
    static func violation(_ problem: FormattedText) {
        violations += 1
        statusPage?[Driver.StatusWord.violations.rawValue] = violations
        guard violations <= printedViolations else { return }
        var line = TextLine()
        line.write("fuzz: VIOLATION seed ")
        line.writeDecimal(seed)
        line.write(": ")
        problem.line.forEachByte { line.write(byte: $0) }
        System.print(FormattedText(line: line))
    }
}

/// One thread's calls under the oracles, through its own register record.
struct Caller {
    /// fuzz_register_record as words: registers before at 0, after at 32, vectors before at 64
    /// and after at 128.
    let words: UnsafeMutablePointer<UInt64>
    var random: Random
    /// Calls this caller made.
    private(set) var count = 0
    /// Whether this caller publishes its calls on the status page (the worker's main thread).
    let publishes: Bool
    /// Which thread this is, in traces.
    let tag: StaticString

    /// Words in a register record (fuzz_register_record).
    static let recordWords = 192

    /// A caller with its record at `words` (allocated beforehand: threads must not allocate).
    init(words: UnsafeMutablePointer<UInt64>, seed: UInt64, tag: StaticString, publishes: Bool = false) {
        self.words = words
        self.tag = tag
        words.initialize(repeating: 0, count: Self.recordWords)
        random = Random(seed: seed)
        self.publishes = publishes
    }

    static func allocateRecords(_ count: Int) -> UnsafeMutablePointer<UInt64> {
        UnsafeMutablePointer<UInt64>.allocate(capacity: count * recordWords)
    }

    /// Makes call `number` with x0-x5 = `arguments`, checks it, and returns its outcome.
    mutating func make(_ number: UInt64, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0,
                       _ a4: UInt64 = 0, _ a5: UInt64 = 0, expect: Expectation = .any) -> Outcome {
        let before = words
        let after = words + 32
        for index in 0..<31 { before[index] = random.next() }
        (before[0], before[1], before[2], before[3], before[4], before[5]) = (a0, a1, a2, a3, a4, a5)
        before[8] = number
        // The vectors need not be independent values, only unlikely ones.
        let base = random.next() | 1
        for index in 0..<64 { words[64 + index] = base &* UInt64(index + 3) }
        count += 1
        if publishes, let page = Report.statusPage {
            page[Driver.StatusWord.number.rawValue] = number
            page[Driver.StatusWord.argument0.rawValue] = a0
            page[Driver.StatusWord.argument1.rawValue] = a1
            page[Driver.StatusWord.argument2.rawValue] = a2
            page[Driver.StatusWord.argument3.rawValue] = a3
            page[Driver.StatusWord.progress.rawValue] = UInt64(count)
            let entry = page + Driver.recorderStart + count % Driver.recorderEntries * Driver.recorderWords
            (entry[0], entry[1], entry[2], entry[3], entry[4], entry[5]) = (number, a0, a1, a2, a3, UInt64.max)
        }
        fuzz_recorded_system_call(UnsafeMutablePointer<fuzz_register_record>(OpaquePointer(words)))
        let outcome = Outcome(status: after[0], value1: after[1], value2: after[2])
        if publishes, let page = Report.statusPage {
            // The flight recorder: the driver prints the last calls of a worker that failed.
            let entry = page + Driver.recorderStart + count % Driver.recorderEntries * Driver.recorderWords
            (entry[0], entry[1], entry[2], entry[3], entry[4], entry[5]) = (number, a0, a1, a2, a3, outcome.status)
        }
        if Report.tracing {
            System.print("fuzz: \(Report.seed) \(tag) \(count) \(name(of: number))(\(hex: a0), \(hex: a1), \(hex: a2), \(hex: a3)) = \(outcome.status) \(hex: outcome.value1) \(hex: outcome.value2)")
        }
        check(number, outcome, expect)
        return outcome
    }

    /// Judges a request that is no single call (`spawn`, which the runtime's loader makes of
    /// several) against `expect`, as `make` judges a call's status.
    mutating func judge(_ what: StaticString, _ outcome: Outcome, _ expect: Expectation) {
        count += 1
        if let problem = Self.unmet(expect, status: outcome.status) {
            Report.violation("\(what) = \(outcome.status): \(problem)")
        }
    }

    /// What is wrong with `status` if `expect` does not allow it.
    static func unmet(_ expect: Expectation, status: UInt64) -> FormattedText? {
        switch expect {
        case .any:
            return nil
        case .success:
            return status != systemCallSuccess ? "expected success" : nil
        case .successUnlessShort:
            return status != systemCallSuccess && status != KernelError.outOfMemory.rawValue
                && status != KernelError.handleTableFull.rawValue ? "expected success or a shortage" : nil
        case .failure:
            return status == systemCallSuccess ? "an impossible request succeeded" : nil
        case .error(let error):
            return status != error.rawValue ? "expected \(error)" : nil
        }
    }

    private func check(_ number: UInt64, _ outcome: Outcome, _ expect: Expectation) {
        let before = words
        let after = words + 32
        let status = outcome.status
        if status != systemCallSuccess && KernelError(rawValue: status) == nil {
            Report.violation(count, number, before, status, "status \(status) is neither 0 nor a KernelError")
        }
        for index in 3...30 where after[index] != before[index] {
            Report.violation(count, number, before, status,
                             "x\(index) not preserved: \(hex: before[index]) before, \(hex: after[index]) after")
        }
        if after[31] != before[31] {
            Report.violation(count, number, before, status, "SP not preserved: \(hex: before[31]) before, \(hex: after[31]) after")
        }
        if status != systemCallSuccess && (after[1] != before[1] || after[2] != before[2]) {
            Report.violation(count, number, before, status,
                             "x1-x2 changed by a failed call: \(hex: before[1]) \(hex: before[2]) before, \(hex: after[1]) \(hex: after[2]) after")
        }
        for index in 0..<64 where words[128 + index] != words[64 + index] {
            Report.violation(count, number, before, status,
                             "q\(index / 2) not preserved (\(index % 2 == 0 ? "low" : "high") half \(hex: words[64 + index]) before, \(hex: words[128 + index]) after)")
            break
        }
        if let problem = Self.unmet(expect, status: status) { Report.violation(count, number, before, status, problem) }
    }
}

/// A call's name for reports; numbers the ABI does not know print as "unknown".
func name(of number: UInt64) -> StaticString {
    guard let call = SystemCallNumber(rawValue: number) else { return "unknown" }
    switch call {
    case .null: return "null"
    case .clock: return "clock"
    case .debugWrite: return "debugWrite"
    case .exit: return "exit"
    case .yield: return "yield"
    case .sleep: return "sleep"
    case .processID: return "processID"
    case .threadID: return "threadID"
    case .retired8: return "retired8"
    case .wait: return "wait"
    case .kill: return "kill"
    case .map: return "map"
    case .unmap: return "unmap"
    case .memoryStatistics: return "memoryStatistics"
    case .processStatistics: return "processStatistics"
    case .portCreate: return "portCreate"
    case .notificationCreate: return "notificationCreate"
    case .handleClose: return "handleClose"
    case .handleDuplicate: return "handleDuplicate"
    case .send: return "send"
    case .receive: return "receive"
    case .call: return "call"
    case .reply: return "reply"
    case .notificationSignal: return "notificationSignal"
    case .notificationWait: return "notificationWait"
    case .memoryCreate: return "memoryCreate"
    case .memoryMap: return "memoryMap"
    case .waitAny: return "waitAny"
    case .threadCreate: return "threadCreate"
    case .threadExit: return "threadExit"
    case .kernelStatistics: return "kernelStatistics"
    case .deviceOpen: return "deviceOpen"
    case .interruptBind: return "interruptBind"
    case .interruptAcknowledge: return "interruptAcknowledge"
    case .replyReceive: return "replyReceive"
    case .memoryAccount: return "memoryAccount"
    case .kernelObjects: return "kernelObjects"
    case .processCreate: return "processCreate"
    case .processMap: return "processMap"
    case .processStart: return "processStart"
    case .processGive: return "processGive"
    case .processWait: return "processWait"
    case .processKill: return "processKill"
    case .processNotify: return "processNotify"
    case .ipcStatistics: return "ipcStatistics"
    case .processInfo: return "processInfo"
    case .logOpen: return "logOpen"
    case .logRead: return "logRead"
    case .threadAffinity: return "threadAffinity"
    case .cpuStatistics: return "cpuStatistics"
    case .deviceInfo: return "deviceInfo"
    case .dmaCreate: return "dmaCreate"
    case .threadPriority: return "threadPriority"
    case .callRegisters: return "callRegisters"
    case .replyReceiveRegisters: return "replyReceiveRegisters"
    case .memoryWrite: return "memoryWrite"
    case .memoryRead: return "memoryRead"
    case .portStatistics: return "portStatistics"
    }
}

/// Formatted text inside other formatted text (a call's description inside a report).
extension FormattedText: TextDescribable {
    public func describe<Output: TextOutput>(into output: inout Output) { line.forEachByte { output.write(byte: $0) } }
}
