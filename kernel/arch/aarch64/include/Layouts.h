// Memory layouts that assembly and Swift both rely on: the exception frame vectors.S saves, the
// context switch_context swaps, and the IPC message header context.S moves. Plain integer
// #defines, so clang's preprocessor serves them to the .S files and Swift imports them (module
// AArch64) as constants. Offsets are in bytes; Swift divides by 8 to index words.
#ifndef LAYOUTS_H
#define LAYOUTS_H

// ---- Exception frame: vectors.S, ExceptionFrame in Exceptions.swift ----------------------------
// x0-x30, then the registers an exception overwrites or reports. Pairs that one STP/LDP moves sit
// side by side: x30 and SP_EL0, ELR and SPSR, ESR and FAR.
#define EXCEPTION_FRAME_SIZE 288
#define EXCEPTION_FRAME_REGISTERS 0
#define EXCEPTION_FRAME_SP_EL0 248
#define EXCEPTION_FRAME_ELR 256
#define EXCEPTION_FRAME_SPSR 264
#define EXCEPTION_FRAME_ESR 272
#define EXCEPTION_FRAME_FAR 280
// General register xN (assembly only; Swift indexes the registers from EXCEPTION_FRAME_REGISTERS).
#define EXCEPTION_FRAME_REGISTER(n) (EXCEPTION_FRAME_REGISTERS + 8 * (n))

// ---- Exception syndrome: the test vectors.S makes to send an SVC from EL0 the short way -------
// ESR_EL1.EC, bits 31:26 (Arm ARM D24.2.40); ExceptionSyndrome.ExceptionClass in Swift.
#define ESR_EXCEPTION_CLASS_SHIFT 26
#define ESR_EXCEPTION_CLASS_BITS 6
#define ESR_EXCEPTION_CLASS_SVC64 0x15

// ---- System call numbers: the test system_call_entry makes in vectors.S -----------------------
// The calls whose fast path may leave the caller waiting in its exception frame, one bit per
// number (abi/SystemCallNumber.swift): call 21, notificationWait 24, replyReceive 34,
// callRegisters 53, replyReceiveRegisters 54. Their entry saves every register. The boot
// self-test compares it with SystemCalls.frameWaitCalls.
#define SYSTEM_CALLS_WAITING_IN_FRAME 0x0060000401200000
// callRegisters, and replyReceiveRegisters right after it: `svc #1` and `svc #2` name these two
// (docs/SYSCALLS.md), and the entry writes their number to x8 before saving it.
#define SYSTEM_CALL_CALL_REGISTERS 53
// ESR_EL1 of `svc #0` from AArch64 (EC 0x15, IL 1, ISS the immediate, ISS2 0): subtracted from the
// ESR, it leaves an SVC's immediate, and anything else for another exception.
#define ESR_SVC64_IMMEDIATE_ZERO 0x56000000

// ---- Switch context: switch_context in context.S, SwitchContext in Thread.swift ---------------
// The registers the AAPCS64 makes a callee keep: x19-x28, the frame record x29/x30, and SP.
#define SWITCH_CONTEXT_WORDS 13
#define SWITCH_CONTEXT_SIZE (SWITCH_CONTEXT_WORDS * 8)
#define SWITCH_CONTEXT_X19 0
#define SWITCH_CONTEXT_X29 80
#define SWITCH_CONTEXT_X30 88
#define SWITCH_CONTEXT_SP 96
// Callee-saved register xN, for N in 19...28 (assembly only).
#define SWITCH_CONTEXT_REGISTER(n) (SWITCH_CONTEXT_X19 + 8 * ((n) - 19))

// ---- FP/SIMD save area: fp_state_save and fp_state_restore in context.S, FloatingPoint.swift ----
// q0-q31 (16 bytes each), then FPCR and FPSR as one pair, then the CPACR_EL1 value the area's
// thread runs with while one CPU runs alone (LazyFloatingPoint.switched); 16-byte aligned.
#define FP_STATE_FPCR 512
#define FP_STATE_TRAP 528
#define FP_STATE_SIZE 544

