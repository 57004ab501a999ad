// The line discipline of a line read: what each typed byte does to the line being edited and
// what the terminal is shown. Backspace and DEL erase a character, Ctrl-U the whole line, Ctrl-D
// on an empty line ends the input, Enter ends the line; escape sequences (cursor and function
// keys, taken apart by TerminalDecoder even when cut between two bursts) and other control bytes
// are ignored, and bytes past the line's capacity are dropped. (Ctrl-C never gets here: the driver
// takes it.)

struct LineDiscipline {
    static let capacity = 240

    enum Effect {
        case none
        case echoByte(UInt8)
        /// Erase this many characters on the terminal.
        case erase(Int)
        case complete
        case endOfInput
    }

    var bytes = InlineArray<240, UInt8>(repeating: 0)
    var length = 0
    var decoder = TerminalDecoder()

    mutating func clear() {
        length = 0
        decoder.reset()
    }

    mutating func take(_ typed: UInt8) -> Effect {
        guard case .byte(let byte) = decoder.take(typed) else { return .none }
        switch byte {
        case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
            return .complete
        case TerminalKey.backspace, TerminalKey.delete:
            guard length > 0 else { return .none }
            length -= 1
            return .erase(1)
        case TerminalKey.ctrlU:
            let erased = length
            length = 0
            return .erase(erased)
        case TerminalKey.ctrlD:
            return length == 0 ? .endOfInput : .none
        case 0..<0x20:
            return .none
        default:
            guard length < Self.capacity else { return .none }
            bytes[length] = byte
            length += 1
            return .echoByte(byte)
        }
    }
}
