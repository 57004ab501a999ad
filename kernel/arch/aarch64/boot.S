// Kernel entry. The image follows the arm64 Linux "Image" boot protocol, so QEMU -kernel,
// U-Boot booti and UEFI-era loaders all enter at _start on the primary CPU with the MMU and
// D-cache off and x0 = physical address of the device tree. Secondary CPUs stay with the
// firmware (PSCI) until the kernel starts them with CPU_ON at secondary_entry.
//
// The kernel is linked at address 0 as a position-independent executable and relocates itself
// (R_AARCH64_RELATIVE entries) to wherever it was loaded, so no load address is hard-wired.

#include "Layouts.h"

#define SCTLR_EL1_RES1      0x30d00800  // RES1 bits only: MMU, caches, alignment checks off, LE
#define HCR_EL2_RW          (1 << 31)   // EL1 executes in AArch64
#define CNTHCTL_EL1_ACCESS  0x3         // EL1PCTEN | EL1PCEN: EL1 may use the physical counter/timer
#define CPTR_EL2_NO_TRAPS   0x33ff      // RES1 bits, TFP = 0: FP/SIMD is not trapped to EL2
#define ICC_SRE_EL2         S3_4_C12_C9_5
#define ICC_SRE_EL2_SRE     0x1         // system register interface at EL2
#define ICC_SRE_EL2_ENABLE  0x8         // EL1 may use its own ICC_SRE_EL1.SRE
#define SPSR_EL1H_MASKED    0x3c5       // return to EL1 using SP_EL1, D A I F masked
#define R_AARCH64_RELATIVE  1027
#define BOOT_STACK_SIZE     (32 * 1024)

    .section .text.head, "ax"
    .global _start
_start:
    // code0: the PE/COFF "MZ" signature in its low half, and as an instruction a harmless
    // conditional compare (CCMP x18, #0, #0xd, PL): it changes only the flags.
    .long   0xfa405a4d
    b       primary_entry               // code1
    .quad   0                           // text_offset: load at the 2 MiB aligned base itself
    .quad   _kernel_size                // image_size: file plus BSS and boot stack
    .quad   0xa                         // flags: little-endian, 4 KiB pages, anywhere in RAM
    .quad   0, 0, 0                     // reserved
    .ascii  "ARM\x64"                   // magic
    .long   pe_header - _start          // at 0x3c, where a DOS header keeps its PE header's offset

// The PE/COFF header that makes the same file an EFI application (PE32+, AArch64). Its two
// sections map the image as it is linked: .text from the end of these headers to _etext, and
// .data from there (read-only data, relocations, data) to _end, BSS and boot stack included.
// The firmware enters at efi_entry (EFIStub.swift explains the path from there). No base
// relocations: the code before the EFI entry has relocated the image runs position-independent.
    .balign 8
pe_header:
    .ascii  "PE\0\0"
    .short  0xaa64                      // machine: AArch64
    .short  2                           // sections
    .long   0                           // time stamp
    .long   0, 0                        // no COFF symbol table
    .short  pe_sections - pe_optional_header
    .short  0x0222                      // executable, large-address aware, debug stripped
pe_optional_header:
    .short  0x20b                       // PE32+
    .byte   0, 0                        // linker version
    .long   _pe_text_size               // code
    .long   _pe_data_file_size          // initialized data
    .long   _pe_bss_size                // uninitialized data
    .long   _pe_entry                   // entry point
    .long   _pe_headers_size            // base of code
    .quad   0                           // image base: linked at 0
    .long   4096                        // section alignment
    .long   4096                        // file alignment
    .short  0, 0, 0, 0                  // operating system and image versions
    .short  0, 0                        // subsystem version
    .long   0                           // reserved
    .long   _kernel_size                // size of image
    .long   _pe_headers_size            // size of headers
    .long   0                           // checksum
    .short  10                          // subsystem: EFI application
    .short  0                           // DLL characteristics
    .quad   0, 0, 0, 0                  // stack and heap reserve and commit: the firmware's
    .long   0                           // loader flags
    .long   6                           // data directories
    .quad   0, 0, 0, 0, 0, 0            // export, import, resource, exception, security, relocations
