// Program entry. The kernel starts the first thread here with SP at the top of its stack, x0 =
// the start argument its parent gave, other registers zero. Runs the program's `main` (Swift's
// @main), then exits with its result.
    .section .text.start, "ax"
    .global _start
_start:
    adrp    x1, user_start_argument
    str     x0, [x1, :lo12:user_start_argument]
    mov     x29, xzr
    mov     x30, xzr
    bl      main
    mov     x8, #3                      // exit(x0)
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
