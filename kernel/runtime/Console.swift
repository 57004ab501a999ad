// The kernel log: whole lines formatted without allocation, written to the boot console under
// a lock so that lines from different cores never interleave.

import AArch64
import Synchronization

enum Console {
    /// Set once at boot, before any other core runs; nil until the device tree names a UART.
    nonisolated(unsafe) static var device: PL011?

    static let lock = SpinLock()

    static func write(_ line: TextLine) {
        guard let device else { return }
        lock.withLock {
            line.forEachByte { emit($0, to: device) }
            emit(UInt8(ascii: "\n"), to: device)
        }
    }

    /// Bytes as they are (a program's output), with "\n" sent as "\r\n".
    /// One byte for a terminal: a line feed goes out as CR LF.
    private static func emit(_ byte: UInt8, to device: PL011) {
        if byte == UInt8(ascii: "\n") { device.write(byte: UInt8(ascii: "\r")) }
        device.write(byte: byte)
    }

    static func writeRaw(_ bytes: UnsafeRawBufferPointer) {
        guard let device else { return }
        lock.withLock {
            for byte in bytes { emit(byte, to: device) }
        }
    }

    static func flush() { device?.flush() }
}

/// Prints one line to the kernel console.
func log(_ text: FormattedText) {
    Console.write(text.line)
}

/// A test-and-test-and-set lock for short critical sections, held with IRQs masked: the kernel
/// takes interrupts while its boot and idle code runs, and an interrupt (or the switch it leads
/// to) must never find a lock held by the code it interrupted on the same CPU.
struct SpinLock: ~Copyable, @unchecked Sendable {
    private let held = Atomic<Bool>(false)

    init() {}

    func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        let interruptMask = aarch64_read_daif()
        aarch64_disable_interrupts()
        while true {
            if !held.load(ordering: .relaxed),
               held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
                break
            }
        }
        defer {
            held.store(false, ordering: .releasing)
            aarch64_write_daif(interruptMask)
        }
        return try body()
    }
}
