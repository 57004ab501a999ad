// Kernel panics: a message with its source location (or an exception report), a backtrace, then
// the machine stops. In test mode it powers off so that a boot test ends at once. The other CPUs
// stop first: the panicking one sends each the stop SGI, and a CPU that waits for the big kernel
// lock, which the panicking one may hold, finds the panic in its spin loop, so no user thread
// runs on after it.

import Synchronization

enum Panic {
    /// Set once by the boot sequence, before any other core runs, when the command line asks
    /// for test mode.
    nonisolated(unsafe) static var powerOffOnPanic = false
    /// Set by the first panic on any CPU.
    static let started = Atomic<Bool>(false)
    /// The index of the CPU that panicked first (-1 until then).
    static let panickingCPU = Atomic<Int>(-1)
    /// SGI 1, sent by a panicking CPU to the others: stop (`stopIfAnotherPanicked`).
    static let stopInterrupt: UInt32 = 1
    /// The other CPUs told to stop, and those that did, one bit per index. `stopsSent` is written
    /// and read only by the CPU that panicked first (the one `started` let through).
    nonisolated(unsafe) static var stopsSent: UInt64 = 0
    static let stoppedCPUs = Atomic<UInt64>(0)

    static func begin() {
        CPU.maskAllExceptions()
        if started.exchange(true, ordering: .relaxed) {
            // Another CPU panicked first: this one is just stopped.
            stopIfAnotherPanicked()
            // A panic while reporting a panic: report nothing more, not even a flush, since the
            // console may be what faults. Just stop.
            if powerOffOnPanic { PSCI.systemOff() }
            CPU.halt()
        }
        panickingCPU.store(cpuIndex, ordering: .relaxed)
        stopsSent = SecondaryCPUs.interruptOthers(with: stopInterrupt)
    }

    static func end() -> Never {
        reportStoppedCPUs()
        log("Kernel panic: system halted")
        stop()
    }

    /// For code that waits on another CPU (the big kernel lock's spin loops, the stop SGI's
    /// handler): when a panic has begun on another CPU, this one stops here, whatever it was doing.
    @inline(__always)
    static func stopIfAnotherPanicked() {
        if started.load(ordering: .relaxed) && panickingCPU.load(ordering: .relaxed) != cpuIndex { stopHere() }
    }

    /// This CPU's index; 0 before the per-CPU blocks exist (only the boot CPU runs then).
    static var cpuIndex: Int { PerCPU.isStarted ? PerCPU.current.index : 0 }

    /// Records that this CPU stopped for another's panic, and halts.
    static func stopHere() -> Never {
        CPU.maskAllExceptions()
        stoppedCPUs.bitwiseOr(1 << UInt64(cpuIndex), ordering: .releasing)
        CPU.halt()
    }

    /// Says how many of the CPUs sent the stop SGI have stopped, giving them up to 100 ms.
    static func reportStoppedCPUs() {
        guard stopsSent != 0 else { return }
        let deadline = GenericTimer.count + GenericTimer.frequency / 10
        while stoppedCPUs.load(ordering: .acquiring) & stopsSent != stopsSent && GenericTimer.count < deadline {}
        let stopped = stoppedCPUs.load(ordering: .acquiring) & stopsSent
        log("Kernel panic: other CPUs stopped: \(stopped.nonzeroBitCount) of \(stopsSent.nonzeroBitCount)")
    }

    /// Stops the machine once a report is out: powered off in test mode, so that a boot test
    /// ends at once; otherwise halted, the report left on the console.
    static func stop() -> Never {
        Console.flush()
        if powerOffOnPanic { PSCI.systemOff() }
        CPU.halt()
    }

    /// Walks AAPCS64 frame records {previous x29, x30} from `framePointer`, staying inside the
    /// stack it starts on (the boot stack in the kernel image, a secondary CPU's own stack, or a
    /// thread's kernel stack, whose pages are all mapped), each record above the last, through
    /// the record an exception frame holds into the interrupted kernel code, and stopping at the
    /// null record boot.S plants or where a record leads off the stack or out of the kernel (an
    /// exception from EL0 leaves the user's x29 and x30 in its record). Each frame is named from
    /// the image's symbol table:
    /// `#1 0x…  Scheduler.tick(periods:)+0x18 (kernel/…:40)`.
    static func backtrace(from framePointer: UInt64) {
        var frame = framePointer
        var depth = 0
        log("  backtrace:")
        let stack = stackBounds(containing: framePointer)
        var previous: UInt64 = 0
        // 8-byte aligned, not 16: the record an exception frame holds (the interrupted code's
        // x29 and x30, side by side at register 29) lies 8 bytes off a 16-byte boundary.
        while frame != 0 && frame & 0x7 == 0 && depth < 16 {
            guard stack.contains(frame), stack.upperBound - frame >= 16, frame > previous else { break }
            previous = frame
            let record = UnsafePointer<UInt64>(bitPattern: UInt(frame))!
            let returnAddress = record[1]
            // Kernel code returns into the image: anything else is where an exception from EL0
            // came in (its record holds the user's x29 and x30), or garbage.
            guard returnAddress >= imageStart && returnAddress < imageEnd else { break }
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

    /// The stack that holds `address`: the kernel image (the boot CPU's boot stack), this CPU's
    /// own stack (a secondary CPU's, which its idle loop runs on), or a thread's kernel stack
    /// slot in use (its mapped pages, not the guard below); empty for anything else.
    static func stackBounds(containing address: UInt64) -> Range<UInt64> {
        if address >= imageStart && address < imageEnd { return imageStart..<imageEnd }
        if PerCPU.isStarted && PerCPU.current.ownStack.contains(address) { return PerCPU.current.ownStack }
        // A free slot's pages are unmapped: a damaged frame pointer there must not fault.
        guard let stack = KernelStacks.stackInUse(containing: address) else { return 0..<0 }
        return stack.bottom..<stack.top
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