pe_sections:
    .ascii  ".text\0\0\0"
    .long   _pe_text_size               // size in memory
    .long   _pe_headers_size            // address
    .long   _pe_text_size               // size in the file
    .long   _pe_headers_size            // offset in the file
    .long   0, 0                        // no COFF relocations or line numbers
    .short  0, 0
    .long   0x60000020                  // code, executable, readable
    .ascii  ".data\0\0\0"
    .long   _pe_data_size
    .long   _pe_data_offset
    .long   _pe_data_file_size
    .long   _pe_data_offset
    .long   0, 0
    .short  0, 0
    .long   0xc0000040                  // initialized data, readable, writable

    .text
// What every CPU does first: leave EL2 if it entered there (leave_el2), mask exceptions, and
// reset SCTLR_EL1 (MMU and caches off). Leaves the exception level at entry in \level; clobbers x0.
.macro enter_el1 level
    mrs     \level, CurrentEL
    lsr     \level, \level, #2
    cmp     \level, #2
    b.ne    .Lat_el1_\@
    bl      leave_el2
.Lat_el1_\@:
    msr     daifset, #0xf
    ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    isb
.endm

// Register contract from here to kernel_main:
//   x19 = device tree physical address, x20 = exception level at entry, x21 = load address
primary_entry:
    mov     x19, x0
    enter_el1 x20

    adrp    x21, _start
    add     x21, x21, :lo12:_start
    mov     x0, x21
    bl      apply_relocations

3:  adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
4:  cmp     x0, x1
    b.hs    5f
    stp     xzr, xzr, [x0], #16
    b       4b

5:  adrp    x0, boot_stack_top
    add     x0, x0, :lo12:boot_stack_top
    mov     sp, x0
    // Stack-protector canary: differs from boot to boot, set before any Swift function runs.
    mrs     x0, cntpct_el0
    ldr     x1, =0x5357494654b3e11e
    eor     x0, x0, x1, ror #13
    adrp    x1, __stack_chk_guard
    str     x0, [x1, :lo12:__stack_chk_guard]
    mov     x29, xzr                    // end of the frame-pointer chain for backtraces
    mov     x30, xzr
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      kernel_main
    .global halt
halt:
    msr     daifset, #0xf
    wfi
    b       halt

// apply_relocations(base): the R_AARCH64_RELATIVE relocations for an image at `base`,
// *(base + offset) = base + addend. Idempotent, so an image that already ran elsewhere (the EFI
// entry's, copied) is relocated again simply. The linker emits no other kind for a static PIE;
// anything else means a broken build, so stop. Uses no stack; clobbers x1-x5.
apply_relocations:
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16           // r_offset, r_info
    ldr     x5, [x1], #8                // r_addend
    cmp     x4, #R_AARCH64_RELATIVE
    b.ne    halt
    add     x5, x5, x0
    str     x5, [x3, x0]
    b       1b
2:  ret

// The firmware's entry into the EFI application (PE header above): x0 = image handle, x1 =
// system table, x30 = where to return an error status, on the firmware's stack with its MMU and
// caches on. Relocates the image where the firmware put it, so that Swift code can run, then
// efi_main (EFIStub.swift) reads what the kernel needs from the firmware and, on success, leaves
// through efi_start_kernel and never returns.
    .global efi_entry
