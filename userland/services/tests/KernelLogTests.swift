// The kernel log by capability (logOpen, logRead): what the console service uses to write the
// kernel's lines and other programs' debug writes between its own.

/// Only the device-access capability opens the log, one reader at a time, bound to a notification
/// the opener may signal. Debug writes then wait for the reader, each whole and in order, and ring
/// its bell; a buffer too small or not the caller's is refused and loses nothing; closing the
/// reader gives the log back, so it opens again; nothing is left behind.
func testKernelLog(_ suite: inout Suite) {
    let before = KernelHoldings.steady
    guard let access = System.startHandle, let port = try? IPC.createPort(), let bell = try? IPC.createNotification(),
          let withoutOpen = try? IPC.duplicate(access, rights: [.duplicate, .transfer]),
          let waitOnly = try? IPC.duplicate(bell, rights: [.wait]) else {
        suite.check(false, "started with a device-access capability; port and notifications for the kernel log tests")
        return
    }
    let forged = Handle(0x1234_0005)
    func open(_ access: Handle, _ notification: Handle, bits: UInt64 = 4) -> KernelError? {
        catching { () throws(KernelError) in
            let reader = try System.openLog(through: access, notification: notification, bits: bits)
            try? IPC.close(reader)
        }
    }
    let refusals = (open(forged, bell), open(port, bell), open(withoutOpen, bell), open(access, waitOnly), open(access, port),
                    open(access, bell, bits: 0))
    suite.check(refusals.0 == .invalidHandle && refusals.1 == .invalidHandle && refusals.2 == .accessDenied
                && refusals.3 == .accessDenied && refusals.4 == .accessDenied && refusals.5 == .invalidArgument,
                "logOpen needs the device-access capability with its open right (forged, port: invalid; no right: denied), a notification it may signal (a port has no signal right) and bits")

    guard let reader = try? System.openLog(through: access, notification: bell, bits: 4) else {
        suite.check(false, "logOpen through init's device-access capability")
        return
    }
    // From here until the reader is closed this program's own lines go to the log: the checks
    // are made after.
    // The checks below come after several that pass: a refusal of memory among the readings
    // counts against them from here.
    let refusalsMark = System.outOfMemoryResults
    let second = open(access, bell)
    System.print("tests: kernel log record one")
    System.print("tests: kernel log record two")
    let rang = try? IPC.wait(bell, timeout: 0)
    var small = InlineArray<64, UInt8>(repeating: 0)
    let tooSmall = catching { () throws(KernelError) in
        _ = try withUnsafeMutableBytes(of: &small) { bytes throws(KernelError) in try System.readLog(reader, into: bytes) }
    }
    let kernelBuffer = raw(SystemCallNumber.logRead.rawValue, reader.value, 0xFFFF_0000_4020_0000, 4096).status
    let unmapped = raw(SystemCallNumber.logRead.rawValue, reader.value, 0x7000_0000_0000, 4096).status
    let throughPort = raw(SystemCallNumber.logRead.rawValue, port.value, 0, 0).status
    let withoutReceive = try? IPC.duplicate(reader, rights: [.duplicate])
    var buffer = InlineArray<1024, UInt8>(repeating: 0)
    let denied = withoutReceive.map { copy in
        catching { () throws(KernelError) in
            _ = try withUnsafeMutableBytes(of: &buffer) { bytes throws(KernelError) in try System.readLog(copy, into: bytes) }
        }
    }
    if let withoutReceive { try? IPC.close(withoutReceive) }
    // A buffer that ends, at a page with nothing mapped after it, in the middle of the second
    // record: the read ends with the first, which reached it and says so; the second stays.
    let first: StaticString = "tests: kernel log record one\n"
    var partial = -1
    var partialMatches = false
    if let page = try? System.map(bytes: 4096, access: [.write]) {
        let start = page + 4096 - (first.utf8CodeUnitCount + 8)
        let status = raw(SystemCallNumber.logRead.rawValue, reader.value, UInt64(UInt(bitPattern: start)), 4096)
        if status.status == systemCallSuccess {
            partial = Int(status.value0)
            partialMatches = partial == first.utf8CodeUnitCount
                && (0..<partial).allSatisfy { start.load(fromByteOffset: $0, as: UInt8.self) == first.utf8Start[$0] }
        }
        try? System.unmap(page, bytes: 4096)
    }
    let read = (try? withUnsafeMutableBytes(of: &buffer) { bytes throws(KernelError) in try System.readLog(reader, into: bytes) }) ?? -1
    let again = (try? withUnsafeMutableBytes(of: &buffer) { bytes throws(KernelError) in try System.readLog(reader, into: bytes) }) ?? -1
    // Read again into the first bytes: `again` was 0 and changed nothing there.
    let expected: StaticString = "tests: kernel log record two\n"
    var matches = read == expected.utf8CodeUnitCount
    if matches {
        for index in 0..<read where buffer[index] != expected.utf8Start[index] { matches = false }
    }
    try? IPC.close(reader)

    suite.check(second == .accessDenied, "one reader at a time: a second logOpen is denied")
    suite.check(rang == 4, "a debug write rings the reader's bell with its bits (got \(rang ?? 0))")
    suite.check(tooSmall == .invalidArgument && kernelBuffer == KernelError.badAddress.rawValue
                && unmapped == KernelError.badAddress.rawValue && throughPort == KernelError.invalidHandle.rawValue
                && denied == .accessDenied,
                "logRead refuses a buffer below a record's maximum, kernel and unmapped buffers, a port, a reader without the receive right")
    suite.check(partialMatches && matches && again == 0,
                "the two lines wait whole and in order after the refused reads: a buffer that faults in the second ends the read with the first (\(partial) bytes), the second comes next (\(read) bytes); then nothing (\(again))",
                since: refusalsMark)
    let reopened = open(access, bell)
    suite.check(reopened == nil, "closing the reader gives the log back: it opens again")
    for handle in [port, bell, withoutOpen, waitOnly] { try? IPC.close(handle) }
    let after = KernelHoldings.settled(toNoMoreThan: before)
    suite.check(after.heapBlocks == before.heapBlocks && after.framesAvailable == before.framesAvailable,
                "the kernel log leaves nothing behind: kernel heap blocks \(before.heapBlocks) before, \(after.heapBlocks) after; free frames \(before.freeFrames) + heap pages \(before.heapPages) before, \(after.freeFrames) + \(after.heapPages) after")
}
