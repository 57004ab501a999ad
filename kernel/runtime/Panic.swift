// Kernel panics: a message with its source location (or an exception report), a backtrace, then
// the machine stops. In test mode it powers off so that a boot test ends at once.

import Synchronization

enum Panic {
    /// Set once by the boot sequence, before any other core runs, when the command line asks
    /// for test mode.
    nonisolated(unsafe) static var powerOffOnPanic = false
    /// Set by the first panic on any CPU.
    static let started = Atomic<Bool>(false)

    static func begin() {
        CPU.maskAllExceptions()
        if started.exchange(true, ordering: .relaxed) {
            // A panic while reporting a panic: report nothing more, not even a flush, since the
            // console may be what faults. Just stop.
            if powerOffOnPanic { PSCI.systemOff() }
            CPU.halt()
        }
    }

    static func end() -> Never {
        log("Kernel panic: system halted")
        stop()
    }

    /// Stops the machine once a report is out: powered off in test mode, so that a boot test
    /// ends at once; otherwise halted, the report left on the console.
    static func stop() -> Never {
        Console.flush()
        if powerOffOnPanic { PSCI.systemOff() }
        CPU.halt()
    }

    /// Walks AAPCS64 frame records {previous x29, x30} from `framePointer`, staying inside the
    /// kernel image's stack area and stopping at the null record boot.S plants. Each frame is
    /// named from the image's symbol table: `#1 0x…  Scheduler.tick()+0x18 (kernel/…:40)`.
    static func backtrace(from framePointer: UInt64) {
        var frame = framePointer
        var depth = 0
        log("  backtrace:")
        while frame != 0 && frame & 0xF == 0 && depth < 16 {
            guard frame >= imageStart, frame < imageEnd else { break }
            let record = UnsafePointer<UInt64>(bitPattern: UInt(frame))!
            let returnAddress = record[1]
            if returnAddress == 0 { break }
            var line = TextLine()
            line.write("    #")
            line.writeDecimal(UInt64(depth))
            line.write(" ")
            line.writeHex(returnAddress)
            line.write("  ")
            if !describe(returnAddress, into: &line, isReturnAddress: true) {
                line.write("(image offset ")
                line.writeHex(returnAddress &- imageStart, digits: 8)
                line.write(")")
            }
            Console.write(line)
            frame = record[0]
            depth += 1
        }
    }

    /// Writes `function+0xoffset (file:line)` for a kernel code address from the symbol table
    /// linked into the image; false, with nothing written, if no function holds it (or the
    /// table is missing or damaged: it is read with bounds checks only, never trusted).
    @discardableResult
    static func describe(_ address: UInt64, into line: inout TextLine, isReturnAddress: Bool = false) -> Bool {
        guard address >= imageStart, address < imageEnd, let table = SymbolTable(KernelImage.symbols) else { return false }
        let linkAddress = (address - imageStart) &+ table.base // the base is the table's word: no trap on overflow
        guard let symbol = isReturnAddress ? table.lookup(returnAddress: linkAddress) : table.lookup(linkAddress) else {
            return false
        }
        table.describe(symbol, into: &line)
        return true
    }

    static var imageStart: UInt64 { KernelImage.start }
    static var imageEnd: UInt64 { KernelImage.end }
}

/// Stops the kernel with a message. Only for kernel bugs: bad input from devices, loaders or
/// users is an error value, never a panic.
func kernelPanic(_ message: FormattedText, file: StaticString = #fileID, line: UInt = #line) -> Never {
    Panic.begin()
    var header = TextLine()
    header.write("Kernel panic: ")
    message.line.forEachByte { header.write(byte: $0) }
    Console.write(header)
    log("  at \(file):\(line)")
    Panic.backtrace(from: CPU.framePointer)
    Panic.end()
}

