// The shell's line editor: raw bytes from the console in, a line out. Left and right move the
// cursor, backspace and DEL erase before it, up and down walk the history, Ctrl-U clears the line,
// Ctrl-C abandons it. Escape sequences (ESC [ X, ESC O X, ESC [ digits ~) are taken apart byte by
// byte (TerminalDecoder), so one cut between two reads, or never finished, does no harm. The
// terminal is redrawn with backspaces and plain text only.

struct LineEditor {
    static let capacity = 200
    static let historyDepth = 16

    enum Outcome {
        /// The line is not finished yet.
        case editing
        case line
        /// Ctrl-C: the line was abandoned.
        case cancelled
    }

    var bytes = InlineArray<200, UInt8>(repeating: 0)
    var length = 0
    var cursor = 0
    var history = InlineArray<16, InlineArray<200, UInt8>>(repeating: InlineArray(repeating: 0))
    var historyLengths = InlineArray<16, Int>(repeating: 0)
    var historyCount = 0
    /// How far back the line shown is (0: the line being typed).
    var browsing = 0
    var decoder = TerminalDecoder()

    mutating func start() {
        length = 0
        cursor = 0
        browsing = 0
        decoder.reset()
    }

    /// Takes one typed byte; output for the terminal goes to `terminal`.
    mutating func take(_ typed: UInt8, _ terminal: inout Terminal) -> Outcome {
        let byte: UInt8
        switch decoder.take(typed) {
        case .pending:
            return .editing
        case .sequence(let final, let parameter):
            runSequence(final, parameter: parameter, &terminal)
            return .editing
        case .byte(let plain):
            byte = plain
        }
        switch byte {
        case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
            terminal.add(UInt8(ascii: "\n"))
            remember()
            return .line
        case TerminalKey.ctrlC:
            terminal.add("^C\n")
            return .cancelled
        case TerminalKey.backspace, TerminalKey.delete:
            guard cursor > 0 else { break }
            moveLeft(&terminal)
            deleteAtCursor(&terminal)
        case TerminalKey.ctrlU:
            while cursor > 0 { moveLeft(&terminal) }
            replace(with: nil, 0, &terminal)
        case TerminalKey.ctrlA:
            while cursor > 0 { moveLeft(&terminal) }
        case TerminalKey.ctrlE:
            while cursor < length { moveRight(&terminal) }
        case 0..<0x20:
            break
        default:
            insert(byte, &terminal)
        }
        return .editing
    }

    /// The final byte of an escape sequence: a cursor key, Home, End or Delete; others are ignored.
    mutating func runSequence(_ byte: UInt8, parameter: Int, _ terminal: inout Terminal) {
        switch byte {
        case UInt8(ascii: "A"): showHistory(browsing + 1, &terminal)
        case UInt8(ascii: "B"): showHistory(browsing - 1, &terminal)
        case UInt8(ascii: "C"): moveRight(&terminal)
        case UInt8(ascii: "D"): moveLeft(&terminal)
        case UInt8(ascii: "H"): while cursor > 0 { moveLeft(&terminal) }
        case UInt8(ascii: "F"): while cursor < length { moveRight(&terminal) }
        case UInt8(ascii: "~") where parameter == 3: deleteAtCursor(&terminal)
        default: break // an unknown sequence, or garbage: ignored
        }
    }

    mutating func insert(_ byte: UInt8, _ terminal: inout Terminal) {
        guard length < Self.capacity else {
            terminal.add(TerminalKey.bell)
            return
        }
        var index = length
        while index > cursor {
            bytes[index] = bytes[index - 1]
            index -= 1
        }
        bytes[cursor] = byte
        length += 1
        for index in cursor..<length { terminal.add(bytes[index]) }
        cursor += 1
        for _ in cursor..<length { terminal.add(TerminalKey.backspace) }
    }

    mutating func deleteAtCursor(_ terminal: inout Terminal) {
        guard cursor < length else { return }
        for index in cursor..<(length - 1) { bytes[index] = bytes[index + 1] }
        length -= 1
        for index in cursor..<length { terminal.add(bytes[index]) }
        terminal.add(UInt8(ascii: " "))
        for _ in cursor...length { terminal.add(TerminalKey.backspace) }
    }

    mutating func moveLeft(_ terminal: inout Terminal) {
        guard cursor > 0 else { return }
        cursor -= 1
        terminal.add(TerminalKey.backspace)
    }

    mutating func moveRight(_ terminal: inout Terminal) {
        guard cursor < length else { return }
        terminal.add(bytes[cursor])
        cursor += 1
    }

    /// Shows history entry `position` back (0: an empty line).
    mutating func showHistory(_ position: Int, _ terminal: inout Terminal) {
        guard position >= 0, position <= min(historyCount, Self.historyDepth), position != browsing else { return }
        browsing = position
        while cursor > 0 { moveLeft(&terminal) }
        if position == 0 {
            replace(with: nil, 0, &terminal)
        } else {
            let slot = (historyCount - position) % Self.historyDepth
            replace(with: history[slot], historyLengths[slot], &terminal)
        }
    }

    /// With the cursor at the start, replaces the line with `text` and leaves the cursor at its end.
    mutating func replace(with text: InlineArray<200, UInt8>?, _ count: Int, _ terminal: inout Terminal) {
        let old = length
        if let text { bytes = text }
        length = text == nil ? 0 : count
        for index in 0..<length { terminal.add(bytes[index]) }
        if old > length {
            for _ in length..<old { terminal.add(UInt8(ascii: " ")) }
            for _ in length..<old { terminal.add(TerminalKey.backspace) }
        }
        cursor = length
    }

    /// Keeps the finished line in the history (not an empty line, nor a repeat of the last).
    mutating func remember() {
        guard length > 0 else { return }
        if historyCount > 0 {
            let last = (historyCount - 1) % Self.historyDepth
            if historyLengths[last] == length {
                var same = true
                for index in 0..<length where history[last][index] != bytes[index] { same = false }
                if same { return }
            }
        }
        let slot = historyCount % Self.historyDepth
        history[slot] = bytes
        historyLengths[slot] = length
        historyCount += 1
    }
}
