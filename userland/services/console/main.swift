// console: the console driver, a user-space PL011 driver (registers from Arm DDI 0183). The
// manifest gives it the console device (`devices=console`): a device-access capability through
// which it opens the UART's registers (a memory object) and receive interrupt (a handle bound to
// a notification). It serves the console protocol (userland/runtime/ConsoleProtocol.swift) on its
// service port: writes, each written whole, and reads of a line (echoed, with the line discipline
// of `LineDiscipline.swift`) or of raw bytes. It never allocates: its state is fixed storage, so
// it keeps working while the memory manager restarts. It also takes over the kernel log: the
// kernel's lines and the debug writes of programs without a console (the services started before
// it, init) wait in the kernel until it writes them out between the lines it writes itself; a line
// it was in the middle of (a prompt, a line being typed) is written again below them.
//
// Reading the terminal is an authority: the requests that read, give the terminal to a program or
// say who hears Ctrl-C are served only on the private port (`.privateService`, the terminal), whose
// send rights init hands to the services the manifest gives `terminal` (the shell), and on a loan
// of it (`lend`), a port of this driver's that the shell gives its foreground program and closes
// when that program ends. On the public port, which anyone may look up, they are refused with
// `accessDenied`: no program can take the shell's input or its Ctrl-C.

import UserSystemCall

/// The UART's registers, mapped in this process.
struct PL011 {
    static let data = 0x000
    static let flags = 0x018
    static let interruptMask = 0x038
    static let interruptClear = 0x044
    static let transmitFIFOFull: UInt32 = 1 << 5
    static let receiveFIFOEmpty: UInt32 = 1 << 4
    /// Receive and receive-timeout interrupts.
    static let receiveInterrupts: UInt32 = 1 << 4 | 1 << 6

    let base: UInt64

    func read(_ register: Int) -> UInt32 { user_read32(base + UInt64(register)) }
    func write(_ register: Int, _ value: UInt32) { user_write32(base + UInt64(register), value) }

    func enableReceiveInterrupts() { write(Self.interruptMask, read(Self.interruptMask) | Self.receiveInterrupts) }
    func disableReceiveInterrupts() { write(Self.interruptMask, read(Self.interruptMask) & ~Self.receiveInterrupts) }
    func clearReceiveInterrupts() { write(Self.interruptClear, Self.receiveInterrupts) }

    /// The next received byte, if the receive FIFO holds one.
    func receive() -> UInt8? {
        guard read(Self.flags) & Self.receiveFIFOEmpty == 0 else { return nil }
        return UInt8(truncatingIfNeeded: read(Self.data))
    }

    /// Sends `byte`, waiting while the transmit FIFO is full.
    func send(_ byte: UInt8) {
        while read(Self.flags) & Self.transmitFIFOFull != 0 {}
        write(Self.data, UInt32(byte))
    }

    /// Sends `byte`, a newline as "\r\n" (as the kernel's console does).
    func put(_ byte: UInt8) {
        if byte == UInt8(ascii: "\n") { send(UInt8(ascii: "\r")) }
        send(byte)
    }
}

@main
struct ConsoleService {
    static func main() {
        guard let port = ProgramStart.handle(.service) else { System.panic("console: started without a port") }
        guard let access = ProgramStart.handle(.deviceAccess) else {
            System.panic("console: started without device access (the manifest gives it with devices=console)")
        }
        let device: (registers: Handle, interrupt: Handle)
        let uart: PL011
        let bell: Handle
        let identifier: UInt64
        do throws(KernelError) {
            device = try System.openDevice(0, through: access)
            uart = PL011(base: UInt64(UInt(bitPattern: try IPC.map(device.registers, writable: true))))
            bell = try IPC.createNotification()
            identifier = try System.bindInterrupt(device.interrupt, to: bell)
        } catch {
            System.panic("console: cannot open the UART: \(error)")
        }
        uart.enableReceiveInterrupts()
        var server = ConsoleServer(uart: uart)
        do throws(KernelError) {
            server.kernelLog = try System.openLog(through: access, notification: bell, bits: ConsoleServer.logBit)
        } catch {
            System.print("console: the kernel log stays with the kernel: \(error)")
        }
        let terminal = ProgramStart.handle(.privateService)
        if terminal == nil { System.print("console: started without a private port: nobody may read the terminal") }
        System.print("console: ready (PL011, interrupt \(identifier)\(server.kernelLog != nil ? ", kernel log" : ""))")
        server.serve(port: port, terminal: terminal, bell: bell, interrupt: device.interrupt)
    }
}