// ---- IPC message header: read_message_header and write_message_header in context.S ------------
// The fixed part of IPCMessageLayout (abi/Types.swift), which the boot self-test
// compares with these.
#define IPC_MESSAGE_LABEL 0
#define IPC_MESSAGE_LENGTH 8
#define IPC_MESSAGE_HANDLE_COUNT 16
#define IPC_MESSAGE_SENDER 24
#define IPC_MESSAGE_REPLY_HANDLE 32
#define IPC_MESSAGE_HANDLES 40
#define IPC_MESSAGE_PAYLOAD 72
// Handle word N, for N in 0...3 (assembly only).
#define IPC_MESSAGE_HANDLE(n) (IPC_MESSAGE_HANDLES + 8 * (n))

// The assembly's pairing and alignment assumptions, checked whenever Swift imports this file.
#ifndef __ASSEMBLER__
_Static_assert(EXCEPTION_FRAME_SIZE % 16 == 0, "SP stays 16-byte aligned below the frame");
_Static_assert(EXCEPTION_FRAME_REGISTER(31) == EXCEPTION_FRAME_SP_EL0, "x30 and SP_EL0 are one pair");
_Static_assert(EXCEPTION_FRAME_SPSR == EXCEPTION_FRAME_ELR + 8, "ELR and SPSR are one pair");
_Static_assert(EXCEPTION_FRAME_FAR == EXCEPTION_FRAME_ESR + 8, "ESR and FAR are one pair");
_Static_assert(EXCEPTION_FRAME_FAR + 8 <= EXCEPTION_FRAME_SIZE, "FAR lies inside the frame");
_Static_assert(SWITCH_CONTEXT_REGISTER(29) == SWITCH_CONTEXT_X29, "x29 follows x28");
_Static_assert(SWITCH_CONTEXT_X30 == SWITCH_CONTEXT_X29 + 8, "x29 and x30 are one pair");
_Static_assert(SWITCH_CONTEXT_SP + 8 == SWITCH_CONTEXT_SIZE, "SP is the last word");
_Static_assert(IPC_MESSAGE_HANDLE(4) == IPC_MESSAGE_PAYLOAD, "four handle words before the payload");
_Static_assert(FP_STATE_FPCR == 32 * 16 && FP_STATE_TRAP == FP_STATE_FPCR + 16, "q0-q31, then FPCR and FPSR");
_Static_assert(FP_STATE_SIZE == FP_STATE_TRAP + 16, "the trap word, and the area stays 16-byte aligned");
#endif

// ---- Secondary CPU start record: secondary_entry in boot.S, SecondaryCPUs.swift ---------------
// What a secondary CPU needs before its MMU is on, read with the MMU and caches off (the boot CPU
// cleans the record to the point of coherency first). Pairs that one LDP moves sit side by side.
#define SECONDARY_START_TTBR0 0      // identity map of the kernel text, for the switch only
#define SECONDARY_START_TTBR1 8      // the kernel's translation tables
#define SECONDARY_START_MAIR 16
#define SECONDARY_START_TCR 24
#define SECONDARY_START_SCTLR 32
#define SECONDARY_START_STACK 40     // stack top, linear-map address
#define SECONDARY_START_PER_CPU 48   // the CPU's per-CPU block, linear-map address (TPIDR_EL1)
#define SECONDARY_START_OFFSET 56    // linear-map address minus physical address
#define SECONDARY_START_RECORD 64    // this record, linear-map address (kernel_secondary_main's x0)
// Swift only: the CPU's redistributor (GICv3), its index, and what it reports once running.
#define SECONDARY_START_REDISTRIBUTOR 72
#define SECONDARY_START_INDEX 80
#define SECONDARY_START_ONLINE 88    // its MPIDR_EL1 once it runs, or ~0 once the boot CPU gave up on it
#define SECONDARY_START_SIZE 128

#endif
