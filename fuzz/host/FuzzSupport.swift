// Shared by the host fuzz targets (fuzz/host/run.py builds each target with this file and the
// kernel sources it needs): exactly sized input buffers, checks of the promises a parser makes
// about its results, and a sink that keeps every read the targets make from being optimized away.

/// Runs `body` on a copy of `bytes` in an allocation of exactly that size, so that
/// AddressSanitizer reports a read even one byte past the end.
func withExactCopy<Result>(of bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
    defer { storage.deallocate() }
    storage.copyMemory(from: bytes)
    return body(UnsafeRawBufferPointer(rebasing: storage[0..<bytes.count]))
}

/// Stops the run, so libFuzzer saves the input, when a parsed result breaks a promise of its parser.
func expect(_ condition: Bool, _ promise: StaticString) {
    if !condition { fatalError("\(promise)") }
}

/// True when `part` lies within `whole`; an empty part may sit at its very end.
func isInside(_ part: UnsafeRawBufferPointer, _ whole: UnsafeRawBufferPointer) -> Bool {
    guard let partStart = part.baseAddress else { return part.count == 0 }
    guard let wholeStart = whole.baseAddress else { return false }
    let start = UInt(bitPattern: partStart)
    let lower = UInt(bitPattern: wholeStart)
    return start >= lower && start - lower <= UInt(whole.count) && UInt(part.count) <= UInt(whole.count) - (start - lower)
}

/// Everything a target reads ends up here: an unused load could otherwise be deleted by the
/// optimizer, and with it AddressSanitizer's check of that load.
nonisolated(unsafe) var fuzzDigest: UInt64 = 0

@inline(never)
func consume(_ value: UInt64) {
    fuzzDigest = fuzzDigest &* 31 &+ value
}

func consume<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
    for byte in bytes { consume(UInt64(byte)) }
}

/// The first and last byte of a view: enough for AddressSanitizer to see a view that runs past
/// its buffer, without a pass over every byte of a large file.
func consume(endsOf bytes: UnsafeRawBufferPointer) {
    guard bytes.count > 0 else { return }
    consume(UInt64(bytes[0]) << 8 | UInt64(bytes[bytes.count - 1]))
}

/// A log line formatted as the kernel would print it.
func consume(_ text: FormattedText) {
    text.line.forEachByte { consume(UInt64($0)) }
}