/// The driver's state: typed input not yet read, the read waiting, who hears Ctrl-C.
///
/// Flow control: when the input queue is full, the driver leaves received bytes in the UART and
/// masks its receive interrupt, so the sender is held back (QEMU stops reading its input while the
/// UART's FIFO is full; a real line does the same with RTS/CTS) and a fast typist or a paste loses
/// nothing while the reader catches up. A queue nobody takes from for `holdBackLimit` would also
/// hold back a Ctrl-C behind the waiting bytes, so then the driver reads on, dropping what does not
/// fit (counted in `bytesDropped`; never a Ctrl-C) and acting on Ctrl-C, until a read makes room
/// again. The limit counts from when the queue filled, whatever else the driver serves meanwhile.
struct ConsoleServer {
    static let inputCapacity = 1024
    static let holdBackLimit: UInt64 = 1_000_000_000
    /// The bell's bits: the UART's interrupt sets the first, records in the kernel log the second.
    static let interruptBit: UInt64 = 1
    static let logBit: UInt64 = 2
    static let lineCapacity = 256
    let uart: PL011
    /// The kernel log's reader, if this instance got it.
    var kernelLog: Handle?
    /// What went out since the last newline (the prompt, the echo of a line being typed), to be
    /// written again after kernel log records interrupted it; not if it grew past the capacity.
    var currentLine = InlineArray<256, UInt8>(repeating: 0)
    var currentLineLength = 0
    var input = InlineArray<1024, UInt8>(repeating: 0)
    var inputStart = 0
    var inputCount = 0
    var line = LineDiscipline()
    /// The reply capability of the read waiting, whether it is raw, and whether it came through
    /// the loan (which, ended, fails it).
    var reader: Handle?
    var readerRaw = false
    var readerFromLoan = false
    /// The terminal lent to a program (`lend`): a port of this driver's, served as the terminal
    /// but for lending, until `endLoan`, the next `lend`, or this instance's end closes it.
    var loan: Handle?
    /// Whether the terminal is raw: from a raw read until a line read or `foreground`. Ctrl-C is
    /// then a byte like any other.
    var rawMode = false
    /// Who hears Ctrl-C: the notification named through the terminal, and one named through the
    /// loan, which comes first while the loan lasts and goes with it.
    var interruptNotification: Handle?
    var loanInterrupt: Handle?
    var bytesWritten: UInt64 = 0
    var bytesRead: UInt64 = 0
    var interrupts: UInt64 = 0
    var requests: UInt64 = 0
    /// Ctrl-C (and Ctrl-\) interrupts signalled.
    var interruptsTyped: UInt64 = 0
    /// Whether received bytes wait in the UART, its receive interrupt masked, for room in the queue.
    var holdingBack = false
    /// When holding back began (clock ticks); a read that makes room ends it.
    var holdingBackSince: UInt64 = 0
    /// Whether the queue stayed full for `holdBackLimit`: bytes that do not fit are then dropped.
    var overflowing = false
    var bytesDropped: UInt64 = 0
    /// How often the queue filled and the sender was held back.
    var holdBacks: UInt64 = 0

    init(uart: PL011) { self.uart = uart }

