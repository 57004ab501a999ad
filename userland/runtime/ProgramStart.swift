// What a program finds when it starts, beyond x0 (its start argument) and x1 (its start handle):
// the start block, one read-only page its loader maps at `ProgramStart.blockAddress`. It lists the
// handles the loader gave the program (each under a tag that says what it is for) and the
// program's argument text. The kernel knows nothing of it: it is a convention between the
// loader (ProgramLoader.swift) and this runtime. A program started without one (init, which the
// kernel loads) simply finds no tagged handles and no arguments.

/// What a handle in the start block is for.
public enum StartTag: UInt64, CaseIterable, Sendable {
    /// A send right to the name service.
    case names = 1
    /// The name service's own: the receive right of the port where registrations arrive.
    case registrar = 2
    /// A service's own port (receive right): where its clients' requests arrive.
    case service = 3
    /// A send right to the process manager.
    case processManager = 4
    /// A device-access capability (for drivers the manifest gives devices to).
    case deviceAccess = 5
    /// The initial ramdisk as a read-only memory object (for the process manager).
    case ramdisk = 6
    /// A send right to the memory manager.
    case memoryManager = 7
    /// A send right for registering names (held by the process manager).
    case registration = 8
    /// The program's own process handle with the account right (and wait, duplicate, transfer):
    /// what it hands the memory manager so that the memory it asks for is charged to it.
    case ownProcess = 9
    /// A send right to the console service: the program's output goes there (ConsoleProtocol.swift).
    case console = 10
    /// A send right to init's power control port: what `shutdown` needs (docs/SHELL.md).
    case powerControl = 11
    /// The process manager's control port: a send right is the authority to start, stop and
    /// crash services (the process manager itself gets the receive right).
    case serviceControl = 12
    /// A service's private port (receive right), for services started with one: where the
    /// requests arrive that only the holders of its send rights may make (the console's terminal).
    case privateService = 13
    /// A send right to the console service's private port: the terminal, the authority to read
    /// what is typed and to hear Ctrl-C (ConsoleProtocol.swift).
    case terminal = 14
    /// A send right to the block service's private port: the authority to read and write the
    /// disk (BlockProtocol.swift).
    case disk = 15
}

/// The layout of the start block. All fields are little-endian 64-bit words, except the
/// argument text.
public enum ProgramStart {
    /// The last page of user space.
    public static let blockAddress: UInt64 = UserSpace.end - 4096
    public static let blockSize = 4096
    /// "SKSTART" followed by the layout's version (1).
    public static let magic: UInt64 = 0x0154_5241_5453_4B53
    public static let magicOffset = 0
    public static let handleCountOffset = 8
    /// `maximumHandles` pairs of words: the tag, then the handle's value in the program.
    public static let handlesOffset = 16
    public static let maximumHandles = 12
    public static let argumentsLengthOffset = handlesOffset + maximumHandles * 16
    public static let argumentsOffset = argumentsLengthOffset + 8
    /// Argument text: words separated by single spaces, no terminator.
    public static let maximumArgumentsLength = blockSize - argumentsOffset

    /// The block, if the loader mapped one (its magic is checked before anything is read).
    static var block: UnsafeRawPointer? {
        guard let base = System.startBlockMapping else { return nil }
        guard base.load(fromByteOffset: magicOffset, as: UInt64.self) == magic else { return nil }
        return base
    }

    /// The handle the loader gave under `tag`, if any.
    public static func handle(_ tag: StartTag) -> Handle? {
        guard let block else { return nil }
        let count = min(Int(block.load(fromByteOffset: handleCountOffset, as: UInt64.self)), maximumHandles)
        for index in 0..<count {
            let offset = handlesOffset + index * 16
            if block.load(fromByteOffset: offset, as: UInt64.self) == tag.rawValue {
                let value = block.load(fromByteOffset: offset + 8, as: UInt64.self)
                return value == 0 ? nil : Handle(value)
            }
        }
        return nil
    }

    /// The program's argument text (empty without a block).
    public static var arguments: UnsafeRawBufferPointer {
        guard let block else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let length = min(Int(block.load(fromByteOffset: argumentsLengthOffset, as: UInt64.self)), maximumArgumentsLength)
        return UnsafeRawBufferPointer(start: block + argumentsOffset, count: length)
    }
}
