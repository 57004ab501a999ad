// Little-endian fields of byte buffers that come from outside (ELF files, symbol tables), read a
// byte at a time: the buffer may sit at any alignment, and the caller has checked the bytes are
// there.

extension UnsafeRawBufferPointer {
    func littleEndian16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    func littleEndian32(at offset: Int) -> UInt32 {
        UInt32(littleEndian16(at: offset)) | UInt32(littleEndian16(at: offset + 2)) << 16
    }

    func littleEndian64(at offset: Int) -> UInt64 {
        UInt64(littleEndian32(at: offset)) | UInt64(littleEndian32(at: offset + 4)) << 32
    }
}