    mutating func serve(port: Handle, terminal: Handle?, bell: Handle, interrupt: Handle) {
        var message = IPCMessage()
        var turn = 0
        // Bytes typed while no driver ran (before this one, or between instances) wait in the FIFO.
        drain()
        while true {
            // Held back for a whole `holdBackLimit` with no read (whatever else came meanwhile:
            // writes, log records): read on, dropping what does not fit, so that a Ctrl-C behind
            // it still gets through.
            let holdBackLeft = holdingBack ? remainingHoldBack() : .max
            if holdBackLeft == 0 {
                overflowing = true
                drain()
                continue
            }
            // Taken in turn: each wait starts with the source after the one served last, so none
            // holds the others back. A client flooding the public port cannot starve typed input
            // (the bell) or the terminal, nor a program flooding the terminal Ctrl-C. The sources:
            // the terminal and its loan, when there are, the bell, the public port.
            var sources = InlineArray<4, UInt64>(repeating: 0)
            var sourceCount = 0
            if let terminal {
                sources[sourceCount] = terminal.value
                sourceCount += 1
            }
            if let loan {
                sources[sourceCount] = loan.value
                sourceCount += 1
            }
            sources[sourceCount] = bell.value
            sources[sourceCount + 1] = port.value
            sourceCount += 2
            let source = nextReady(among: sources, count: sourceCount, startingAt: turn % sourceCount,
                                   timeout: holdBackLeft)
            guard let source else { continue }
            turn = source + 1
            let ready = Handle(sources[source])
            if ready == bell {
                let bits = (try? IPC.wait(bell, timeout: 0)) ?? 0
                // More records than a turn takes: the bit again, for a later turn.
                if bits & Self.logBit != 0 && writeKernelLog() { try? IPC.signal(bell, bits: Self.logBit) }
                if bits & Self.interruptBit != 0 {
                    interrupts &+= 1
                    // Clear the interrupt before draining: a byte that arrives meanwhile raises it again.
                    uart.clearReceiveInterrupts()
                    drain()
                    try? System.acknowledgeInterrupt(interrupt)
                }
                continue
            }
            do throws(KernelError) {
                try IPC.receive(ready, into: &message, timeout: 0)
            } catch {
                continue
            }
            requests &+= 1
            handle(&message, from: ready == terminal ? .terminal : ready == loan ? .loan : .publicPort)
            // A read made room: take what waits in the UART, held back again (not dropped) if
            // the queue fills once more.
            if (holdingBack || overflowing) && inputCount < Self.inputCapacity {
                overflowing = false
                drain()
            }
        }
    }

    /// The index in `sources` of one ready to be served, waiting at most `timeout` ns (nil: none
    /// was, or the wait failed): the first ready in order from `start`, round the end.
    func nextReady(among sources: InlineArray<4, UInt64>, count: Int, startingAt start: Int,
                   timeout: UInt64) -> Int? {
        var order = InlineArray<4, UInt64>(repeating: 0)
        for position in 0..<count { order[position] = sources[(start + position) % count] }
        guard let ready = try? withUnsafeMutablePointer(to: &order, { words throws(KernelError) in
            try System.invoke(SystemCall.WaitAny(handles: UserAddress(words), count: UInt64(count), timeout: timeout))
        }).index else { return nil }
        return (start + Int(ready)) % count
    }

    /// Nanoseconds left before holding back turns into dropping.
    func remainingHoldBack() -> UInt64 {
        let elapsed = System.clock.elapsed(sinceTicks: holdingBackSince, perSecond: 1_000_000_000)
        return elapsed >= Self.holdBackLimit ? 0 : Self.holdBackLimit - elapsed
    }

