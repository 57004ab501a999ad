// The C-level functions the Embedded Swift runtime and LLVM's code generation call: memory
// copies and fills, the stack protector's failure hook, and the allocator entry points.

import AArch64

/// memcpy, memmove and memset are written so LLVM cannot recognise their loops as calls to
/// themselves (it skips functions with these names). Word-sized moves when both sides are
/// 8-byte aligned; bytes otherwise, which also keeps them safe while the MMU is off and all
/// memory is Device memory, where unaligned accesses fault.
@_silgen_name("memcpy")
func memcpy(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) -> UnsafeMutableRawPointer {
    copyForward(destination, source, count)
    return destination
}

@_silgen_name("memmove")
func memmove(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) -> UnsafeMutableRawPointer {
    let target = UInt(bitPattern: destination)
    let origin = UInt(bitPattern: source)
    if target <= origin || target >= origin + UInt(count) {
        copyForward(destination, source, count)
    } else {
        var index = count
        while index > 0 {
            index -= 1
            destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self), toByteOffset: index, as: UInt8.self)
        }
    }
    return destination
}

@_silgen_name("memset")
func memset(_ destination: UnsafeMutableRawPointer, _ value: Int32, _ count: Int) -> UnsafeMutableRawPointer {
    let byte = UInt8(truncatingIfNeeded: value)
    var index = 0
    if UInt(bitPattern: destination) & 7 == 0 {
        let word = UInt64(byte) &* 0x0101_0101_0101_0101
        let words = destination.assumingMemoryBound(to: UInt64.self)
        while index + 8 <= count {
            words[index / 8] = word
            index += 8
        }
    }
    while index < count {
        destination.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
        index += 1
    }
    return destination
}

@inline(__always)
private func copyForward(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) {
    var index = 0
    if (UInt(bitPattern: destination) | UInt(bitPattern: source)) & 7 == 0 {
        // Typed pointers tell the compiler the words are aligned, so they stay 8-byte moves.
        let targetWords = destination.assumingMemoryBound(to: UInt64.self)
        let sourceWords = source.assumingMemoryBound(to: UInt64.self)
        while index + 8 <= count {
            targetWords[index / 8] = sourceWords[index / 8]
            index += 8
        }
    }
    while index < count {
        destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self), toByteOffset: index, as: UInt8.self)
        index += 1
    }
}

@_cdecl("__stack_chk_fail")
func stackCheckFail() -> Never {
    kernelPanic("stack smashing detected (stack protector canary overwritten)")
}

/// Every Swift allocation in the kernel lands here. Fails with ENOMEM before the heap exists
/// (early boot allocates nothing) and when memory is exhausted; EINVAL for a bad alignment.
@_cdecl("posix_memalign")
func posixMemalign(_ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    guard alignment >= MemoryLayout<UnsafeRawPointer>.size, alignment & (alignment - 1) == 0 else { return 22 } // EINVAL
    guard let block = Heap.allocate(size: size, alignment: alignment) else {
        result.pointee = nil
        return 12 // ENOMEM
    }
    result.pointee = block
    return 0
}

/// Reached through `free` in boot.S: Swift reserves the name `free` for its own runtime's use.
@_cdecl("kernel_free")
func kernelFree(_ pointer: UnsafeMutableRawPointer?) {
    if let pointer { Heap.free(pointer) }
}

/// Seeds the standard library's per-boot hash randomisation (Hashable conformances reference
/// it). Mixes the free-running counter with SplitMix64: unpredictable enough to vary hash order
/// between boots, and not a source of cryptographic randomness.
@_cdecl("arc4random_buf")
func arc4randomBuffer(_ buffer: UnsafeMutableRawPointer, _ count: Int) {
    var state = aarch64_read_physical_count()
    for index in 0..<count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        buffer.storeBytes(of: UInt8(truncatingIfNeeded: mixed ^ (mixed >> 31)), toByteOffset: index, as: UInt8.self)
    }
}
