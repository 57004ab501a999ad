// Program entry. The first thread starts here with SP at the top of its stack, x0 = the start
// argument its parent gave, x1 = the handle it passed (0 if none), x2 = the address of its start
// block (ProgramStart.swift; 0 if none) and, for init only, x3 = the initial ramdisk (a memory
// object handle). Runs the program's `main` (Swift's @main), then exits with its result.
    .section .text.start, "ax"
    .global _start
_start:
    adrp    x9, user_start_argument
    str     x0, [x9, :lo12:user_start_argument]
    adrp    x9, user_start_handle
    str     x1, [x9, :lo12:user_start_handle]
    adrp    x9, user_start_block
    str     x2, [x9, :lo12:user_start_block]
    adrp    x9, user_start_ramdisk
    str     x3, [x9, :lo12:user_start_ramdisk]
    mov     x29, xzr
    mov     x30, xzr
    bl      main
    mov     x8, #3                      // exit(x0)
    svc     #0
1:  b       1b

// A further thread starts here (System.createThread): x0 = its argument, x1 = the function to run.
// When the function returns, the thread ends.
    .global user_thread_start
user_thread_start:
    mov     x29, xzr
    mov     x30, xzr
    blr     x1
    mov     x0, #0
    mov     x8, #29                     // threadExit(0)
    svc     #0
1:  b       1b

// The C library's free(), which the Swift runtime calls; Swift code may not define that symbol
// itself, so it forwards to user_free (Heap.swift).
    .text
    .global free
free:
    b       user_free

    .data
    .balign 8
    .global __stack_chk_guard
__stack_chk_guard:
    .quad   0x5357494654555345
    .global user_start_argument
user_start_argument:
    .quad   0
    .global user_start_handle
user_start_handle:
    .quad   0
    .global user_start_block
user_start_block:
    .quad   0
    .global user_start_ramdisk
user_start_ramdisk:
    .quad   0