    /// Moves received bytes into the input queue, as many as fit (all, dropping the rest, when
    /// overflowing); Ctrl-C, unless a raw read waits, interrupts. Then serves a waiting read, and
    /// goes on while that made room; holds back what still waits in the UART when the queue is full.
    mutating func drain() {
        while true {
            while inputCount < Self.inputCapacity || overflowing, let byte = uart.receive() {
                bytesRead &+= 1
                if byte == TerminalKey.quit && loan != nil {
                    interruptTyped(quit: true)
                    continue
                }
                if byte == TerminalKey.ctrlC && !rawMode {
                    interruptTyped()
                    continue
                }
                if inputCount < Self.inputCapacity {
                    input[(inputStart + inputCount) % Self.inputCapacity] = byte
                    inputCount += 1
                } else if byte == TerminalKey.ctrlC {
                    // Raw, overflowing: a Ctrl-C is never the byte dropped (`foreground` looks
                    // for it in the queue); the newest queued byte makes way.
                    input[(inputStart + inputCount - 1) % Self.inputCapacity] = byte
                    bytesDropped &+= 1
                } else {
                    bytesDropped &+= 1
                }
            }
            let queued = inputCount
            serveReader()
            guard inputCount < queued && inputCount < Self.inputCapacity else { break }
        }
        if inputCount < Self.inputCapacity { overflowing = false }
        let holdBack = inputCount == Self.inputCapacity && !overflowing
        if holdBack != holdingBack {
            holdingBack = holdBack
            if holdBack {
                uart.disableReceiveInterrupts()
                holdingBackSince = System.clock.ticks
                holdBacks &+= 1
            } else {
                uart.enableReceiveInterrupts()
            }
        }
    }

    /// Ctrl-C: the typed input is dropped, a waiting line read is told, and so is the holder of
    /// the interrupt notification (the shell, which ends its foreground program), or the one
    /// named through the loan while there is one. Ctrl-\ while the terminal is lent (`quit`):
    /// the same, but always the terminal's notification, with bit 1: the program that borrowed
    /// the terminal may have taken Ctrl-C for itself, and its lender can still end it.
    mutating func interruptTyped(quit: Bool = false) {
        inputCount = 0
        if reader != nil && !readerRaw {
            line.clear()
            writeOut(quit ? "^\\\n" : "^C\n")
            answerReader(.interrupted, raw: false)
        }
        interruptsTyped &+= 1
        let notification = quit ? interruptNotification : loanInterrupt ?? interruptNotification
        if let notification { try? IPC.signal(notification, bits: quit ? 2 : 1) }
    }

    /// Where a request came from, which decides what it may ask.
    enum RequestSource {
        case terminal
        case loan
        case publicPort

        func allows(_ request: ConsoleRequest) -> Bool {
            switch self {
            case .terminal: return true
            case .loan: return !request.needsOwnTerminal
            case .publicPort: return !request.needsTerminal
            }
        }
    }

