// The service manifest: the text file (`manifest` in the initial ramdisk) that says which services
// the system runs, from which program, with what, after which others, and whether they come back
// when they end. Read without allocation, one line at a time: a malformed line is reported with its
// number and reason and left out, the valid ones are kept, and `startOrder` puts dependencies first
// (docs/ARCHITECTURE.md, "Services and the manifest"). Compiled into the host tests and into user
// programs (the process manager reads it, the name service shares its rule for names).

/// Text of at most `capacity` bytes, kept inline: a service's name, program or arguments.
public struct BoundedText<let capacity: Int>: Equatable, TextDescribable {
    var storage = InlineArray<capacity, UInt8>(repeating: 0)
    public private(set) var count = 0

    public init() {}

    /// `bytes`, if they fit.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= capacity else { return nil }
        for byte in bytes { storage[count] = byte; count += 1 }
    }

    public init?(_ string: StaticString) {
        self.init(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    public var isEmpty: Bool { count == 0 }

    public subscript(index: Int) -> UInt8 { storage[index] }

    /// Adds `byte`; false (and nothing added) when full.
    @discardableResult
    public mutating func append(_ byte: UInt8) -> Bool {
        guard count < capacity else { return false }
        storage[count] = byte
        count += 1
        return true
    }

    /// Adds as much of `bytes` as fits; false if some did not.
    @discardableResult
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where !append(byte) { return false }
        return true
    }

    public func equals(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == count else { return false }
        for index in 0..<count where bytes[index] != storage[index] { return false }
        return true
    }

    public func equals(_ string: StaticString) -> Bool {
        equals(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    public static func == (left: Self, right: Self) -> Bool {
        right.withBytes { left.equals($0) }
    }

    /// Calls `body` with the text's bytes.
    public func withBytes<Result, Failure: Error>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> Result) throws(Failure) -> Result {
        var copy = storage
        let count = self.count
        return try Swift.withUnsafeBytes(of: &copy) { bytes throws(Failure) in
            try body(UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        }
    }

    public func describe<Output: TextOutput>(into output: inout Output) {
        for index in 0..<count { output.write(byte: storage[index]) }
    }
}

/// A service's name (also what the name service registers it under), or a program's.
public typealias ServiceName = BoundedText<32>
/// A service's argument text: words separated by single spaces (the start block's convention).
public typealias ServiceArguments = BoundedText<128>

extension ServiceManifest {
    /// The rule for service and program names, which the name service applies too: 1 to 32 bytes,
    /// each a letter, digit, '-', '_' or '.'.
    public static func isValidName(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 1 && bytes.count <= 32 else { return false }
        for byte in bytes where !isNameByte(byte) { return false }
        return true
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }
}

/// What happens when a service's process ends (the values are those the process manager's
/// protocol carries).
public enum RestartPolicy: UInt64, Equatable, Sendable {
    /// It stays ended.
    case never = 0
    /// It is started again if it faulted, was killed, or exited with a code other than 0.
    case onFailure = 1
    /// It is started again however it ended.
    case always = 2
}

extension RestartPolicy {
    /// Whether a service under this policy is started again after its process ended for `reason`
    /// (with exit code `code` when it exited).
    public func restarts(after reason: ExitReason, code: UInt64) -> Bool {
        switch self {
        case .never: return false
        case .always: return true
        case .onFailure: return reason != .exited || code != 0
        }
    }
}

/// The devices a service's process is given access to: a copy of init's device-access
/// capability (`deviceOpen`), for the kinds of device named.
public struct DeviceSet: OptionSet, Equatable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The console UART (device 0).
    public static let console = DeviceSet(rawValue: 1 << 0)
    /// The virtio-mmio transports (the devices after the console; `deviceInfo` tells them apart).
    public static let virtio = DeviceSet(rawValue: 1 << 1)
    /// Not a device of the capability: init's power control (a send right to its port), the
    /// authority to power the machine off.
    public static let power = DeviceSet(rawValue: 1 << 63)
    /// Not a device either: a send right to the process manager's control port, the authority
    /// to start, stop and crash services.
    public static let services = DeviceSet(rawValue: 1 << 62)
    /// Nor this: a send right to the terminal, the private port of the service given the
    /// console (which serves it), the authority to read what is typed and to hear Ctrl-C.
    public static let terminal = DeviceSet(rawValue: 1 << 61)
    /// Nor this: a send right to the disk, the private port of the service given the virtio
    /// devices (the block service), the authority to read and write sectors.
    public static let disk = DeviceSet(rawValue: 1 << 60)

    /// The device a manifest names `name`, if there is one.
    public static func named(_ name: UnsafeRawBufferPointer) -> DeviceSet? {
        if matches(name, "console") { return .console }
        if matches(name, "virtio") { return .virtio }
        if matches(name, "power") { return .power }
        if matches(name, "services") { return .services }
        if matches(name, "terminal") { return .terminal }
        if matches(name, "disk") { return .disk }
        return nil
    }
}

/// One service of the manifest.
public struct ServiceEntry: Equatable {
    public internal(set) var name = ServiceName()
    /// The program in the initial ramdisk that runs it.
    public internal(set) var program = ServiceName()
    public internal(set) var arguments = ServiceArguments()
    /// Bit i: this service starts after service i of the manifest.
    public internal(set) var dependencies: UInt64 = 0
    public internal(set) var restart = RestartPolicy.never
    public internal(set) var devices = DeviceSet()
    /// Bytes the kernel may hold for its process and descendants; 0: no limit of its own.
    public internal(set) var memoryLimit: UInt64 = 0
    /// Its line in the manifest (from 1).
    public internal(set) var line = 0
    /// The first dependency that names no service of the manifest, if any (it is then not started).
    public internal(set) var missingDependency = ServiceName()

    public init() {}
}

/// A line the manifest could not use, or a service it cannot start.
public struct ManifestProblem: Equatable, TextDescribable {
    public enum Reason: UInt8, Equatable, Sendable, CaseIterable {
        case lineTooLong
        case badCharacter
        case unknownDirective
        case missingName
        case badName
        case duplicateService
        case tooManyServices
        case notKeyValue
        case unknownKey
        case duplicateKey
        case missingValue
        case unterminatedQuote
        case missingProgram
        case badProgram
        case argumentsTooLong
        case badDependency
        case tooManyDependencies
        case badPolicy
        case unknownDevice
        case badMemory
        case unknownDependency
        case dependencyCycle
        case dependencyNotStarted

        public var summary: StaticString {
            switch self {
            case .lineTooLong: return "line longer than 256 bytes"
            case .badCharacter: return "character other than printable ASCII, space or tab"
            case .unknownDirective: return "unknown directive (a line starts with 'service')"
            case .missingName: return "service without a name"
            case .badName: return "bad service name (1-32 letters, digits, '-', '_', '.')"
            case .duplicateService: return "service already defined"
            case .tooManyServices: return "more than 32 services"
            case .notKeyValue: return "expected key=value"
            case .unknownKey: return "unknown key"
            case .duplicateKey: return "key given twice"
            case .missingValue: return "key without a value"
            case .unterminatedQuote: return "unterminated quote"
            case .missingProgram: return "no program="
            case .badProgram: return "bad program name (1-32 letters, digits, '-', '_', '.')"
            case .argumentsTooLong: return "arguments longer than 128 bytes, or with a quote"
            case .badDependency: return "bad dependency name"
            case .tooManyDependencies: return "more than 8 dependencies"
            case .badPolicy: return "bad restart policy (never, on-failure or always)"
            case .unknownDevice: return "unknown device"
            case .badMemory: return "bad memory limit (bytes, or a number with K, M or G; 1 TiB at most)"
            case .unknownDependency: return "not started: depends on a service the manifest does not define"
            case .dependencyCycle: return "not started: dependency cycle"
            case .dependencyNotStarted: return "not started: depends on a service that is not started"
            }
        }
    }

    /// The line at fault (from 1).
    public let line: Int
    public let reason: Reason
    /// The word at fault (a key, a name, a value), cut to 32 bytes; may be empty.
    public let detail: ServiceName

    public init(line: Int, reason: Reason, detail: ServiceName = ServiceName()) {
        self.line = line
        self.reason = reason
        self.detail = detail
    }

    /// "line 4: unknown key 'colour'"
    public func describe<Output: TextOutput>(into output: inout Output) {
        output.write("line ")
        output.writeDecimal(UInt64(line))
        output.write(": ")
        output.write(reason.summary)
        if !detail.isEmpty {
            output.write(" '")
            detail.describe(into: &output)
            output.write("'")
        }
    }
}

/// Services in the order to start them, and the services left out with the reason.
public struct StartOrder {
    var indices = InlineArray<32, UInt8>(repeating: 0)
    public private(set) var count = 0
    var problemList = InlineArray<32, ManifestProblem>(repeating: ManifestProblem(line: 0, reason: .missingName))
    public private(set) var problemCount = 0

    /// The index (into the manifest) of the service to start `position`-th.
    public subscript(position: Int) -> Int { Int(indices[position]) }
    public func problem(_ index: Int) -> ManifestProblem { problemList[index] }

    mutating func append(_ index: Int) {
        indices[count] = UInt8(index)
        count += 1
    }

    mutating func report(_ problem: ManifestProblem) {
        problemList[problemCount] = problem
        problemCount += 1
    }
}

/// A parsed manifest: the valid services (in manifest order), the problems, and the start order.
public struct ServiceManifest {
    public static let maximumServices = 32
    public static let maximumLineLength = 256
    public static let maximumDependencies = 8
    public static let maximumProblems = 32
    /// Memory limits above this are malformed (1 TiB).
    public static let maximumMemoryLimit: UInt64 = 1 << 40

    var entries = InlineArray<32, ServiceEntry>(repeating: ServiceEntry())
    public private(set) var count = 0
    var problemList = InlineArray<32, ManifestProblem>(repeating: ManifestProblem(line: 0, reason: .missingName))
    public private(set) var problemCount = 0
    /// Problems beyond `maximumProblems`, counted but not kept.
    public private(set) var problemsLeftOut = 0
    /// The services in the order to start them (its problems are also among `problem(_:)`).
    public private(set) var order = StartOrder()

    /// Parses the manifest `text`.
    public init(parsing text: UnsafeRawBufferPointer) {
        var dependencyWords = InlineArray<32, InlineArray<8, TextSpan>>(repeating: InlineArray(repeating: TextSpan()))
        var dependencyCounts = InlineArray<32, UInt8>(repeating: 0)
        var lineNumber = 0
        var lineStart = 0
        while lineStart < text.count {
            var lineEnd = lineStart
            while lineEnd < text.count && text[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            lineNumber += 1
            var line = LineReader(text: text, start: lineStart, end: lineEnd)
            var words = InlineArray<8, TextSpan>(repeating: TextSpan())
            var wordCount = 0
            switch parseLine(&line, number: lineNumber, dependencies: &words, dependencyCount: &wordCount) {
            case .blank:
                break
            case .problem(let problem):
                report(problem)
            case .service(let entry):
                dependencyWords[count] = words
                dependencyCounts[count] = UInt8(wordCount)
                entries[count] = entry
                count += 1
            }
            lineStart = lineEnd + 1
        }
        // Dependencies are resolved once every service is known: a service may follow those it names.
        for index in 0..<count {
            for word in 0..<Int(dependencyCounts[index]) {
                let span = dependencyWords[index][word]
                let bytes = span.bytes(in: text)
                if let target = self.index(of: bytes) {
                    entries[index].dependencies |= 1 << UInt64(target)
                } else if entries[index].missingDependency.isEmpty {
                    entries[index].missingDependency = ServiceName(bytes) ?? ServiceName()
                }
            }
        }
        order = startOrder()
        for index in 0..<order.problemCount { report(order.problem(index)) }
    }

    public subscript(index: Int) -> ServiceEntry { entries[index] }

    public func problem(_ index: Int) -> ManifestProblem { problemList[index] }

    /// The index of the service named `name`, if the manifest defines it.
    public func index(of name: UnsafeRawBufferPointer) -> Int? {
        for index in 0..<count where entries[index].name.equals(name) { return index }
        return nil
    }

    public func index(of name: StaticString) -> Int? {
        index(of: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    /// The services in dependency order: each after every service it names, otherwise in manifest
    /// order. A service that names a service the manifest does not define, that lies on a dependency
    /// cycle, or that depends (directly or not) on one of those is reported and left out; the rest
    /// are all in the order.
    public func startOrder() -> StartOrder {
        var order = StartOrder()
        // reach[i]: every service i depends on, directly or not (bit j: service j).
        var reach = InlineArray<32, UInt64>(repeating: 0)
        for index in 0..<count { reach[index] = entries[index].dependencies }
        var changed = true
        while changed {
            changed = false
            for index in 0..<count {
                var closure = reach[index]
                var pending = reach[index]
                while pending != 0 {
                    let other = pending.trailingZeroBitCount
                    pending &= pending - 1
                    closure |= reach[other]
                }
                if closure != reach[index] { reach[index] = closure; changed = true }
            }
        }
        var decided: UInt64 = 0  // started or left out
        var started: UInt64 = 0
        var progress = true
        while progress {
            progress = false
            for index in 0..<count where decided & (1 << UInt64(index)) == 0 {
                let entry = entries[index]
                guard entry.dependencies & ~decided == 0 else { continue }
                decided |= 1 << UInt64(index)
                progress = true
                if !entry.missingDependency.isEmpty {
                    order.report(ManifestProblem(line: entry.line, reason: .unknownDependency, detail: entry.missingDependency))
                } else if let blocked = Self.lowest(entry.dependencies & ~started) {
                    order.report(ManifestProblem(line: entry.line, reason: .dependencyNotStarted, detail: entries[blocked].name))
                } else {
                    started |= 1 << UInt64(index)
                    order.append(index)
                }
            }
        }
        // What is left waits on a cycle, or is on one.
        for index in 0..<count where decided & (1 << UInt64(index)) == 0 {
            let entry = entries[index]
            let bit: UInt64 = 1 << UInt64(index)
            if !entry.missingDependency.isEmpty {
                order.report(ManifestProblem(line: entry.line, reason: .unknownDependency, detail: entry.missingDependency))
            } else if reach[index] & bit != 0 {
                // Name the next service around the cycle.
                var next = index
                var candidates = entry.dependencies
                while candidates != 0 {
                    let other = candidates.trailingZeroBitCount
                    candidates &= candidates - 1
                    if other == index || reach[other] & bit != 0 { next = other; break }
                }
                order.report(ManifestProblem(line: entry.line, reason: .dependencyCycle, detail: entries[next].name))
            } else {
                let blocked = Self.lowest(entry.dependencies & ~started) ?? index
                order.report(ManifestProblem(line: entry.line, reason: .dependencyNotStarted, detail: entries[blocked].name))
            }
        }
        return order
    }

    static func lowest(_ set: UInt64) -> Int? { set == 0 ? nil : set.trailingZeroBitCount }

    mutating func report(_ problem: ManifestProblem) {
        guard problemCount < Self.maximumProblems else { problemsLeftOut += 1; return }
        problemList[problemCount] = problem
        problemCount += 1
    }

    enum LineResult {
        case blank
        case problem(ManifestProblem)
        case service(ServiceEntry)
    }

    /// One line: blank (or a comment), a problem, or a service whose dependencies are still words.
    func parseLine(_ line: inout LineReader, number: Int, dependencies: inout InlineArray<8, TextSpan>,
                   dependencyCount: inout Int) -> LineResult {
        func problem(_ reason: ManifestProblem.Reason, _ detail: TextSpan?) -> LineResult {
            .problem(ManifestProblem(line: number, reason: reason, detail: detail.map { line.detail($0) } ?? ServiceName()))
        }
        guard line.end - line.start <= Self.maximumLineLength else { return problem(.lineTooLong, nil) }
        if let bad = line.firstBadCharacter() { return problem(.badCharacter, bad) }
        guard let directive = line.nextWord() else { return .blank }
        let directiveBytes = line.bytes(directive)
        if directiveBytes.first == UInt8(ascii: "#") { return .blank }
        guard matches(directiveBytes, "service") else { return problem(.unknownDirective, directive) }
        guard let nameWord = line.nextWord(), line.bytes(nameWord).first != UInt8(ascii: "#") else {
            return problem(.missingName, nil)
        }
        guard ServiceManifest.isValidName(line.bytes(nameWord)), let name = ServiceName(line.bytes(nameWord)) else {
            return problem(.badName, nameWord)
        }
        var entry = ServiceEntry()
        entry.name = name
        entry.line = number
        var seen = KeySet()
        while true {
            guard let word = line.nextWord(quoting: true) else { break }
            let bytes = line.bytes(word)
            if bytes.first == UInt8(ascii: "#") { break }
            if line.unterminatedQuote { return problem(.unterminatedQuote, word) }
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return problem(.notKeyValue, word) }
            let keySpan = word.prefix(equals)
            var valueSpan = word.dropFirst(equals + 1)
            let key = line.bytes(keySpan)
            guard let field = Key(key) else { return problem(.unknownKey, keySpan) }
            guard !seen.contains(field) else { return problem(.duplicateKey, keySpan) }
            seen.insert(field)
            let quoted = line.bytes(valueSpan).first == UInt8(ascii: "\"")
            if quoted { valueSpan = valueSpan.dropFirst(1).dropLast() }
            let value = line.bytes(valueSpan)
            guard !value.isEmpty || (quoted && field == .arguments) else { return problem(.missingValue, keySpan) }
            switch field {
            case .program:
                guard ServiceManifest.isValidName(value), let program = ServiceName(value) else {
                    return problem(.badProgram, valueSpan)
                }
                entry.program = program
            case .arguments:
                guard let arguments = Self.normalizedArguments(value) else { return problem(.argumentsTooLong, keySpan) }
                entry.arguments = arguments
            case .after:
                var list = ListReader(span: valueSpan, line: line)
                while let item = list.next() {
                    guard ServiceManifest.isValidName(line.bytes(item)) else { return problem(.badDependency, item) }
                    var known = false
                    for index in 0..<dependencyCount where matches(line.bytes(dependencies[index]), line.bytes(item)) {
                        known = true
                    }
                    if known { continue }
                    guard dependencyCount < Self.maximumDependencies else { return problem(.tooManyDependencies, item) }
                    dependencies[dependencyCount] = item
                    dependencyCount += 1
                }
            case .restart:
                if matches(value, "never") {
                    entry.restart = .never
                } else if matches(value, "on-failure") {
                    entry.restart = .onFailure
                } else if matches(value, "always") {
                    entry.restart = .always
                } else {
                    return problem(.badPolicy, valueSpan)
                }
            case .devices:
                var list = ListReader(span: valueSpan, line: line)
                while let item = list.next() {
                    guard let device = DeviceSet.named(line.bytes(item)) else { return problem(.unknownDevice, item) }
                    entry.devices.insert(device)
                }
            case .memory:
                guard let limit = Self.memoryLimit(value) else { return problem(.badMemory, valueSpan) }
                entry.memoryLimit = limit
            }
        }
        guard seen.contains(.program) else { return problem(.missingProgram, nameWord) }
        guard index(of: line.bytes(nameWord)) == nil else { return problem(.duplicateService, nameWord) }
        guard count < Self.maximumServices else { return problem(.tooManyServices, nameWord) }
        return .service(entry)
    }

    /// The words of `value` joined by single spaces; nil if longer than 128 bytes or with a quote.
    static func normalizedArguments(_ value: UnsafeRawBufferPointer) -> ServiceArguments? {
        var arguments = ServiceArguments()
        var pendingSpace = false
        for byte in value {
            if byte == UInt8(ascii: "\"") { return nil }
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                pendingSpace = !arguments.isEmpty
                continue
            }
            if pendingSpace { guard arguments.append(UInt8(ascii: " ")) else { return nil } }
            pendingSpace = false
            guard arguments.append(byte) else { return nil }
        }
        return arguments
    }

    /// "65536", "64K", "4M", "1G" (K, M, G binary, either case); nil for 0, junk or above 1 TiB.
    static func memoryLimit(_ value: UnsafeRawBufferPointer) -> UInt64? {
        var number: UInt64 = 0
        var digits = 0
        var shift: UInt64 = 0
        for (position, byte) in value.enumerated() {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") && shift == 0 {
                guard digits < 13 else { return nil }
                number = number * 10 + UInt64(byte - UInt8(ascii: "0"))
                digits += 1
                continue
            }
            guard position == value.count - 1, digits > 0 else { return nil }
            switch byte | 0x20 {
            case UInt8(ascii: "k"): shift = 10
            case UInt8(ascii: "m"): shift = 20
            case UInt8(ascii: "g"): shift = 30
            default: return nil
            }
        }
        guard digits > 0, number > 0, number <= maximumMemoryLimit >> shift else { return nil }
        return number << shift
    }
}

/// Whether `bytes` spell `string`.
func matches(_ bytes: UnsafeRawBufferPointer, _ string: StaticString) -> Bool {
    matches(bytes, UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
}

func matches(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
    guard left.count == right.count else { return false }
    for index in 0..<left.count where left[index] != right[index] { return false }
    return true
}

/// A part of the manifest text: `count` bytes from `start`.
struct TextSpan: Equatable {
    var start = 0
    var count = 0

    func bytes(in text: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: text[start..<start + count])
    }
    func prefix(_ length: Int) -> TextSpan { TextSpan(start: start, count: min(length, count)) }
    func dropFirst(_ length: Int) -> TextSpan {
        let dropped = min(length, count)
        return TextSpan(start: start + dropped, count: count - dropped)
    }
    func dropLast() -> TextSpan { TextSpan(start: start, count: max(count - 1, 0)) }
}

/// The keys a service line may give, each at most once.
enum Key: UInt8 {
    case program, arguments, after, restart, devices, memory

    init?(_ bytes: UnsafeRawBufferPointer) {
        if matches(bytes, "program") { self = .program }
        else if matches(bytes, "args") { self = .arguments }
        else if matches(bytes, "after") { self = .after }
        else if matches(bytes, "restart") { self = .restart }
        else if matches(bytes, "devices") { self = .devices }
        else if matches(bytes, "memory") { self = .memory }
        else { return nil }
    }
}

struct KeySet {
    var bits: UInt8 = 0
    func contains(_ key: Key) -> Bool { bits & (1 << key.rawValue) != 0 }
    mutating func insert(_ key: Key) { bits |= 1 << key.rawValue }
}

/// Words of one line, separated by spaces or tabs; a value may be quoted (`args="a b"`).
struct LineReader {
    let text: UnsafeRawBufferPointer
    var start: Int
    let end: Int
    var position: Int

    init(text: UnsafeRawBufferPointer, start: Int, end: Int) {
        self.text = text
        self.start = start
        var end = end
        // A carriage return before the newline is part of the line ending.
        if end > start && text[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        self.end = end
        position = start
    }

    func bytes(_ span: TextSpan) -> UnsafeRawBufferPointer { span.bytes(in: text) }

    /// The first byte that is neither printable ASCII nor a tab, as a span.
    func firstBadCharacter() -> TextSpan? {
        for index in start..<end {
            let byte = text[index]
            if byte != UInt8(ascii: "\t") && (byte < 0x20 || byte > 0x7E) { return TextSpan(start: index, count: 0) }
        }
        return nil
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// Set when the last word opened a quote the line did not close.
    private(set) var unterminatedQuote = false

    /// The next word. With `quoting`, a quote opens text that runs to the next quote, spaces
    /// included.
    mutating func nextWord(quoting: Bool = false) -> TextSpan? {
        while position < end && Self.isSpace(text[position]) { position += 1 }
        guard position < end else { return nil }
        let wordStart = position
        var inQuote = false
        while position < end && (inQuote || !Self.isSpace(text[position])) {
            if quoting && text[position] == UInt8(ascii: "\"") { inQuote.toggle() }
            position += 1
        }
        unterminatedQuote = inQuote
        return TextSpan(start: wordStart, count: position - wordStart)
    }

    /// `span`'s bytes, cut to 32, as a problem's detail.
    func detail(_ span: TextSpan) -> ServiceName {
        var detail = ServiceName()
        for byte in bytes(span) where !detail.append(byte) { break }
        return detail
    }
}

/// Comma-separated items of a value (`after=a,b`); an empty item is returned as an empty span.
struct ListReader {
    var span: TextSpan
    let line: LineReader
    var position = 0
    var finished = false

    init(span: TextSpan, line: LineReader) {
        self.span = span
        self.line = line
    }

    mutating func next() -> TextSpan? {
        guard !finished else { return nil }
        let bytes = line.bytes(span)
        var itemEnd = position
        while itemEnd < bytes.count && bytes[itemEnd] != UInt8(ascii: ",") { itemEnd += 1 }
        let item = TextSpan(start: span.start + position, count: itemEnd - position)
        if itemEnd >= bytes.count { finished = true }
        position = itemEnd + 1
        return item
    }
}
