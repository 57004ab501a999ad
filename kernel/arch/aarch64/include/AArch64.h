// Single instructions the Swift arch layer cannot emit itself: system register moves, barriers,
// wait-for-event, PSCI conduits and deliberate traps. Each function compiles to one or two
// instructions; Swift imports them through module.modulemap.
#pragma once

typedef unsigned long long aarch64_u64;

#define AARCH64_READ(name, reg)                                       \
    static inline __attribute__((always_inline)) aarch64_u64 aarch64_read_##name(void) {             \
        aarch64_u64 value;                                             \
        __asm__ volatile("mrs %0, " #reg : "=r"(value));              \
        return value;                                                  \
    }
#define AARCH64_WRITE(name, reg)                                      \
    static inline __attribute__((always_inline)) void aarch64_write_##name(aarch64_u64 value) {      \
        __asm__ volatile("msr " #reg ", %0" ::"r"(value) : "memory");  \
    }

AARCH64_READ(current_el, CurrentEL)
AARCH64_READ(midr, midr_el1)
AARCH64_READ(mpidr, mpidr_el1)
AARCH64_READ(vbar, vbar_el1)
AARCH64_WRITE(vbar, vbar_el1)
AARCH64_READ(sctlr, sctlr_el1)
AARCH64_READ(daif, daif)
AARCH64_WRITE(daif, daif)
AARCH64_READ(counter_frequency, cntfrq_el0)
AARCH64_READ(physical_count, cntpct_el0)
AARCH64_READ(id_aa64mmfr0, id_aa64mmfr0_el1)
AARCH64_READ(id_aa64mmfr1, id_aa64mmfr1_el1)
AARCH64_READ(id_aa64pfr0, id_aa64pfr0_el1)
AARCH64_READ(id_aa64dfr0, id_aa64dfr0_el1)
AARCH64_READ(tcr, tcr_el1)
AARCH64_WRITE(tcr, tcr_el1)
AARCH64_READ(mair, mair_el1)
AARCH64_READ(ttbr0, ttbr0_el1)
AARCH64_WRITE(ttbr0, ttbr0_el1)
AARCH64_READ(ttbr1, ttbr1_el1)
AARCH64_READ(virtual_count, cntvct_el0)
AARCH64_READ(cycle_count, pmccntr_el0)
AARCH64_READ(pmcr, pmcr_el0)
AARCH64_WRITE(pmcr, pmcr_el0)
AARCH64_WRITE(pmcntenset, pmcntenset_el0)

// The caller's frame pointer (x29), where a backtrace starts.
static inline __attribute__((always_inline)) aarch64_u64 aarch64_frame_pointer(void) {
    aarch64_u64 value;
    __asm__ volatile("mov %0, x29" : "=r"(value));
    return value;
}

// Generic timer: the EL1 physical timer (CNTP_*), Arm ARM D11.
AARCH64_READ(timer_control, cntp_ctl_el0)
AARCH64_WRITE(timer_control, cntp_ctl_el0)
AARCH64_READ(timer_compare, cntp_cval_el0)
AARCH64_WRITE(timer_compare, cntp_cval_el0)
AARCH64_WRITE(timer_user_access, cntkctl_el1)

// GICv3 CPU interface system registers (by encoding, so any assembler accepts them).
AARCH64_READ(icc_sre, S3_0_C12_C12_5)
AARCH64_WRITE(icc_sre, S3_0_C12_C12_5)
AARCH64_WRITE(icc_pmr, S3_0_C4_C6_0)
AARCH64_WRITE(icc_bpr1, S3_0_C12_C12_3)
AARCH64_WRITE(icc_ctlr, S3_0_C12_C12_4)
AARCH64_WRITE(icc_igrpen1, S3_0_C12_C12_7)
AARCH64_READ(icc_iar1, S3_0_C12_C12_0)
AARCH64_WRITE(icc_eoir1, S3_0_C12_C12_1)
AARCH64_WRITE(icc_sgi1r, S3_0_C12_C11_5)