    /// Serves a request from `source`.
    mutating func handle(_ message: inout IPCMessage, from source: RequestSource) {
        guard let reply = message.replyHandle else {
            message.closeHandles()
            return
        }
        let request = ConsoleRequest(rawValue: message.label)
        if let request, !source.allows(request) {
            message.closeHandles()
            answer(reply, &message, label: KernelError.accessDenied.rawValue)
            return
        }
        if request != .setInterrupt { message.closeHandles() }
        switch request {
        case .write:
            let count = min(max(message.length, 0), IPCMessageLayout.maximumPayload)
            for index in 0..<count { emit(message[byte: index]) }
            bytesWritten &+= UInt64(count)
            answer(reply, &message, label: 0)
        case .readLine, .readRaw:
            if let older = reader {
                var refusal = IPCMessage(label: KernelError.wouldBlock.rawValue)
                try? IPC.reply(older, &refusal)
            }
            reader = reply
            readerRaw = request == .readRaw
            readerFromLoan = source == .loan
            rawMode = readerRaw
            if !readerRaw { line.clear() }
            serveReader()
        case .setInterrupt:
            guard message.handleCount == 1 else {
                message.closeHandles()
                answer(reply, &message, label: KernelError.invalidArgument.rawValue)
                return
            }
            if source == .loan {
                if let old = loanInterrupt { try? IPC.close(old) }
                loanInterrupt = message.handle(0)
            } else {
                if let old = interruptNotification { try? IPC.close(old) }
                interruptNotification = message.handle(0)
            }
            answer(reply, &message, label: 0)
        case .statistics:
            message = IPCMessage(label: 0)
            message.length = 56
            message.setWord(atByte: 0, bytesWritten)
            message.setWord(atByte: 8, bytesRead)
            message.setWord(atByte: 16, interrupts)
            message.setWord(atByte: 24, requests)
            message.setWord(atByte: 32, interruptsTyped)
            message.setWord(atByte: 40, bytesDropped)
            message.setWord(atByte: 48, holdBacks)
            try? IPC.reply(reply, &message)
        case .foreground:
            // Bytes the lender read ahead were typed before those queued here: they go first, as
            // many as there is room for (the oldest of the queued ones make way, as at overflow).
            // Only from the terminal itself: through a loan, a program could put input in front
            // of the shell's next command line.
            guard source == .terminal || message.length == 0 else {
                answer(reply, &message, label: KernelError.accessDenied.rawValue)
                return
            }
            let given = min(message.length, Self.inputCapacity)
            for index in stride(from: given - 1, through: 0, by: -1) {
                if inputCount == Self.inputCapacity {
                    inputCount -= 1
                    bytesDropped &+= 1
                }
                inputStart = (inputStart + Self.inputCapacity - 1) % Self.inputCapacity
                input[inputStart] = message[byte: index]
                inputCount += 1
            }
            // A Ctrl-C, or while the terminal is lent a Ctrl-\, typed while it was raw and not
            // read yet becomes the interrupt it would be now (Ctrl-\ first: it is the lender's).
            rawMode = false
            var ctrlC = false
            var quit = false
            for index in 0..<inputCount {
                let byte = input[(inputStart + index) % Self.inputCapacity]
                if byte == TerminalKey.ctrlC { ctrlC = true }
                if byte == TerminalKey.quit && loan != nil { quit = true }
            }
            if quit {
                interruptTyped(quit: true)
            } else if ctrlC {
                interruptTyped()
            }
            answer(reply, &message, label: 0)
            // A read already waiting through the loan takes what was given.
            serveReader()
        case .lend:
            endLoan()
            do throws(KernelError) {
                let made = try IPC.createPort()
                let lent: Handle
                do throws(KernelError) {
                    lent = try IPC.duplicate(made, rights: [.send, .transfer])
                } catch {
                    try? IPC.close(made)
                    throw error
                }
                loan = made
                message = IPCMessage(label: 0)
                message.attach(lent)
                // Not delivered (the caller is gone): the loan's send right goes with the answer.
                try? IPC.reply(reply, &message)
            } catch {
                answer(reply, &message, label: error.rawValue)
            }
        case .endLoan:
            endLoan()
            answer(reply, &message, label: 0)
        case nil:
            answer(reply, &message, label: KernelError.invalidArgument.rawValue)
        }
    }

    /// Ends the loan of the terminal, if any: its port closes, so every copy of its send right
    /// fails from now on (`peerClosed`), a read waiting through it is failed the same way, and
    /// Ctrl-C goes to the terminal's notification again.
    mutating func endLoan() {
        guard let lent = loan else { return }
        loan = nil
        try? IPC.close(lent)
        if let notification = loanInterrupt {
            loanInterrupt = nil
            try? IPC.close(notification)
        }
        if readerFromLoan, let waiting = reader {
            reader = nil
            readerFromLoan = false
            var refusal = IPCMessage(label: KernelError.peerClosed.rawValue)
            try? IPC.reply(waiting, &refusal)
        }
    }

