// The one instruction a user program needs to reach the kernel: `svc #0` with the number in x8,
// arguments in x0-x5, the status back in x0 and values in x1-x2 (docs/SYSCALLS.md).
#pragma once

typedef unsigned long long user_u64;
typedef struct { user_u64 status, value0, value1; } user_system_call_result;

static inline user_system_call_result user_system_call(user_u64 number, user_u64 a0, user_u64 a1, user_u64 a2,
                                                       user_u64 a3, user_u64 a4, user_u64 a5) {
    register user_u64 x0 __asm__("x0") = a0;
    register user_u64 x1 __asm__("x1") = a1;
    register user_u64 x2 __asm__("x2") = a2;
    register user_u64 x3 __asm__("x3") = a3;
    register user_u64 x4 __asm__("x4") = a4;
    register user_u64 x5 __asm__("x5") = a5;
    register user_u64 x8 __asm__("x8") = number;
    __asm__ volatile("svc #0" : "+r"(x0), "+r"(x1), "+r"(x2) : "r"(x3), "r"(x4), "r"(x5), "r"(x8) : "memory");
    user_system_call_result result = {x0, x1, x2};
    return result;
}

// A system call whose message travels in registers (RegisterMessageLayout): `words` holds x0-x4
// and then x9-x16, the payload, 13 words in all, given to the call and replaced by what it left.
// callRegisters and replyReceiveRegisters are made by `svc #1` and `svc #2`, which name the call
// themselves (docs/SYSCALLS.md): the kernel's entry goes straight to them, and x8 comes back
// holding their number. Any other number goes by `svc #0`.
// Always inlined: called out of line it loads and stores all 13 words through memory, where
// inlined the compiler keeps the words the caller set or reads next in registers, and the
// number, a constant there, picks one instruction.
static inline __attribute__((always_inline)) void user_system_call_registers_by(user_u64 immediate, user_u64 number,
                                                                               user_u64 *words) {
    register user_u64 x0 __asm__("x0") = words[0];
    register user_u64 x1 __asm__("x1") = words[1];
    register user_u64 x2 __asm__("x2") = words[2];
    register user_u64 x3 __asm__("x3") = words[3];
    register user_u64 x4 __asm__("x4") = words[4];
    register user_u64 x9 __asm__("x9") = words[5];
    register user_u64 x10 __asm__("x10") = words[6];
    register user_u64 x11 __asm__("x11") = words[7];
    register user_u64 x12 __asm__("x12") = words[8];
    register user_u64 x13 __asm__("x13") = words[9];
    register user_u64 x14 __asm__("x14") = words[10];
    register user_u64 x15 __asm__("x15") = words[11];
    register user_u64 x16 __asm__("x16") = words[12];
    register user_u64 x8 __asm__("x8") = number;
#define USER_REGISTER_MESSAGE_OUTPUTS                                                                       \
    "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x9), "+r"(x10), "+r"(x11), "+r"(x12), "+r"(x13), \
        "+r"(x14), "+r"(x15), "+r"(x16)
    if (immediate == 1) {
        __asm__ volatile("svc #1" : USER_REGISTER_MESSAGE_OUTPUTS, "=r"(x8) : : "memory");
    } else if (immediate == 2) {
        __asm__ volatile("svc #2" : USER_REGISTER_MESSAGE_OUTPUTS, "=r"(x8) : : "memory");
    } else if (immediate == 3) { // for the test that any other immediate is `svc #0`
        __asm__ volatile("svc #3" : USER_REGISTER_MESSAGE_OUTPUTS, "+r"(x8) : : "memory");
    } else {
        __asm__ volatile("svc #0" : USER_REGISTER_MESSAGE_OUTPUTS, "+r"(x8) : : "memory");
    }
#undef USER_REGISTER_MESSAGE_OUTPUTS
    words[0] = x0;
    words[1] = x1;
    words[2] = x2;
    words[3] = x3;
    words[4] = x4;
    words[5] = x9;
    words[6] = x10;
    words[7] = x11;
    words[8] = x12;
    words[9] = x13;
    words[10] = x14;
    words[11] = x15;
    words[12] = x16;
}

static inline __attribute__((always_inline)) void user_system_call_registers(user_u64 number, user_u64 *words) {
    user_system_call_registers_by(number == 53 ? 1 : number == 54 ? 2 : 0, number, words);
}

// Deliberate faults, for the programs that test the kernel's fault isolation.
static inline void user_illegal_instruction(void) { __asm__ volatile("udf #1"); }
// Stops the EL1 physical timer, the kernel's tick, if EL0 may reach it (it may not: it traps).
static inline void user_stop_physical_timer(void) { __asm__ volatile("msr cntp_ctl_el0, xzr"); }
/* The breakpoint the kernel's own self-test raises at EL1 (immediate 0x5354), from EL0. */
static inline void user_self_test_breakpoint(void) { __asm__ volatile("brk #0x5354"); }
static inline user_u64 user_read(user_u64 address) { return *(volatile user_u64 *)address; }
static inline void user_write(user_u64 address, user_u64 value) { *(volatile user_u64 *)address = value; }
// For words threads of one process share across CPUs: a store that other CPUs see only after
// every earlier store of this thread (release), and a load after which this thread's later loads
// see what the storing thread wrote before (acquire).
static inline void user_store_release(user_u64 address, user_u64 value) {
    __atomic_store_n((volatile user_u64 *)address, value, __ATOMIC_RELEASE);
}
static inline user_u64 user_load_acquire(user_u64 address) {
    return __atomic_load_n((volatile user_u64 *)address, __ATOMIC_ACQUIRE);
}

extern user_u64 user_start_argument, user_start_handle, user_start_block, user_start_ramdisk;
static inline user_u64 user_read_start_argument(void) { return user_start_argument; }
static inline user_u64 user_read_start_handle(void) { return user_start_handle; }
static inline user_u64 user_read_start_block(void) { return user_start_block; }
static inline user_u64 user_read_start_ramdisk(void) { return user_start_ramdisk; }

// The PMU cycle counter, readable at EL0 only when the kernel runs in bench mode (PMUSERENR_EL0).
// Under QEMU's -icount shift=0 it counts guest instructions.
static inline user_u64 user_cycle_count(void) {
    user_u64 value;
    __asm__ volatile("isb\n\tmrs %0, pmccntr_el0" : "=r"(value)::"memory");
    return value;
}

// Instructions retired, on event counter 0 (the kernel sets it up in bench mode): under icount
// the same as the cycle counter while the CPU runs, but it stands still while the CPU waits.
static inline user_u64 user_instruction_count(void) {
    user_u64 value;
    __asm__ volatile("isb\n\tmrs %0, pmevcntr0_el0" : "=r"(value)::"memory");
    return value;
}

// Markers for `make profile` (tools/profile): hint instructions that the CPU executes as NOPs
// and the instruction-profile plugin watches for. A measured region starts and stops; a report
// marks its row's operations by executing the third marker once per operation.
static inline void user_profile_region_start(void) { __asm__ volatile("hint #0x70" ::: "memory"); }
static inline void user_profile_region_stop(void) { __asm__ volatile("hint #0x71" ::: "memory"); }
static inline void user_profile_operation(void) { __asm__ volatile("hint #0x72" ::: "memory"); }

extern char user_thread_start;
static inline user_u64 user_thread_start_address(void) { return (user_u64)&user_thread_start; }

// 32-bit volatile device register access, for userspace drivers.
static inline unsigned int user_read32(user_u64 address) { return *(volatile unsigned int *)address; }
static inline void user_write32(user_u64 address, unsigned int value) { *(volatile unsigned int *)address = value; }
