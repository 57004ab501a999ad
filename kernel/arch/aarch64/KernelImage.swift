// Where the kernel image lies in memory at run time, from linker-script symbols.

import AArch64

enum KernelImage {
    static var start: UInt64 { aarch64_address_of_start_of_image() }
    /// One past the boot stack, the last thing the image reserves.
    static var end: UInt64 { aarch64_address_of_end() }
    static var size: UInt64 { end - start }
    static var exceptionVectors: UInt64 { aarch64_address_of_exception_vectors() }
}
