// Stores that are one store instruction.
//
// `storeBytes(of:toByteOffset:as:)` promises to work at any address. The kernel is built for
// strict alignment (its first code runs with the MMU off, where every access must be aligned),
// so the compiler cannot use a wide store there and writes such a value one byte at a time: a
// 64-bit translation table descriptor became eight byte stores, which a table walk on another
// CPU could see half written, and a 48-byte allocator zone record forty-eight. These stores say
// the address is aligned for the value's type, as every one of their callers' addresses is; a
// misaligned one faults instead of being split.

extension UnsafeMutableRawPointer {
    /// Stores `value` at `self + offset`, which must be aligned for `T`.
    @inline(__always)
    func storeAligned<T>(_ value: T, toByteOffset offset: Int = 0) {
        (self + offset).assumingMemoryBound(to: T.self).pointee = value
    }

    /// Zeroes `bytes` (a multiple of 8) at `self`, 8-byte aligned, a word at a time.
    func zeroWords(bytes: Int) {
        for offset in stride(from: 0, to: bytes, by: 8) { storeAligned(UInt64(0), toByteOffset: offset) }
    }
}