    func answer(_ reply: Handle, _ message: inout IPCMessage, label: UInt64) {
        message = IPCMessage(label: label)
        try? IPC.reply(reply, &message)
    }

    /// Gives the waiting read what the input queue holds for it, if enough.
    mutating func serveReader() {
        guard reader != nil else { return }
        if readerRaw {
            guard inputCount > 0 else { return }
            answerReader(.data, raw: true)
            return
        }
        while inputCount > 0 {
            let byte = takeInput()
            switch line.take(byte) {
            case .none: break
            case .echoByte(let typed): emit(typed)
            case .erase(let count):
                for _ in 0..<count { writeOut("\u{8} \u{8}") }
            case .complete:
                writeOut("\n")
                answerReader(.data, raw: false)
                return
            case .endOfInput:
                answerReader(.endOfInput, raw: false)
                return
            }
        }
    }

    mutating func takeInput() -> UInt8 {
        let byte = input[inputStart]
        inputStart = (inputStart + 1) % Self.inputCapacity
        inputCount -= 1
        return byte
    }

    /// Answers the waiting read: for a raw read, the queued bytes; for a line read, the line.
    mutating func answerReader(_ result: ConsoleReadResult, raw: Bool) {
        guard let reply = reader else { return }
        var message = IPCMessage(label: 0)
        message.setWord(atByte: 0, result.rawValue)
        var count = 0
        if raw {
            while inputCount > 0 && count < Console.maximumRead {
                message[byte: Console.dataOffset + count] = takeInput()
                count += 1
            }
        } else if result == .data {
            count = line.length
            for index in 0..<count { message[byte: Console.dataOffset + index] = line.bytes[index] }
            line.clear()
        }
        message.length = Console.dataOffset + count
        reader = nil
        // A reader that went away (its caller ended) is simply forgotten.
        try? IPC.reply(reply, &message)
    }

    mutating func writeOut(_ text: StaticString) {
        for index in 0..<text.utf8CodeUnitCount { emit(text.utf8Start[index]) }
    }

    /// Writes a byte of the console's own output, keeping the line it is on.
    mutating func emit(_ byte: UInt8) {
        uart.put(byte)
        if byte == UInt8(ascii: "\n") {
            currentLineLength = 0
        } else if currentLineLength < Self.lineCapacity {
            currentLine[currentLineLength] = byte
            currentLineLength += 1
        } else {
            currentLineLength = Self.lineCapacity + 1
        }
    }

    /// Reads of the kernel log in one turn at most (512 bytes each): a program that writes to
    /// the log without a pause, faster than the UART takes it, must not hold back typed input,
    /// Ctrl-C or the clients.
    static let logReadsPerTurn = 8

    /// Writes out the kernel log's waiting records, on lines of their own: below the line the
    /// console was on, which is then written again. Whether it stopped at `logReadsPerTurn` with
    /// records perhaps still waiting.
    mutating func writeKernelLog() -> Bool {
        guard let kernelLog else { return false }
        var buffer = InlineArray<512, UInt8>(repeating: 0)
        var movedDown = false
        var lastByte = UInt8(ascii: "\n")
        var drained = false
        for _ in 0..<Self.logReadsPerTurn {
            let count = (try? withUnsafeMutableBytes(of: &buffer) { bytes throws(KernelError) in
                try System.readLog(kernelLog, into: bytes)
            }) ?? 0
            guard count > 0 else {
                drained = true
                break
            }
            if !movedDown && currentLineLength > 0 {
                uart.put(UInt8(ascii: "\n"))
                movedDown = true
            }
            for index in 0..<count { uart.put(buffer[index]) }
            lastByte = buffer[count - 1]
        }
        if lastByte != UInt8(ascii: "\n") { uart.put(UInt8(ascii: "\n")) }
        if movedDown && currentLineLength <= Self.lineCapacity {
            for index in 0..<currentLineLength { uart.put(currentLine[index]) }
        }
        return !drained
    }
}
