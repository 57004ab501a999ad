// The exception vector tables (Arm ARM D1.10.2): 16 entries of 0x80 bytes, for the current EL
// with SP_EL0, the current EL with SP_ELx, a lower EL in AArch64 and a lower EL in AArch32, each
// for synchronous, IRQ, FIQ and SError. Every entry saves a full ExceptionFrame on the current
// stack and calls exception_dispatch(frame, kind); returning from it restores the frame.
//
// There are two tables, alike but for the kind they pass: exception_vectors while one CPU runs,
// and exception_vectors_smp, whose kinds are 16 higher, once more CPUs are online; the dispatcher
// takes the big kernel lock for those (BigKernelLock.swift). So a single CPU pays nothing for
// the lock, not even a test.
//
// An IRQ from EL0 on one CPU has a dispatcher of its own (user_interrupt_entry below). A system
// call from EL0 takes a shorter path (system_call_entry below): it saves only the registers the
// Swift code it calls may change, not the callee-saved x19-x28. The calls that may
// wait (call, replyReceive, their register forms, notificationWait) save them all: their fast
// paths may leave the thread waiting with nothing on its kernel stack but the frame, and return
// to user space from another thread's frame (ipc/FastPath.swift).

// The frame's layout is defined once, in include/Layouts.h.
#include "Layouts.h"

