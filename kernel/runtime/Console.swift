// The kernel log: whole lines formatted without allocation, written to the boot console under
// a lock so that lines from different cores never interleave. Once the console service has opened
// the log (ipc/KernelLog.swift), lines and programs' debug writes queue for it instead, and it
// writes them out between its own; a queue that is full, a reader that went away and a panic send
// everything straight to the UART again, oldest first.

import Synchronization

enum Console {
    /// Set once at boot, before any other core runs; nil until the device tree names a UART.
    nonisolated(unsafe) static var device: PL011?
    /// The console service's reader of the log, while it has one. Behind `lock`. Not a
    /// reference the reader's life depends on: its handles decide that, and its end detaches it.
    nonisolated(unsafe) private static var attached: Unmanaged<KernelLogReader>?
    private static var reader: KernelLogReader? { attached?.takeUnretainedValue() }

    /// Last in the lock order (LockOrder.console): any lock may be held while a line is written,
    /// so that a panic can report under any of them.
    static let lock = SpinLock(.console)

    static func write(_ line: TextLine) {
        lock.withLock {
            let queued = line.withUnsafeBytes { bytes in enqueue(bytes, terminator: UInt8(ascii: "\n")) }
            guard !queued, let device else { return }
            line.forEachByte { emit($0, to: device) }
            emit(UInt8(ascii: "\n"), to: device)
        }
    }

    /// Bytes as they are (a program's output), with "\n" sent as "\r\n".
    static func writeRaw(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock {
            guard !enqueue(bytes, terminator: nil), let device else { return }
            for byte in bytes { emit(byte, to: device) }
        }
    }

    /// One byte for a terminal: a line feed goes out as CR LF.
    private static func emit(_ byte: UInt8, to device: PL011) {
        if byte == UInt8(ascii: "\n") { device.write(byte: UInt8(ascii: "\r")) }
        device.write(byte: byte)
    }

    /// Under `lock`: queues the record for the reader, if there is one, no panic is under way and
    /// it fits; otherwise writes out what is queued, so that the caller's direct write comes after
    /// it. Whether it was queued.
    private static func enqueue(_ bytes: UnsafeRawBufferPointer, terminator: UInt8?) -> Bool {
        guard let reader else { return false }
        if !Panic.started.load(ordering: .relaxed) && reader.queue.append(bytes, terminator: terminator) {
            KernelLog.signalPending.store(true, ordering: .releasing)
            return true
        }
        writeQueued(of: reader)
        return false
    }

    /// Under `lock`: everything queued, straight to the UART.
    private static func writeQueued(of reader: KernelLogReader) {
        guard let device else {
            while reader.queue.removeFirst({ _ in }) {}
            return
        }
        while reader.queue.removeFirst({ emit($0, to: device) }) {}
    }

    static var hasReader: Bool { lock.withLock { attached != nil } }

    /// The reader's notification and bits, if there is a reader.
    static func readerNotification() -> (Notification, UInt64)? {
        lock.withLock {
            guard let reader else { return nil }
            return (reader.notification, reader.bits)
        }
    }

    static func attach(_ newReader: KernelLogReader) {
        lock.withLock { attached = Unmanaged.passUnretained(newReader) }
    }

    /// The reader's last handle went: what it did not read goes out now.
    static func detach(_ oldReader: KernelLogReader) {
        lock.withLock {
            writeQueued(of: oldReader)
            // Compared without a reference: the reader is being deinitialised.
            if attached?.toOpaque() == Unmanaged.passUnretained(oldReader).toOpaque() { attached = nil }
        }
    }

    static func copyFirstRecord(of reader: KernelLogReader, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        lock.withLock { reader.queue.copyFirst(into: buffer) }
    }

    static func dropFirstRecord(of reader: KernelLogReader) {
        lock.withLock { reader.queue.dropFirst() }
    }

    /// Before the machine stops: the kernel takes its log back, writing out what waits, and
    /// the UART's queue drains.
    static func flush() {
        lock.withLock {
            if let reader { writeQueued(of: reader) }
            attached = nil
        }
        device?.flush()
    }
}

/// Prints one line to the kernel console.
func log(_ text: FormattedText) {
    Console.write(text.line)
}
