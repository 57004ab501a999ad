// Thread switching and user-memory access: the parts of the process layer that are single
// instructions or register-exact sequences.

#include "Layouts.h"

// switch_context(from, to): saves the callee-saved registers, the frame pointer, the link
// register and SP into *from (a SwitchContext: x19-x28, x29, x30, sp) and loads them from *to,
// so the call returns in the other thread. Everything else is caller-saved by the AAPCS64.
// load_context(to) is its second half alone, for a thread that left nothing on its stack to
// come back to (it waits in its user frame, see thread_resume_frame_wait), and
// switch_to_user_frame(from, frame) its first half, then a return to user space from another
// thread's exception frame (one whose wait in its frame the caller has finished).
// A switch writes TTBR0 and CPACR_EL1 without an ISB: the next thread's kernel code runs only
// after the ISB in load_context, and a return to user space is an eret, which synchronizes too.
.macro save_context
    mov     x9, sp
    stp     x19, x20, [x0, #SWITCH_CONTEXT_REGISTER(19)]
    stp     x21, x22, [x0, #SWITCH_CONTEXT_REGISTER(21)]
    stp     x23, x24, [x0, #SWITCH_CONTEXT_REGISTER(23)]
    stp     x25, x26, [x0, #SWITCH_CONTEXT_REGISTER(25)]
    stp     x27, x28, [x0, #SWITCH_CONTEXT_REGISTER(27)]
    stp     x29, x30, [x0, #SWITCH_CONTEXT_X29]
    str     x9, [x0, #SWITCH_CONTEXT_SP]
.endm

    .text
    .global switch_context
    .global load_context
    .global switch_to_user_frame
switch_context:
    save_context
    mov     x0, x1
load_context:
    isb                                 // the switch's TTBR0 write (TranslationBase.install)
    ldp     x19, x20, [x0, #SWITCH_CONTEXT_REGISTER(19)]
    ldp     x21, x22, [x0, #SWITCH_CONTEXT_REGISTER(21)]
    ldp     x23, x24, [x0, #SWITCH_CONTEXT_REGISTER(23)]
    ldp     x25, x26, [x0, #SWITCH_CONTEXT_REGISTER(25)]
    ldp     x27, x28, [x0, #SWITCH_CONTEXT_REGISTER(27)]
    ldp     x29, x30, [x0, #SWITCH_CONTEXT_X29]
    ldr     x9, [x0, #SWITCH_CONTEXT_SP]
    mov     sp, x9
    ret
switch_to_user_frame:
    save_context
    mov     sp, x1
    b       exception_return

// fp_state_save(area) / fp_state_restore(area): q0-q31, FPCR and FPSR of user code; FP_STATE_SIZE
// bytes (Layouts.h), 16-byte aligned. The kernel itself is built without FP/SIMD, so only user
// state lives there.
    .global fp_state_save
fp_state_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x1, fpcr
    mrs     x2, fpsr
    add     x0, x0, #FP_STATE_FPCR      // past STP's reach as an offset
    stp     x1, x2, [x0]
    ret

    .global fp_state_restore
fp_state_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x0, x0, #FP_STATE_FPCR
    ldp     x1, x2, [x0]
    msr     fpcr, x1
    msr     fpsr, x2
    ret

// copy_from_user(kernel, user, count) and copy_to_user(user, kernel, count): copies whose user
// side uses LDTR/STTR, the unprivileged forms, so the MMU checks EL0's permissions (a kernel-only
// or read-only page faults exactly as it would for the program). Return 0, or the ESR of the
// fault: the exception handler resumes a fault inside [user_copy_start, user_copy_end) at
// user_copy_fixup with x0 = ESR.
    .global copy_from_user
    .global copy_to_user
    .global read_message_header
    .global write_message_header
    .global user_copy_start
    .global user_copy_end
    .global user_copy_fixup
// They move eight words a step, then two at a time (LDTR/STTR with an offset), then a word if
// eight bytes are left, then the last bytes one by one: x2 runs 64 (then 16) below the bytes
// left, so after the two-word loop it is -16 to -1, bit 3 says whether a word is left and its
// low three bits are the bytes after it. Neither address need be aligned: they run with the
// MMU on, where both sides are Normal memory and SCTLR_EL1.A is clear, so a word access at any
// address is allowed (one into a device's registers faults, and the caller gets the error).
user_copy_start:
copy_from_user:
    subs    x2, x2, #64
    b.lo    6f
7:  ldtr    x3, [x1]
    ldtr    x4, [x1, #8]
    ldtr    x5, [x1, #16]
    ldtr    x6, [x1, #24]
    ldtr    x7, [x1, #32]
    ldtr    x8, [x1, #40]
    ldtr    x9, [x1, #48]
    ldtr    x10, [x1, #56]
    add     x1, x1, #64
    stp     x3, x4, [x0]
    stp     x5, x6, [x0, #16]
    stp     x7, x8, [x0, #32]
    stp     x9, x10, [x0, #48]
    add     x0, x0, #64
    subs    x2, x2, #64
    b.hs    7b
6:  add     x2, x2, #48
    tbnz    x2, #63, 5f
1:  ldtr    x3, [x1]
    ldtr    x4, [x1, #8]
    add     x1, x1, #16
    stp     x3, x4, [x0], #16
    subs    x2, x2, #16
    b.hs    1b
5:  tbz     x2, #3, 2f
    ldtr    x3, [x1]
    add     x1, x1, #8
    str     x3, [x0], #8
2:  ands    x2, x2, #7
    b.eq    4f
3:  ldtrb   w3, [x1]
    strb    w3, [x0], #1
    add     x1, x1, #1
    subs    x2, x2, #1
    b.ne    3b
4:  mov     x0, #0
    ret
copy_to_user:
    subs    x2, x2, #64
    b.lo    6f
7:  ldp     x3, x4, [x1]
    ldp     x5, x6, [x1, #16]
    ldp     x7, x8, [x1, #32]
    ldp     x9, x10, [x1, #48]
    add     x1, x1, #64
    sttr    x3, [x0]
    sttr    x4, [x0, #8]
    sttr    x5, [x0, #16]
    sttr    x6, [x0, #24]
    sttr    x7, [x0, #32]
    sttr    x8, [x0, #40]
    sttr    x9, [x0, #48]
    sttr    x10, [x0, #56]
    add     x0, x0, #64
    subs    x2, x2, #64
    b.hs    7b
6:  add     x2, x2, #48
    tbnz    x2, #63, 5f
1:  ldp     x3, x4, [x1], #16
    sttr    x3, [x0]
    sttr    x4, [x0, #8]
    add     x0, x0, #16
    subs    x2, x2, #16
    b.hs    1b
5:  tbz     x2, #3, 2f
    ldr     x3, [x1], #8
    sttr    x3, [x0]
    add     x0, x0, #8
2:  ands    x2, x2, #7
    b.eq    4f
3:  ldrb    w3, [x1], #1
    sttrb   w3, [x0]
    add     x0, x0, #1
    subs    x2, x2, #1
    b.ne    3b
4:  mov     x0, #0
    ret
// read_message_header(kernel, user): the first three words of the IPC message at `user` (label,
// length, handle count; 8-byte aligned, range checked by the caller) into `kernel`. The IPC fast
// path's fixed-size read: no loop, no alignment tests.
read_message_header:
    ldtr    x2, [x1, #IPC_MESSAGE_LABEL]
    ldtr    x3, [x1, #IPC_MESSAGE_LENGTH]
    ldtr    x4, [x1, #IPC_MESSAGE_HANDLE_COUNT]
    stp     x2, x3, [x0, #IPC_MESSAGE_LABEL]
    str     x4, [x0, #IPC_MESSAGE_HANDLE_COUNT]
    mov     x0, #0
    ret
// write_message_header(user, label, length, sender, reply): the header of a message without
// handles, straight from registers: handle count and the four handle words are zero
// (IPCMessageLayout: label, length, handle count, sender, reply handle, handles[4]).
write_message_header:
    sttr    x1, [x0, #IPC_MESSAGE_LABEL]
    sttr    x2, [x0, #IPC_MESSAGE_LENGTH]
    sttr    xzr, [x0, #IPC_MESSAGE_HANDLE_COUNT]
    sttr    x3, [x0, #IPC_MESSAGE_SENDER]
    sttr    x4, [x0, #IPC_MESSAGE_REPLY_HANDLE]
    sttr    xzr, [x0, #IPC_MESSAGE_HANDLE(0)]
    sttr    xzr, [x0, #IPC_MESSAGE_HANDLE(1)]
    sttr    xzr, [x0, #IPC_MESSAGE_HANDLE(2)]
    sttr    xzr, [x0, #IPC_MESSAGE_HANDLE(3)]
    mov     x0, #0
    ret
user_copy_end:
user_copy_fixup:
    ret
