// What the bytes typed at a terminal mean: the control bytes the console's line discipline and the
// shell's line editor give a meaning to, and the decoder both use to take escape sequences apart.
// It needs nothing else of the runtime, so the host tests compile it too.

/// The terminal's control bytes.
public enum TerminalKey {
    public static let ctrlA: UInt8 = 0x01
    public static let ctrlC: UInt8 = 0x03
    public static let ctrlD: UInt8 = 0x04
    public static let ctrlE: UInt8 = 0x05
    public static let bell: UInt8 = 0x07
    public static let backspace: UInt8 = 0x08
    public static let ctrlU: UInt8 = 0x15
    /// Ctrl-\: while a program holds the terminal's loan, always the shell's (ConsoleProtocol).
    public static let quit: UInt8 = 0x1C
    public static let escape: UInt8 = 0x1B
    public static let delete: UInt8 = 0x7F
    /// The bytes that end an escape sequence (ECMA-48 final bytes).
    public static let sequenceFinal: ClosedRange<UInt8> = 0x40...0x7E
}

/// A typed byte, once escape sequences are taken apart.
public enum TypedKey: Equatable {
    /// Part of an escape sequence not finished yet.
    case pending
    /// A byte typed as itself.
    case byte(UInt8)
    /// A finished sequence, ESC [ or ESC O, digits and semicolons, a final byte: cursor keys are
    /// `A`-`D`, Home `H`, End `F`, Delete `~` with parameter 3.
    case sequence(final: UInt8, parameter: Int)
}

/// Takes escape sequences apart a byte at a time, so one cut between two reads is joined. A
/// sequence cut short by a byte that cannot continue it ends there, and that byte counts as
/// typed (an ESC starting a new sequence); ESC itself is never a typed byte. The parameter is
/// capped, so no run of digits overflows it.
public struct TerminalDecoder {
    /// 0: no sequence; 1: after ESC; 2: after ESC [ or ESC O.
    var state = 0
    var parameter = 0

    public init() {}

    public var inSequence: Bool { state != 0 }

    public mutating func reset() {
        state = 0
        parameter = 0
    }

    public mutating func take(_ byte: UInt8) -> TypedKey {
        switch state {
        case 1:
            state = 0
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "O") {
                state = 2
                parameter = 0
                return .pending
            }
        case 2:
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                parameter = min(parameter * 10 + Int(byte - UInt8(ascii: "0")), 1000)
                return .pending
            }
            if byte == UInt8(ascii: ";") { return .pending }
            state = 0
            if TerminalKey.sequenceFinal.contains(byte) { return .sequence(final: byte, parameter: parameter) }
        default:
            break
        }
        if byte == TerminalKey.escape {
            state = 1
            return .pending
        }
        return .byte(byte)
    }
}
