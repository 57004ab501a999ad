// The kernel log: whole lines formatted without allocation, written to the boot console under
// a lock so that lines from different cores never interleave.

enum Console {
    /// Set once at boot, before any other core runs; nil until the device tree names a UART.
    nonisolated(unsafe) static var device: PL011?

    /// Last in the lock order (LockOrder.console): any lock may be held while a line is written,
    /// so that a panic can report under any of them.
    static let lock = SpinLock(.console)

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