// x2-x17 into the frame at sp, and x0-x17 back from it: the part of the register frame that
// the full exception path and the system call path move alike.
.macro save_x2_to_x17
    stp     x2, x3, [sp, #EXCEPTION_FRAME_REGISTER(2)]
    stp     x4, x5, [sp, #EXCEPTION_FRAME_REGISTER(4)]
    stp     x6, x7, [sp, #EXCEPTION_FRAME_REGISTER(6)]
    stp     x8, x9, [sp, #EXCEPTION_FRAME_REGISTER(8)]
    stp     x10, x11, [sp, #EXCEPTION_FRAME_REGISTER(10)]
    stp     x12, x13, [sp, #EXCEPTION_FRAME_REGISTER(12)]
    stp     x14, x15, [sp, #EXCEPTION_FRAME_REGISTER(14)]
    stp     x16, x17, [sp, #EXCEPTION_FRAME_REGISTER(16)]
.endm

// x2-x30, SP_EL0, ELR and SPSR into the frame at sp: everything but x0/x1 (saved by the vector
// entry), ESR and FAR.
.macro save_x2_to_x30_and_state
    save_x2_to_x17
    stp     x18, x19, [sp, #EXCEPTION_FRAME_REGISTER(18)]
    stp     x20, x21, [sp, #EXCEPTION_FRAME_REGISTER(20)]
    stp     x22, x23, [sp, #EXCEPTION_FRAME_REGISTER(22)]
    stp     x24, x25, [sp, #EXCEPTION_FRAME_REGISTER(24)]
    stp     x26, x27, [sp, #EXCEPTION_FRAME_REGISTER(26)]
    stp     x28, x29, [sp, #EXCEPTION_FRAME_REGISTER(28)]
    mrs     x2, sp_el0
    stp     x30, x2, [sp, #EXCEPTION_FRAME_REGISTER(30)]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
.endm

.macro load_x0_to_x17
    ldp     x0, x1, [sp, #EXCEPTION_FRAME_REGISTER(0)]
    ldp     x2, x3, [sp, #EXCEPTION_FRAME_REGISTER(2)]
    ldp     x4, x5, [sp, #EXCEPTION_FRAME_REGISTER(4)]
    ldp     x6, x7, [sp, #EXCEPTION_FRAME_REGISTER(6)]
    ldp     x8, x9, [sp, #EXCEPTION_FRAME_REGISTER(8)]
    ldp     x10, x11, [sp, #EXCEPTION_FRAME_REGISTER(10)]
    ldp     x12, x13, [sp, #EXCEPTION_FRAME_REGISTER(12)]
    ldp     x14, x15, [sp, #EXCEPTION_FRAME_REGISTER(14)]
    ldp     x16, x17, [sp, #EXCEPTION_FRAME_REGISTER(16)]
.endm

.macro vector_entry kind
    .balign 0x80
    sub     sp, sp, #EXCEPTION_FRAME_SIZE
    stp     x0, x1, [sp, #EXCEPTION_FRAME_REGISTER(0)]
    mov     x0, #\kind
    b       exception_entry
.endm

// An IRQ from EL0 while one CPU runs: the full frame, without ESR and FAR (which an interrupt
// does not set), and its own dispatcher (user_interrupt_entry below).
.macro lower_irq_entry
    .balign 0x80
    sub     sp, sp, #EXCEPTION_FRAME_SIZE
    stp     x0, x1, [sp, #EXCEPTION_FRAME_REGISTER(0)]
    b       user_interrupt_entry
.endm

// A synchronous exception from EL0: `svc #0` (exception class 0x15 in ESR_EL1, immediate 0) goes
// to `system_call`, anything else (a fault, a trapped FP/SIMD access) the full way.
// `svc #1` and `svc #2` (callRegisters and replyReceiveRegisters, docs/SYSCALLS.md) go to
// `register_call` with x1 = the immediate, which skips the number tests of the system call entry;
// an SVC with any other immediate goes the full way, where the dispatcher takes it as `svc #0`.
// The subtraction leaves 0, 1 or 2 for those three SVCs alone: any other syndrome differs in its
// class, its length bit or its upper bits, and so leaves something else, or below zero.
.macro lower_synchronous_entry kind, system_call, register_call
    .balign 0x80
    sub     sp, sp, #EXCEPTION_FRAME_SIZE
    stp     x0, x1, [sp, #EXCEPTION_FRAME_REGISTER(0)]
    mrs     x0, esr_el1
    mov     x1, #ESR_SVC64_IMMEDIATE_ZERO
    sub     x1, x0, x1
    cbz     x1, \system_call
    cmp     x1, #2
    b.ls    \register_call
    mov     x0, #\kind
    b       exception_entry
.endm

// The system call path, in: x0 = ESR, x0/x1 saved. The frame gets x0-x18, x29, x30, SP_EL0,
// ELR, SPSR and ESR; x19-x28 stay in their registers, because the AAPCS64 makes every function
// the dispatcher calls give them back as it found them, and a thread switch in between keeps
// them in the thread's SwitchContext. So the frame's x19-x28 words mean nothing here, and nothing
// reads them. The dispatcher (SystemCalls.swift) reads the arguments from x0-x8 and writes
// results to x0-x2 (the calls with a message in registers take the whole-frame entry below);
// FAR means nothing for an SVC.
// ESR is stored only for the multiprocessor dispatcher, which goes through exception_dispatch
// and reads it there; the single-CPU one knows it has a system call.
.macro system_call_path dispatcher, store_syndrome
    save_x2_to_x17
    str     x18, [sp, #EXCEPTION_FRAME_REGISTER(18)]
    str     x29, [sp, #EXCEPTION_FRAME_REGISTER(29)]
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #EXCEPTION_FRAME_REGISTER(30)]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
    .if \store_syndrome
    str     x0, [sp, #EXCEPTION_FRAME_ESR]
    .endif
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    mov     x0, sp
    bl      \dispatcher
    ldp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x30, x2, [sp, #EXCEPTION_FRAME_REGISTER(30)]
    msr     sp_el0, x2
    ldr     x29, [sp, #EXCEPTION_FRAME_REGISTER(29)]
    load_x0_to_x17
    ldr     x18, [sp, #EXCEPTION_FRAME_REGISTER(18)]
    add     sp, sp, #EXCEPTION_FRAME_SIZE
    eret
.endm

    .text
    .balign 0x800
    .global exception_vectors
exception_vectors:
    vector_entry 0      // current EL, SP_EL0: synchronous
    vector_entry 1      //                     IRQ
    vector_entry 2      //                     FIQ
    vector_entry 3      //                     SError
    vector_entry 4      // current EL, SP_ELx: synchronous
    vector_entry 5      //                     IRQ
    vector_entry 6      //                     FIQ
    vector_entry 7      //                     SError
    lower_synchronous_entry 8, system_call_entry, register_call_entry   // lower EL, AArch64: synchronous
    lower_irq_entry     //                     IRQ
    vector_entry 10     //                     FIQ
    vector_entry 11     //                     SError
    vector_entry 12     // lower EL, AArch32:  synchronous
    vector_entry 13     //                     IRQ
    vector_entry 14     //                     FIQ
    vector_entry 15     //                     SError

    .balign 0x800
    .global exception_vectors_smp
exception_vectors_smp:
    .irp kind, 16, 17, 18, 19, 20, 21, 22, 23
    vector_entry \kind
    .endr
    lower_synchronous_entry 24, system_call_entry_smp, register_call_entry_smp
    .irp kind, 25, 26, 27, 28, 29, 30, 31
    vector_entry \kind
    .endr

// In: x0 = vector kind, x0/x1 already saved. Saves the rest, calls the Swift dispatcher with
// x0 = frame, x1 = kind, then restores everything (the handler may have edited the frame,
// e.g. ELR to skip an instruction) and returns with eret.
exception_entry:
    save_x2_to_x30_and_state
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #EXCEPTION_FRAME_ESR]
    // x29/x30 of the interrupted code sit side by side, forming a frame record, so a
    // frame-pointer backtrace from the handler continues into the interrupted code.
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    mov     x1, x0
    mov     x0, sp
    bl      exception_dispatch

// Restores the ExceptionFrame at sp and returns from the exception.
    .global exception_return
exception_return:
    ldp     x2, x3, [sp, #EXCEPTION_FRAME_ELR]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x30, x2, [sp, #EXCEPTION_FRAME_REGISTER(30)]
    msr     sp_el0, x2
    load_x0_to_x17
    ldp     x18, x19, [sp, #EXCEPTION_FRAME_REGISTER(18)]
    ldp     x20, x21, [sp, #EXCEPTION_FRAME_REGISTER(20)]
    ldp     x22, x23, [sp, #EXCEPTION_FRAME_REGISTER(22)]
    ldp     x24, x25, [sp, #EXCEPTION_FRAME_REGISTER(24)]
    ldp     x26, x27, [sp, #EXCEPTION_FRAME_REGISTER(26)]
    ldp     x28, x29, [sp, #EXCEPTION_FRAME_REGISTER(28)]
    add     sp, sp, #EXCEPTION_FRAME_SIZE
    eret

// An IRQ from EL0 with one CPU online: the thread it interrupted has nothing on its kernel stack
// but this frame, so a switch away from it may leave the frame (Scheduler.preemptAtUserInterrupt)
// and the thread comes back to user space from it later. ESR and FAR are zero in the frame: an
// interrupt has no syndrome.
user_interrupt_entry:
    save_x2_to_x30_and_state
    stp     xzr, xzr, [sp, #EXCEPTION_FRAME_ESR]
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    bl      user_interrupt_dispatch
    b       exception_return

// System calls from EL0 by `svc #0`: with one CPU online, and under the big kernel lock. One bit
// per number picks the calls that save the whole frame (see the top of this file); the shift
// takes the number modulo 64, so a number past the table may go either way, and both ways
// refuse it.
.macro system_call_entries dispatcher, frame_dispatcher, store_syndrome
    ldr     x1, =SYSTEM_CALLS_WAITING_IN_FRAME  // x1 is saved already (and x0 holds the ESR)
    lsr     x1, x1, x8
    tbnz    x1, #0, 1f
    system_call_path \dispatcher, \store_syndrome
1:  save_x2_to_x30_and_state
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    mov     x0, sp
    bl      \frame_dispatcher
    b       exception_return
.endm

system_call_entry:
    system_call_entries system_call_dispatch, frame_call_dispatch, 0
system_call_entry_smp:
    system_call_entries locked_system_call_dispatch, locked_frame_call_dispatch, 1
    .ltorg

// `svc #1` (callRegisters) and `svc #2` (replyReceiveRegisters), x1 = the immediate, x0 = the ESR:
// the number goes to x8, so that the frame says which call it is to every path after this one,
// and the caller finds it there. With one CPU, each has a dispatcher of its own; under the big
// kernel lock both go to the frame dispatcher, which tests them first.
register_call_entry:
    add     x8, x1, #(SYSTEM_CALL_CALL_REGISTERS - 1)
    save_x2_to_x30_and_state
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    mov     x0, sp
    tbnz    x1, #1, 1f
    bl      call_registers_dispatch
    b       exception_return
1:  bl      reply_receive_registers_dispatch
    b       exception_return
register_call_entry_smp:
    add     x8, x1, #(SYSTEM_CALL_CALL_REGISTERS - 1)
    save_x2_to_x30_and_state
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    mov     x0, sp
    bl      locked_frame_call_dispatch
    b       exception_return

// A new thread's first switch lands in thread_enter_user with sp at a frame built for its first
// entry to EL0; it releases what the switch left (thread_first_entry), then returns from that
// frame like any exception.
    .global thread_enter_user
thread_enter_user:
    bl      thread_first_entry
    b       exception_return

// A thread that waits in its user frame (the IPC fast paths of the calls that may wait) has a
// context whose SP is
// its frame and whose link register is here: a switch to it finishes its wait in Swift
// (frame_wait_resume), then returns to user space from the frame. The frame record links a
// backtrace into the user code, as the entry's does.
    .global thread_resume_frame_wait
thread_resume_frame_wait:
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)
    bl      frame_wait_resume
    b       exception_return

// resume_user_frame_unlocking(frame): returns to user space from the exception frame at `frame`,
// the top of another thread's kernel stack, leaving this one's: the IPC fast path's switch to a
// thread that waited in its user frame, whose wait it has finished, on a multiprocessor (with one
// CPU, resume_user_frame in AArch64.h does the same, inlined). It gives up the big kernel lock
// once off this stack: the thread this stack belongs to waits in its frame, and another CPU that
// takes the lock may run it at once.
// The switch wrote TTBR0 without a barrier (TranslationBase.install): here the ISB comes before
// the lock goes, since once another CPU holds it, it may end the process whose space this CPU
// had in TTBR0 and free its tables and ASID (AddressSpace.destroy), which no CPU may still use.
    .global resume_user_frame_unlocking
resume_user_frame_unlocking:
    mov     sp, x0
    add     x29, sp, #EXCEPTION_FRAME_REGISTER(29)  // a backtrace from the release stays on this stack
    isb
    bl      big_kernel_lock_release
    b       exception_return
