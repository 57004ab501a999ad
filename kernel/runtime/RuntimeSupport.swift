// The C-level functions the Embedded Swift runtime and LLVM's code generation call: memory
// copies and fills, the stack protector's failure hook, and the allocator entry points.

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
    var state = GenericTimer.count
    for index in 0..<count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        buffer.storeBytes(of: UInt8(truncatingIfNeeded: mixed ^ (mixed >> 31)), toByteOffset: index, as: UInt8.self)
    }
}