efi_entry:
    stp     x29, x30, [sp, #-32]!
    mov     x29, sp
    stp     x0, x1, [sp, #16]
    adrp    x0, _start
    add     x0, x0, :lo12:_start
    bl      apply_relocations
    ldp     x0, x1, [sp, #16]
    bl      efi_main
    ldp     x29, x30, [sp], #32
    ret

// efi_start_kernel(image, deviceTree): enters the copy of the kernel at `image` (2 MiB aligned)
// the way any Image loader would, at its first byte with x0 = the device tree and x1-x3 = 0.
// Boot services have ended; the caller cleaned to the point of coherency everything the kernel
// will read with its caches off. The instruction cache may hold lines of what was at `image`
// before the copy, hence the invalidation. The MMU is still on (an identity map): primary_entry
// turns it off.
    .global efi_start_kernel
efi_start_kernel:
    msr     daifset, #0xf
    dsb     sy
    ic      iallu
    dsb     sy
    isb
    mov     x4, x0
    mov     x0, x1
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    br      x4

// Cleans and invalidates data-cache lines covering [x0, x0 + x1) to the point of coherency
// (DC CIVAC), for memory written with caches on that code running with caches off will read.
    .global dcache_clean_range
dcache_clean_range:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             // DminLine: log2(words per line)
    mov     x2, #4
    lsl     x2, x2, x3
    add     x1, x0, x1
    sub     x3, x2, #1
    bic     x0, x0, x3
1:  cmp     x0, x1
    b.hs    2f
    dc      civac, x0
    add     x0, x0, x2
    b       1b
2:  dsb     sy
    ret

// Drops from EL2 to EL1, returning to the caller (x30) at EL1 with SP_EL1 selected.
// Clobbers x0. EL1 is given the physical timer, untrapped FP/SIMD and GICv3 system registers;
// the virtual ID registers are made to report the real MIDR and MPIDR.
leave_el2:
    mov     x0, #HCR_EL2_RW
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #CNTHCTL_EL1_ACCESS
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mov     x0, #CPTR_EL2_NO_TRAPS
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4             // GIC field: system register interface present
    cbz     x0, 1f
    mrs     x0, ICC_SRE_EL2
    orr     x0, x0, #ICC_SRE_EL2_SRE
    orr     x0, x0, #ICC_SRE_EL2_ENABLE
    msr     ICC_SRE_EL2, x0
    isb
1:  ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    mov     x0, #SPSR_EL1H_MASKED
    msr     spsr_el2, x0
    msr     elr_el2, x30
    eret

// A secondary CPU's entry from PSCI CPU_ON: MMU and caches off, at EL2 or EL1, x0 = the physical
// address of its start record (Layouts.h, written and cleaned to the point of coherency by the boot
// CPU). It leaves EL2 as the boot CPU does, loads the boot CPU's MAIR, TCR, SCTLR and
// translation tables (TTBR0 an identity map of the kernel text, for the switch only), points
// TPIDR_EL1 at its per-CPU block, turns the MMU on and continues on its own stack at
// kernel_secondary_main(record) in the linear map. Reads nothing but the record: the rest of
// memory may still sit dirty in the boot CPU's cache.
    .global secondary_entry
secondary_entry:
    mov     x19, x0
    enter_el1 x0
    ldp     x9, x10, [x19, #SECONDARY_START_TTBR0]
    ldp     x11, x12, [x19, #SECONDARY_START_MAIR]
    ldp     x13, x14, [x19, #SECONDARY_START_SCTLR]
    ldp     x15, x16, [x19, #SECONDARY_START_PER_CPU] // per-CPU block, linear-map offset
    ldr     x17, [x19, #SECONDARY_START_RECORD]
    msr     mair_el1, x11
    msr     tcr_el1, x12
    msr     ttbr0_el1, x9
    msr     ttbr1_el1, x10
    msr     tpidr_el1, x15
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x13              // MMU and caches on, fetching through the identity map
    isb
    mov     sp, x14
    mov     x0, x17
    adrp    x4, kernel_secondary_main
    add     x4, x4, :lo12:kernel_secondary_main
    add     x4, x4, x16
    mov     x29, xzr                    // end of the frame-pointer chain for backtraces
    mov     x30, xzr
    br      x4

// enter_linear_map(configuration, a, b, c): turns the MMU on and continues in the kernel's linear
// map at kernel_main_high(a, b, c). `configuration` points at six words: TTBR0 (an identity map of
// the kernel text, used only for the next few instructions), TTBR1, MAIR, TCR, SCTLR, and the
// offset from physical to linear-map addresses. Runs with the MMU off and never returns.
// The Swift code that called it must not run again at its physical address: every relocated
// pointer is moved to the linear map first.
    .global enter_linear_map
enter_linear_map:
    ldp     x9, x10, [x0]               // TTBR0, TTBR1
    ldp     x11, x12, [x0, #16]         // MAIR, TCR
    ldp     x13, x14, [x0, #32]         // SCTLR, offset

    adrp    x4, _start
    add     x4, x4, :lo12:_start
    adrp    x5, __rela_start
    add     x5, x5, :lo12:__rela_start
    adrp    x6, __rela_end
    add     x6, x6, :lo12:__rela_end
1:  cmp     x5, x6
    b.hs    2f
    ldr     x7, [x5], #24               // r_offset; types were checked at entry
    ldr     x8, [x4, x7]
    add     x8, x8, x14
    str     x8, [x4, x7]
    b       1b
2:  adrp    x4, physical_window_offset
    str     x14, [x4, :lo12:physical_window_offset]

    msr     mair_el1, x11
    msr     tcr_el1, x12
    msr     ttbr0_el1, x9
    msr     ttbr1_el1, x10
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x13              // MMU and caches on; still fetching through TTBR0's identity map
    isb

    add     sp, sp, x14
    mov     x0, x1
    mov     x1, x2
    mov     x2, x3
    adrp    x4, kernel_main_high
    add     x4, x4, :lo12:kernel_main_high
    add     x4, x4, x14
    mov     x29, xzr
    mov     x30, xzr
    br      x4

// Invalidates data-cache lines covering [x0, x0 + x1) to the point of coherency (DC IVAC), so
// lines a loader left in the cache cannot later overwrite what the kernel wrote with caches off.
    .global dcache_invalidate_range
dcache_invalidate_range:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             // DminLine: log2(words per line)
    mov     x2, #4
    lsl     x2, x2, x3                  // line size in bytes
    add     x1, x0, x1
    sub     x3, x2, #1
    bic     x0, x0, x3
1:  cmp     x0, x1
    b.hs    2f
    dc      ivac, x0
    add     x0, x0, x2
    b       1b
2:  dsb     sy
    ret

// memory_probe_load(address, result) -> 0, or the ESR of the fault the load raised.
// memory_probe_store(address, value) -> likewise. The exception handler recognises a fault at
// the labelled instruction and resumes at memory_probe_fixup with x0 = ESR.
    .global memory_probe_load
    .global memory_probe_load_instruction
    .global memory_probe_store
    .global memory_probe_store_instruction
    .global memory_probe_fixup
memory_probe_load:
memory_probe_load_instruction:
    ldr     x2, [x0]
    str     x2, [x1]
    mov     x0, #0
    ret
memory_probe_store:
memory_probe_store_instruction:
    str     x1, [x0]
    mov     x0, #0
    ret
memory_probe_fixup:
    ret

// The C library's free(), which the Swift runtime calls; Swift code may not define that
// symbol itself, so it forwards to kernel_free (RuntimeSupport.swift).
    .global free
free:
    b       kernel_free

    .data
    .balign 8
    .global __stack_chk_guard
__stack_chk_guard:
    .quad   0
// Physical address + this = the address through which the kernel reaches that memory: 0 while
// the MMU is off, the linear map's base afterwards. Written once, by enter_linear_map.
    .global physical_window_offset
physical_window_offset:
    .quad   0
// The physical address of the record the EFI entry leaves for the kernel (UEFIHandoff), or 0
// when another loader started it. Written by the EFI entry before it copies the image.
    .global efi_handoff_address
efi_handoff_address:
    .quad   0
// Holds the link-time address of _start until relocation rewrites it to the load address;
// the boot self-test compares it with where the kernel really runs.
    .global relocation_probe
relocation_probe:
    .quad   _start

    .section .boot_stack, "aw", %nobits
    .balign 16
boot_stack:
    .space  BOOT_STACK_SIZE
    .global boot_stack_top
boot_stack_top:
