import Foundation
import Testing
import ABI

/// docs/SYSCALLS.md must describe exactly the ABI: numbers, names, errors, and the register of
/// every argument and result field.
@Suite struct SystemCallABITests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/SYSCALLS.md"), encoding: .utf8)) ?? ""
    }()

    /// Cells of the rows `| value | ... |` of the table under `heading`, by row value.
    static func rows(under heading: String) -> [(UInt64, [String])] {
        guard let start = document.range(of: "## \(heading)\n") else { return [] }
        var result: [(UInt64, [String])] = []
        for line in document[start.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.count >= 2, let value = UInt64(cells[0]) { result.append((value, Array(cells.dropFirst()))) }
        }
        return result
    }

    /// Every call's argument struct, by number: the table the kernel's dispatch switch mirrors.
    static let calls: [any SystemCallArguments.Type] = [
        SystemCall.Null.self, SystemCall.Clock.self, SystemCall.DebugWrite.self, SystemCall.Exit.self,
        SystemCall.Yield.self, SystemCall.Sleep.self, SystemCall.ProcessID.self, SystemCall.ThreadID.self,
        SystemCall.Wait.self, SystemCall.Kill.self, SystemCall.Map.self, SystemCall.Unmap.self,
        SystemCall.MemoryStatistics.self, SystemCall.ProcessStatistics.self, SystemCall.PortCreate.self,
        SystemCall.NotificationCreate.self, SystemCall.HandleClose.self, SystemCall.HandleDuplicate.self,
        SystemCall.Send.self, SystemCall.Receive.self, SystemCall.Call.self, SystemCall.Reply.self,
        SystemCall.NotificationSignal.self, SystemCall.NotificationWait.self, SystemCall.MemoryCreate.self,
        SystemCall.MemoryMap.self, SystemCall.WaitAny.self, SystemCall.ThreadCreate.self, SystemCall.ThreadExit.self,
        SystemCall.KernelStatistics.self, SystemCall.DeviceOpen.self, SystemCall.InterruptBind.self,
        SystemCall.InterruptAcknowledge.self, SystemCall.ReplyReceive.self, SystemCall.MemoryAccount.self,
        SystemCall.KernelObjects.self,
        SystemCall.ProcessCreate.self, SystemCall.ProcessMap.self, SystemCall.ProcessStart.self, SystemCall.ProcessGive.self,
        SystemCall.ProcessWait.self, SystemCall.ProcessKill.self, SystemCall.ProcessNotify.self,
        SystemCall.IPCStatistics.self, SystemCall.ProcessInfo.self, SystemCall.LogOpen.self, SystemCall.LogRead.self,
        SystemCall.ThreadAffinity.self, SystemCall.CPUStatisticsRead.self, SystemCall.DeviceInfo.self,
        SystemCall.DMACreate.self, SystemCall.ThreadPriority.self, SystemCall.CallRegisters.self,
        SystemCall.ReplyReceiveRegisters.self, SystemCall.MemoryWrite.self, SystemCall.MemoryRead.self,
        SystemCall.PortStatistics.self,
    ]

    /// The word a field puts in its register.
    static func word(_ value: Any) -> UInt64? {
        switch value {
        case let value as UInt64: return value
        case let value as Handle: return value.value
        case let value as UserAddress: return value.value
        case let value as Rights: return value.rawValue
        case let value as MemoryAccess: return value.rawValue
        case let value as MemoryOptions: return value.rawValue
        case let value as ExitReason: return value.rawValue
        case let value as ProcessWaitOptions: return value.rawValue
        default: return nil
        }
    }

    /// Which register each field of `value` comes from: decoded from registers that are all
    /// zero but one, set to 1, the field that reads 1 is that register's.
    static func fieldRegisters<Value>(decode: (Int) -> Value) -> [String: Int] {
        var result: [String: Int] = [:]
        for register in 0..<6 {
            for child in Mirror(reflecting: decode(register)).children {
                guard let label = child.label, let word = word(child.value) else { continue }
                if word == 1 { result[label] = register }
            }
        }
        return result
    }

    static func argumentRegisters(_ type: any SystemCallArguments.Type) -> [String: Int] {
        fieldRegisters { register in
            var registers = ArgumentRegisters()
            switch register {
            case 0: registers.x0 = 1
            case 1: registers.x1 = 1
            case 2: registers.x2 = 1
            case 3: registers.x3 = 1
            case 4: registers.x4 = 1
            default: registers.x5 = 1
            }
            return type.init(registers: registers)
        }
    }

    static func resultRegisters(_ type: any SystemCallArguments.Type) -> [String: Int] {
        func decode<Call: SystemCallArguments>(_: Call.Type) -> [String: Int] {
            fieldRegisters { register in
                Call.Result(registers: ResultRegisters(x1: register == 1 ? 1 : 0, x2: register == 2 ? 1 : 0))
            }
        }
        return decode(type)
    }

    /// `xN = \`field\`` pairs in a table cell.
    static func documentedRegisters(_ cell: String) -> [String: Int] {
        let pattern = try! NSRegularExpression(pattern: "x([0-5]) = `(\\w+)`")
        var result: [String: Int] = [:]
        for match in pattern.matches(in: cell, range: NSRange(cell.startIndex..., in: cell)) {
            let register = Int(cell[Range(match.range(at: 1), in: cell)!])!
            result[String(cell[Range(match.range(at: 2), in: cell)!])] = register
        }
        return result
    }

    @Test func documentIsPresent() {
        #expect(Self.document.contains("## Calling convention"))
    }

    @Test func callsMatchTheABI() {
        let documented = Self.rows(under: "Calls")
        let defined = SystemCallNumber.allCases.map { ($0.rawValue, "\($0)") }
        #expect(documented.map(\.0) == defined.map(\.0))
        #expect(documented.map { $0.1.first ?? "" } == defined.map(\.1))
    }

    /// Numbers kept only so that the numbers stay one range; the kernel answers them with
    /// unknownSystemCall.
    static let retired: [SystemCallNumber] = [.retired8]

    @Test func everyCallHasOneArgumentStruct() {
        #expect(Self.calls.map { $0.number } == SystemCallNumber.allCases.filter { !Self.retired.contains($0) })
    }

    @Test func argumentAndResultRegistersMatchTheDocument() {
        let documented = Dictionary(uniqueKeysWithValues: Self.rows(under: "Calls").map { ($0.0, $0.1) })
        for call in Self.calls {
            guard let cells = documented[call.number.rawValue], cells.count >= 3 else {
                Issue.record("\(call.number) is not documented with arguments and results")
                continue
            }
            #expect(Self.documentedRegisters(cells[1]) == Self.argumentRegisters(call), "arguments of \(call.number)")
            let results = Self.documentedRegisters(cells[2])
            #expect(results == Self.resultRegisters(call), "results of \(call.number)")
            #expect(!results.keys.contains { results[$0] == 0 }, "x0 is the status, never a value")
        }
    }

    /// A call's registers survive the trip through its struct: what the user runtime sends is
    /// what the kernel rebuilds.
    @Test func argumentsRoundTripThroughRegisters() {
        for call in Self.calls {
            let fields = Self.argumentRegisters(call)
            var registers = ArgumentRegisters()
            let words: [UInt64] = [0x1000, 0x2008, 2, 0xFFFF_FFFF_FFFF_FFFF, 0x44, 0x55]
            func value(_ index: Int) -> UInt64 { fields.values.contains(index) ? words[index] : 0 }
            (registers.x0, registers.x1, registers.x2) = (value(0), value(1), value(2))
            (registers.x3, registers.x4, registers.x5) = (value(3), value(4), value(5))
            #expect(call.init(registers: registers).registers == registers, "\(call.number)")
        }
    }

    @Test func errorsMatchTheABI() {
        let documented = Self.rows(under: "Errors")
        let defined = KernelError.allCases.map { ($0.rawValue, "\($0)") }
        #expect(!documented.isEmpty)
        #expect(documented.map(\.0) == defined.map(\.0))
        #expect(documented.map { $0.1.first ?? "" } == defined.map(\.1))
        #expect(KernelError(status: systemCallSuccess) == nil)
        #expect(KernelError.allCases.allSatisfy { KernelError(status: $0.rawValue) == $0 })
    }

    /// init's start argument, as docs/SYSCALLS.md gives it: each setting read back as it was made.
    @Test func startFlagsCarryWhatTheCommandLineAsked() {
        let request = FuzzerRequest(flags: 0x3FF, calls: 100_000, seed: 610_563)
        let fuzzing = StartFlags.fuzzing(request)
        #expect(fuzzing.contains(.runFuzzer) && !fuzzing.contains(.runTests))
        #expect(fuzzing.rawValue == (1 << 2 | 0x3FF << 8 | 100_000 << 20 | 610_563 << 44) as UInt64)
        #expect(fuzzing.fuzzerArgument == request.packed)
        // Out of range: flags and seed keep their low bits, the call count is cut to the largest.
        let wide = FuzzerRequest(flags: 0x1_2345, calls: 1 << 30, seed: 1 << 20 | 7)
        #expect(wide == FuzzerRequest(flags: 0x345, calls: (1 << 24) - 1, seed: 7))
        #expect(StartFlags.fuzzing(wide).rawValue >> 8 == 7 << 36 | ((1 << 24) - 1) << 12 | 0x345)
        let soak = StartFlags.testing(serviceKills: 50)
        #expect(soak.contains(.runTests) && soak.serviceKills == 50)
        #expect(StartFlags.testing(serviceKills: .max).serviceKills == (1 << 56) - 1)
        let cores = StartFlags.benchmarking(.crossCore)
        #expect(cores.contains(.runBenchmarks) && cores.benchmarks == .crossCore)
    }

    @Test func messageStorageHoldsTheLayout() {
        #expect(MemoryLayout<IPCMessageWords>.size == IPCMessageLayout.size)
        #expect(IPCMessageLayout.headerWords * 8 == IPCMessageLayout.payload)
        #expect(IPCMessageLayout.payload + IPCMessageLayout.maximumPayload == IPCMessageLayout.size)
        #expect(IPCMessageLayout.handles + 8 * IPCMessageLayout.maximumHandles == IPCMessageLayout.payload)
    }
}
