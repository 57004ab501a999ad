// Where the kernel image lies at run time, from linker-script symbols. Addresses are PC-relative,
// so they are physical before the MMU is on and linear-map addresses after.

import AArch64

enum KernelImage {
    static var start: UInt64 { aarch64_address_of_start_of_image() }
    /// One past the boot stack, the last thing the image reserves.
    static var end: UInt64 { aarch64_address_of_end() }
    static var size: UInt64 { end - start }
    /// Text ends, and read-only data begins, here (page-aligned).
    static var endOfText: UInt64 { aarch64_address_of_end_of_text() }
    /// Writable data and BSS begin here (page-aligned).
    static var startOfData: UInt64 { aarch64_address_of_start_of_data() }
    /// The unmapped page below the boot stack.
    static var bootStackGuard: UInt64 { aarch64_address_of_boot_stack_guard() }
    static var exceptionVectors: UInt64 { aarch64_address_of_exception_vectors() }
    /// The function symbol table linked into the image (empty in a first-pass link).
    static var symbols: UnsafeRawBufferPointer {
        let start = aarch64_address_of_kernel_symbols_start()
        let end = aarch64_address_of_kernel_symbols_end()
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(start)), count: Int(end - start))
    }

    static var physicalStart: PhysicalAddress { PhysicalAddress(start - PhysicalWindow.offset) }
}
