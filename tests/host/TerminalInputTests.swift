import Testing
import PropertyBased
@testable import TerminalInput

@Suite struct TerminalInputTests {
    func decode(_ text: String, into decoder: inout TerminalDecoder) -> [TypedKey] {
        text.utf8.map { decoder.take($0) }.filter { $0 != .pending }
    }

    func decode(_ text: String) -> [TypedKey] {
        var decoder = TerminalDecoder()
        return decode(text, into: &decoder)
    }

    @Test func cursorAndFunctionKeys() {
        #expect(decode("\u{1b}[A\u{1b}OD\u{1b}[3~\u{1b}[1;5C") == [
            .sequence(final: UInt8(ascii: "A"), parameter: 0), .sequence(final: UInt8(ascii: "D"), parameter: 0),
            .sequence(final: UInt8(ascii: "~"), parameter: 3), .sequence(final: UInt8(ascii: "C"), parameter: 15),
        ])
    }

    @Test func aSequenceCutBetweenTwoReadsIsJoined() {
        var decoder = TerminalDecoder()
        #expect(decode("ab\u{1b}[", into: &decoder) == [.byte(97), .byte(98)])
        #expect(decoder.inSequence)
        #expect(decode("3~c", into: &decoder) == [.sequence(final: UInt8(ascii: "~"), parameter: 3), .byte(99)])
    }

    /// A byte that cannot continue a sequence ends it and counts as typed; ESC is never typed.
    @Test func aSequenceCutShortEndsThere() {
        #expect(decode("\u{1b}x") == [.byte(UInt8(ascii: "x"))])
        #expect(decode("\u{1b}[12\r") == [.byte(13)])
        #expect(decode("\u{1b}\u{1b}[A") == [.sequence(final: UInt8(ascii: "A"), parameter: 0)])
        #expect(decode("\u{1b}[\u{1b}[B") == [.sequence(final: UInt8(ascii: "B"), parameter: 0)])
    }

    @Test func garbageNeitherOverflowsNorTraps() {
        #expect(decode("\u{1b}[99999999999999999999~") == [.sequence(final: UInt8(ascii: "~"), parameter: 1000)])
        var decoder = TerminalDecoder()
        let long = "\u{1b}[" + String(repeating: ";", count: 100) + "z"
        #expect(decode(long, into: &decoder) == [.sequence(final: UInt8(ascii: "z"), parameter: 0)])
        #expect(!decoder.inSequence)
    }

    func type(_ text: String, into line: inout LineDiscipline) -> [LineDiscipline.Effect] {
        text.utf8.map { line.take($0) }
    }

    var typedLine: (inout LineDiscipline) -> String {
        { line in String(decoding: (0..<line.length).map { line.bytes[$0] }, as: UTF8.self) }
    }

    /// A line read keeps printable bytes, erases with backspace and DEL, clears with Ctrl-U, and
    /// drops whole escape sequences, also one cut between two bursts.
    @Test func lineDisciplineDropsEscapeSequences() {
        var line = LineDiscipline()
        _ = type("ls\u{1b}[D\u{1b}[", into: &line)
        _ = type("A -l\u{7f}a", into: &line)
        #expect(typedLine(&line) == "ls -a")
        let end = type("\r", into: &line)
        #expect(end.count == 1)
        if case .complete = end[0] {} else { Issue.record("Enter completes the line") }
        line.clear()
        _ = type("abc\u{15}xy\u{8}", into: &line)
        #expect(typedLine(&line) == "x")
    }

    @Test func lineDisciplineEndOfInputAndCapacity() {
        var line = LineDiscipline()
        if case .endOfInput = line.take(TerminalKey.ctrlD) {} else { Issue.record("Ctrl-D on an empty line ends the input") }
        _ = type(String(repeating: "q", count: LineDiscipline.capacity + 50), into: &line)
        #expect(line.length == LineDiscipline.capacity)
        if case .none = line.take(TerminalKey.ctrlD) {} else { Issue.record("Ctrl-D on a non-empty line is ignored") }
    }

    /// Random bytes: the line never passes its capacity, and every byte kept is printable.
    @Test func randomBytesKeepTheLineSane() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...255).array(of: 1...600)) { bytes in
            var line = LineDiscipline()
            for byte in bytes {
                _ = line.take(UInt8(byte))
                #expect(line.length >= 0 && line.length <= LineDiscipline.capacity)
            }
            for index in 0..<line.length { #expect(line.bytes[index] >= 0x20 && line.bytes[index] != 0x7F) }
        }
    }
}
