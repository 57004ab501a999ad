// A system call whose surroundings are under test: every register the ABI preserves
// (docs/SYSCALLS.md: all but x0-x2, SP_EL0 and the FP/SIMD registers included) is loaded with a
// known value before `svc #0` and stored right after it, with no compiler-generated code in
// between that could hide a register the kernel changed.
#pragma once

typedef unsigned long long fuzz_u64;

// Offsets are fixed by the assembly below: x0-x30 and SP before at 0, the same after at 256,
// q0-q31 before at 512 and after at 1024.
typedef struct {
    fuzz_u64 before[32];
    fuzz_u64 after[32];
    fuzz_u64 vectorsBefore[64];
    fuzz_u64 vectorsAfter[64];
} fuzz_register_record;

// Register contract: x0 = the record on entry. Loads x0-x30 from before[0..30] (x8 is the call
// number, x0-x5 its arguments) and q0-q31 from vectorsBefore, makes the call, then stores x0-x30
// in after[0..30] and q0-q31 in vectorsAfter; SP is recorded in before[31] and after[31]. x29
// and x30 are saved on the stack across the call, which is why SP must survive it.
static inline void fuzz_recorded_system_call(fuzz_register_record *record) {
    register fuzz_register_record *x0 __asm__("x0") = record;
    __asm__ volatile(
        "stp x29, x30, [sp, #-32]!\n\t"
        "str x0, [sp, #16]\n\t"
        "mov x1, sp\n\t"
        "str x1, [x0, #248]\n\t"
        "add x1, x0, #512\n\t"
        "ldp q0, q1, [x1, #0]\n\t"
        "ldp q2, q3, [x1, #32]\n\t"
        "ldp q4, q5, [x1, #64]\n\t"
        "ldp q6, q7, [x1, #96]\n\t"
        "ldp q8, q9, [x1, #128]\n\t"
        "ldp q10, q11, [x1, #160]\n\t"
        "ldp q12, q13, [x1, #192]\n\t"
        "ldp q14, q15, [x1, #224]\n\t"
        "ldp q16, q17, [x1, #256]\n\t"
        "ldp q18, q19, [x1, #288]\n\t"
        "ldp q20, q21, [x1, #320]\n\t"
        "ldp q22, q23, [x1, #352]\n\t"
        "ldp q24, q25, [x1, #384]\n\t"
        "ldp q26, q27, [x1, #416]\n\t"
        "ldp q28, q29, [x1, #448]\n\t"
        "ldp q30, q31, [x1, #480]\n\t"
        "ldp x2, x3, [x0, #16]\n\t"
        "ldp x4, x5, [x0, #32]\n\t"
        "ldp x6, x7, [x0, #48]\n\t"
        "ldp x8, x9, [x0, #64]\n\t"
        "ldp x10, x11, [x0, #80]\n\t"
        "ldp x12, x13, [x0, #96]\n\t"
        "ldp x14, x15, [x0, #112]\n\t"
        "ldp x16, x17, [x0, #128]\n\t"
        "ldp x18, x19, [x0, #144]\n\t"
        "ldp x20, x21, [x0, #160]\n\t"
        "ldp x22, x23, [x0, #176]\n\t"
        "ldp x24, x25, [x0, #192]\n\t"
        "ldp x26, x27, [x0, #208]\n\t"
        "ldp x28, x29, [x0, #224]\n\t"
        "ldr x30, [x0, #240]\n\t"
        "ldr x1, [x0, #8]\n\t"
        "ldr x0, [x0, #0]\n\t"
        "svc #0\n\t"
        "stp x0, x1, [sp, #-16]!\n\t"
        "ldr x0, [sp, #32]\n\t"
        "stp x2, x3, [x0, #272]\n\t"
        "stp x4, x5, [x0, #288]\n\t"
        "stp x6, x7, [x0, #304]\n\t"
        "stp x8, x9, [x0, #320]\n\t"
        "stp x10, x11, [x0, #336]\n\t"
        "stp x12, x13, [x0, #352]\n\t"
        "stp x14, x15, [x0, #368]\n\t"
        "stp x16, x17, [x0, #384]\n\t"
        "stp x18, x19, [x0, #400]\n\t"
        "stp x20, x21, [x0, #416]\n\t"
        "stp x22, x23, [x0, #432]\n\t"
        "stp x24, x25, [x0, #448]\n\t"
        "stp x26, x27, [x0, #464]\n\t"
        "stp x28, x29, [x0, #480]\n\t"
        "str x30, [x0, #496]\n\t"
        "ldp x2, x3, [sp], #16\n\t"
        "stp x2, x3, [x0, #256]\n\t"
        "mov x1, sp\n\t"
        "str x1, [x0, #504]\n\t"
        "add x1, x0, #1024\n\t"
        "stp q0, q1, [x1, #0]\n\t"
        "stp q2, q3, [x1, #32]\n\t"
        "stp q4, q5, [x1, #64]\n\t"
        "stp q6, q7, [x1, #96]\n\t"
        "stp q8, q9, [x1, #128]\n\t"
        "stp q10, q11, [x1, #160]\n\t"
        "stp q12, q13, [x1, #192]\n\t"
        "stp q14, q15, [x1, #224]\n\t"
        "stp q16, q17, [x1, #256]\n\t"
        "stp q18, q19, [x1, #288]\n\t"
        "stp q20, q21, [x1, #320]\n\t"
        "stp q22, q23, [x1, #352]\n\t"
        "stp q24, q25, [x1, #384]\n\t"
        "stp q26, q27, [x1, #416]\n\t"
        "stp q28, q29, [x1, #448]\n\t"
        "stp q30, q31, [x1, #480]\n\t"
        "ldp x29, x30, [sp], #32\n\t"
        : "+r"(x0)
        :
        : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
          "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
          "x28", "x30", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
          "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24",
          "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory", "cc");
}

// A thread's last act: `value` is stored at `flag`, then threadExit(0), with nothing in between
// that touches the stack, so whoever sees the flag may unmap the stack at once.
static inline void fuzz_finish_thread(fuzz_u64 *flag, fuzz_u64 value) __attribute__((noreturn));
static inline void fuzz_finish_thread(fuzz_u64 *flag, fuzz_u64 value) {
    register fuzz_u64 *x0 __asm__("x0") = flag;
    register fuzz_u64 x1 __asm__("x1") = value;
    __asm__ volatile(
        "str x1, [x0]\n\t"
        "mov x0, #0\n\t"
        "mov x8, #29\n\t"
        "svc #0\n\t"
        "1: b 1b\n\t"
        :
        : "r"(x0), "r"(x1)
        : "memory");
    __builtin_unreachable();
}