static inline __attribute__((always_inline)) void aarch64_enable_interrupts(void) { __asm__ volatile("msr daifclr, #0x2\n\tisb" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_disable_interrupts(void) { __asm__ volatile("msr daifset, #0x2" ::: "memory"); }

// A system call from EL1, for self-tests and benchmarks: number in x8, arguments in x0-x5,
// status back in x0 and values in x1-x2 (the ABI of docs/SYSCALLS.md).
typedef struct { aarch64_u64 status, value0, value1; } aarch64_system_call_result;
static inline __attribute__((always_inline)) aarch64_system_call_result aarch64_system_call(aarch64_u64 number, aarch64_u64 a0, aarch64_u64 a1,
                                                             aarch64_u64 a2) {
    register aarch64_u64 x0 __asm__("x0") = a0;
    register aarch64_u64 x1 __asm__("x1") = a1;
    register aarch64_u64 x2 __asm__("x2") = a2;
    register aarch64_u64 x8 __asm__("x8") = number;
    __asm__ volatile("svc #0" : "+r"(x0), "+r"(x1), "+r"(x2) : "r"(x8) : "memory");
    aarch64_system_call_result result = {x0, x1, x2};
    return result;
}

static inline __attribute__((always_inline)) void aarch64_isb(void) { __asm__ volatile("isb" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_dsb_sy(void) { __asm__ volatile("dsb sy" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_dsb_ishst(void) { __asm__ volatile("dsb ishst" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_dsb_ish(void) { __asm__ volatile("dsb ish" ::: "memory"); }

// TLB maintenance for one kernel (global) page: every ASID, inner shareable domain.
static inline __attribute__((always_inline)) void aarch64_tlbi_vaae1is(aarch64_u64 page_number) {
    __asm__ volatile("tlbi vaae1is, %0" ::"r"(page_number) : "memory");
}
static inline __attribute__((always_inline)) void aarch64_tlbi_vmalle1(void) { __asm__ volatile("tlbi vmalle1" ::: "memory"); }
// Every stage 1 EL1&0 entry, every ASID, inner shareable domain.
static inline __attribute__((always_inline)) void aarch64_tlbi_vmalle1is(void) { __asm__ volatile("tlbi vmalle1is" ::: "memory"); }

// Markers for `make profile` (tools/profile), as the user runtime's: NOPs to the CPU, seen by
// the instruction-profile plugin (region start, region stop, one operation of a report).
static inline __attribute__((always_inline)) void aarch64_profile_region_start(void) { __asm__ volatile("hint #0x70" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_profile_region_stop(void) { __asm__ volatile("hint #0x71" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_profile_operation(void) { __asm__ volatile("hint #0x72" ::: "memory"); }

static inline __attribute__((always_inline)) void aarch64_wfe(void) { __asm__ volatile("wfe"); }
// A hint that this CPU is spinning, so that a host running it lets another vCPU go first.
static inline __attribute__((always_inline)) void aarch64_yield(void) { __asm__ volatile("yield" ::: "memory"); }

/// Compare-and-swap of an aligned 64-bit word of normal memory, between CPUs that both run with
/// the MMU and caches on: true when `*word` held `expected` and now holds `desired`.
static inline __attribute__((always_inline)) _Bool aarch64_compare_and_swap_u64(aarch64_u64 *word, aarch64_u64 expected,
                                                                                aarch64_u64 desired) {
    return __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline __attribute__((always_inline)) void aarch64_wfi(void) { __asm__ volatile("wfi"); }
static inline __attribute__((always_inline)) void aarch64_mask_interrupts(void) { __asm__ volatile("msr daifset, #0xf" ::: "memory"); }

// SMC Calling Convention (Arm DEN 0028): function id and arguments in x0-x3, result in x0;
// x4-x17 may be clobbered by the callee.
#define AARCH64_SMCCC(conduit)                                                              \
    static inline __attribute__((always_inline)) aarch64_u64 aarch64_##conduit##_call(aarch64_u64 function, aarch64_u64 a1, \
                                                       aarch64_u64 a2, aarch64_u64 a3) {      \
        register aarch64_u64 x0 __asm__("x0") = function;                                     \
        register aarch64_u64 x1 __asm__("x1") = a1;                                           \
        register aarch64_u64 x2 __asm__("x2") = a2;                                           \
        register aarch64_u64 x3 __asm__("x3") = a3;                                           \
        __asm__ volatile(#conduit " #0"                                                       \
                         : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)                            \
                         :                                                                    \
                         : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",   \
                           "x14", "x15", "x16", "x17", "memory");                            \
        return x0;                                                                            \
    }
AARCH64_SMCCC(hvc)
AARCH64_SMCCC(smc)

// Deliberate traps for the boot self-tests; the immediate identifies the test.
static inline __attribute__((always_inline)) void aarch64_brk_self_test(void) { __asm__ volatile("brk #0x5354" ::: "memory"); }
static inline __attribute__((always_inline)) void aarch64_undefined_instruction(void) { __asm__ volatile("udf #0" ::: "memory"); }

// Routines in context.S.
void switch_context(void *from, void *to);
void load_context(void *to) __attribute__((noreturn));
// load_context reached by a branch, not a call, inlined: as resume_user_frame below, for a fast
// path that makes no call on its way.
static inline __attribute__((always_inline, noreturn)) void load_context_branching(void *to) {
    register void *x0 __asm__("x0") = to;
    __asm__ volatile("b load_context" : : "r"(x0) : "memory");
    __builtin_unreachable();
}
void switch_to_user_frame(void *from, void *frame);
void fp_state_save(void *area);
void fp_state_restore(void *area);
aarch64_u64 copy_from_user(void *kernel, aarch64_u64 user, aarch64_u64 count);
aarch64_u64 copy_to_user(aarch64_u64 user, const void *kernel, aarch64_u64 count);
// The IPC fast path's fixed-size header moves (context.S); 0 or the ESR of the fault.
aarch64_u64 read_message_header(void *kernel, aarch64_u64 user);
aarch64_u64 write_message_header(aarch64_u64 user, aarch64_u64 label, aarch64_u64 length, aarch64_u64 sender,
                                 aarch64_u64 reply);
extern char thread_enter_user, user_copy_start, user_copy_end, user_copy_fixup;
// Routines in vectors.S.
void resume_user_frame_unlocking(void *frame) __attribute__((noreturn));
// resume_user_frame(frame): returns to user space from the exception frame at `frame`, the top of
// another thread's kernel stack, leaving this one's (vectors.S, exception_return). A branch, not
// a call, and inlined: a fast path that ends here makes no call on its way, so the function it
// is inlined into needs no frame record for it (the compiler sets one up only on the paths that
// call).
static inline __attribute__((always_inline, noreturn)) void resume_user_frame(void *frame) {
    __asm__ volatile("mov sp, %0\n\tb exception_return" : : "r"(frame) : "memory");
    __builtin_unreachable();
}
extern char thread_resume_frame_wait;

// TLB maintenance and translation base for user address spaces.
static inline __attribute__((always_inline)) void aarch64_tlbi_aside1is(aarch64_u64 asid) {
    __asm__ volatile("dsb ishst\n\ttlbi aside1is, %0\n\tdsb ish\n\tisb" ::"r"(asid << 48) : "memory");
}
static inline __attribute__((always_inline)) void aarch64_tlbi_vae1is(aarch64_u64 operand) {
    __asm__ volatile("tlbi vae1is, %0" ::"r"(operand) : "memory");
}
AARCH64_WRITE(sctlr, sctlr_el1)
// MSR PAN, #1, encoded directly so assemblers without FEAT_PAN accept it.
static inline __attribute__((always_inline)) void aarch64_set_pan(void) { __asm__ volatile(".inst 0xd500419f\n\tisb" ::: "memory"); }
AARCH64_READ(cpacr, cpacr_el1)
AARCH64_WRITE(cpacr, cpacr_el1)
AARCH64_WRITE(tpidr_el0, tpidr_el0)
AARCH64_READ(tpidr_el0, tpidr_el0)
AARCH64_WRITE(pmuserenr, pmuserenr_el0)
AARCH64_WRITE(pmevtyper0, pmevtyper0_el0)
AARCH64_READ(pmcntenset, pmcntenset_el0)
AARCH64_READ(cache_type, ctr_el0)

// Data cache clean of one line to the point of unification, then every instruction cache of the
// inner shareable domain invalidated (Arm ARM D7.5.9): after writing instructions through a data
// mapping.
static inline __attribute__((always_inline)) void aarch64_dc_cvau(aarch64_u64 address) {
    __asm__ volatile("dc cvau, %0" ::"r"(address) : "memory");
}
static inline __attribute__((always_inline)) void aarch64_ic_ialluis(void) { __asm__ volatile("ic ialluis" ::: "memory"); }
// Data cache clean of one line to the point of coherency: for memory a CPU with its MMU and
// caches still off is about to read.
static inline __attribute__((always_inline)) void aarch64_dc_cvac(aarch64_u64 address) {
    __asm__ volatile("dc cvac, %0" ::"r"(address) : "memory");
}
// Data cache clean and invalidate of one line to the point of coherency: for memory a device or a
// non-cacheable mapping will reach next, with no line of it left in any cache.
static inline __attribute__((always_inline)) void aarch64_dc_civac(aarch64_u64 address) {
    __asm__ volatile("dc civac, %0" ::"r"(address) : "memory");
}

// Data cache zero by address (Arm ARM D7.5.9): writes zeros to one whole block of DCZID_EL0's
// size without reading it first; only for Normal memory.
AARCH64_READ(dczid, dczid_el0)
static inline __attribute__((always_inline)) void aarch64_dc_zva(aarch64_u64 address) {
    __asm__ volatile("dc zva, %0" ::"r"(address) : "memory");
}

// TPIDR_EL1 holds the address of this CPU's per-CPU block (arch/aarch64/PerCPU.swift), or 0
// before the block exists.
AARCH64_READ(tpidr_el1, tpidr_el1)
AARCH64_WRITE(tpidr_el1, tpidr_el1)

// This CPU's per-CPU block, for the accessor PerCPU.current. Not volatile, and pure, so that the
// reads of one function can share one MRS and the reference counting around them optimizes as
// around a global's; the dummy input, the memory at the stack pointer, makes the compiler read
// TPIDR_EL1 again after any call or store, one of which may have switched threads (and, once
// threads move between cores, CPUs). Linux's __kern_my_cpu_offset does the same.
register aarch64_u64 aarch64_stack_pointer __asm__("sp");
static inline __attribute__((always_inline, returns_nonnull, pure)) void *aarch64_per_cpu_block(void) {
    void *block;
    __asm__("mrs %0, tpidr_el1" : "=r"(block) : "Q"(*(const char *)aarch64_stack_pointer));
    return block;
}

// Routines in boot.S.
void enter_linear_map(const aarch64_u64 *configuration, aarch64_u64 a, aarch64_u64 b, aarch64_u64 c)
    __attribute__((noreturn));
void dcache_invalidate_range(aarch64_u64 start, aarch64_u64 size);
aarch64_u64 memory_probe_load(aarch64_u64 address, aarch64_u64 *result);
aarch64_u64 memory_probe_store(aarch64_u64 address, aarch64_u64 value);

// Symbols from boot.S, vectors.S and linker.ld, as run-time addresses (PC-relative, so they
// are right wherever the image was loaded).
extern char exception_vectors, exception_vectors_smp, _start_of_image, _etext, _sdata, _end, __boot_stack_guard;
extern char __kernel_symbols_start, __kernel_symbols_end;
extern char memory_probe_load_instruction, memory_probe_store_instruction, memory_probe_fixup;
extern char secondary_entry;
extern aarch64_u64 relocation_probe, physical_window_offset;

#define AARCH64_SYMBOL_ADDRESS(function, symbol) \
    static inline __attribute__((always_inline)) aarch64_u64 aarch64_address_of_##function(void) { return (aarch64_u64)&symbol; }
AARCH64_SYMBOL_ADDRESS(exception_vectors, exception_vectors)
AARCH64_SYMBOL_ADDRESS(exception_vectors_smp, exception_vectors_smp)
AARCH64_SYMBOL_ADDRESS(start_of_image, _start_of_image)
AARCH64_SYMBOL_ADDRESS(end, _end)
AARCH64_SYMBOL_ADDRESS(end_of_text, _etext)
AARCH64_SYMBOL_ADDRESS(start_of_data, _sdata)
AARCH64_SYMBOL_ADDRESS(boot_stack_guard, __boot_stack_guard)
AARCH64_SYMBOL_ADDRESS(kernel_symbols_start, __kernel_symbols_start)
AARCH64_SYMBOL_ADDRESS(kernel_symbols_end, __kernel_symbols_end)
AARCH64_SYMBOL_ADDRESS(memory_probe_load_instruction, memory_probe_load_instruction)
AARCH64_SYMBOL_ADDRESS(memory_probe_store_instruction, memory_probe_store_instruction)
AARCH64_SYMBOL_ADDRESS(memory_probe_fixup, memory_probe_fixup)
AARCH64_SYMBOL_ADDRESS(secondary_entry, secondary_entry)
AARCH64_SYMBOL_ADDRESS(thread_enter_user, thread_enter_user)
AARCH64_SYMBOL_ADDRESS(user_copy_start, user_copy_start)
AARCH64_SYMBOL_ADDRESS(user_copy_end, user_copy_end)
AARCH64_SYMBOL_ADDRESS(user_copy_fixup, user_copy_fixup)
// thread_resume_frame_wait's address, PC-relative in one instruction where the others load it:
// the IPC fast paths set it as the return address of a thread that starts to wait in its frame,
// at every wait. ADR reaches 1 MiB either way, far more than the kernel's text, and the linker
// refuses a reference it cannot reach.
static inline __attribute__((always_inline)) aarch64_u64 aarch64_address_of_thread_resume_frame_wait(void) {
    aarch64_u64 address;
    __asm__("adr %0, thread_resume_frame_wait" : "=r"(address));
    return address;
}

// Not volatile: it changes once, in enter_linear_map, which no Swift function runs across.
__attribute__((always_inline)) static inline __attribute__((always_inline)) aarch64_u64 aarch64_physical_window_offset(void) {
    return physical_window_offset;
}

static inline __attribute__((always_inline)) aarch64_u64 aarch64_read_relocation_probe(void) { return *(volatile aarch64_u64 *)&relocation_probe; }
