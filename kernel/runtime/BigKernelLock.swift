// The big kernel lock: with more than one CPU online, kernel code that touches threads, processes
// and IPC objects runs on one CPU at a time, while user code runs on all of them. seL4's
// multicore kernel makes the same choice: a microkernel's system calls are short, so one lock costs
// little, and every rule of the single-CPU kernel stays true without a lock per object. The leaf
// locks (heap, frames, console, ...) stay, because boot code and the self-tests use them before
// and outside this one.
//
// Who holds it: a CPU that came in from EL0 (taken in `lockedExceptionDispatch`, released on the
// way back), a CPU in its idle loop while it picks a thread, and the boot CPU while it starts user
// space. A thread switch happens with it held, and the thread switched to releases it: on its way
// out of the exception it came in by, or in `threadFirstEntry` on its first entry to EL0. So it
// belongs to a CPU, not to a thread. docs/ARCHITECTURE.md ("Multiprocessing") has the whole story.
//
// With one CPU online it is never taken: the single-CPU vector table does not take it, and the
// idle loop skips it (`Scheduler.multiprocessor`).

import AArch64
import Synchronization

enum BigKernelLock {
    /// A test-and-test-and-set lock rather than a ticket lock: when the CPUs are virtual and
    /// outnumber the host's (QEMU on a small machine), a ticket lock hands the lock to the next
    /// CPU in line even while the host has descheduled it, and every other CPU waits for that
    /// one; here whichever CPU is running takes it. Kernel sections are short, so no CPU waits
    /// long in practice. Nothing waits under it for what another CPU does: such a wait (`wait`
    /// for a process whose threads run elsewhere) blocks the thread, which gives the lock up.
    private static let held = Atomic<Bool>(false)
    /// The index of the CPU holding it, or -1. Each CPU compares it only with its own index,
    /// which no other CPU writes, so `isHeldHere` needs no ordering.
    private static let holder = Atomic<Int>(-1)

    /// Whether the calling CPU holds it. IRQs must be masked (the answer is about this CPU).
    static var isHeldHere: Bool { holder.load(ordering: .relaxed) == PerCPU.current.index }

    /// Takes it. IRQs are masked by the caller and stay masked while it is held.
    static func acquire() {
        #if KERNEL_DEBUG
        LockOrder.bigKernel.willTake()
        #endif
        if !held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            while !takeIfFree() {
                // The holder may have panicked: then this CPU stops here.
                Panic.stopIfAnotherPanicked()
                aarch64_yield()
            }
        }
        holder.store(PerCPU.current.index, ordering: .relaxed)
    }

    /// One look while waiting: takes it if it is free, reading before writing so that waiting
    /// CPUs do not fight over the cache line while it is held.
    private static func takeIfFree() -> Bool {
        !held.load(ordering: .relaxed) && held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    /// Takes it if it comes free within about `patience` looks; false when it did not. For an
    /// idle CPU, which has nothing to lose by waiting for its next interrupt instead: a CPU in a
    /// long system call (mapping a gigabyte) would otherwise have every idle CPU spinning beside
    /// it, and virtual CPUs that spin take the host's time from the one that works.
    static func tryAcquire(patience: Int) -> Bool {
        var looks = 1
        while !takeIfFree() {
            Panic.stopIfAnotherPanicked()
            guard looks < patience else { return false }
            aarch64_yield()
            looks += 1
        }
        #if KERNEL_DEBUG
        LockOrder.bigKernel.willTake()
        #endif
        holder.store(PerCPU.current.index, ordering: .relaxed)
        return true
    }

    /// Takes it unless this CPU holds it already (an exception taken in kernel code that holds
    /// it); true when it was taken here and must be released by the caller.
    static func acquireUnlessHeld() -> Bool {
        if isHeldHere { return false }
        acquire()
        return true
    }

    static func release() {
        holder.store(-1, ordering: .relaxed)
        #if KERNEL_DEBUG
        LockOrder.bigKernel.released()
        #endif
        held.store(false, ordering: .releasing)
    }

    /// For a path that may or may not run under it (a new thread's first entry to EL0).
    static func releaseIfHeld() {
        if isHeldHere { release() }
    }
}

/// The exception path of the multiprocessor vector table (vectors.S passes the vector kind plus
/// 16): the same dispatch, under the big kernel lock. A thread that another CPU killed while it
/// ran in user space ends here: before a system call or fault of its is handled, or after the
/// interrupt that brought it in (the reschedule interrupt, usually) has been.
@inline(never)
func lockedExceptionDispatch(_ frame: UnsafeMutablePointer<UInt64>, _ kind: UInt64) {
    // A secondary CPU woken in its idle loop by its tick or a reschedule interrupt (the only
    // interrupts routed to it) touches only its own per-CPU block: it handles them without the
    // lock, and its idle loop, not the interrupt, switches to what it finds. So waiting CPUs
    // do not crowd the lock a hundred times a second each.
    if kind == 5 && PerCPU.current.index != 0 && !BigKernelLock.isHeldHere && Scheduler.isIdle {
        Interrupts.handleIRQ()
        return
    }
    let taken = BigKernelLock.acquireUnlessHeld()
    let fromUserSpace = kind >= 8
    // No thread reference in this frame: it never returns for a thread that ends (see
    // Scheduler.schedule).
    if fromUserSpace && kind & 3 == 0 && Scheduler.currentKilledInUserSpace { Scheduler.endKilledThread() }
    exceptionDispatch(frame, kind)
    if fromUserSpace && Scheduler.currentKilledInUserSpace { Scheduler.endKilledThread() }
    // Possibly on another CPU than the one that took it: the lock belongs to the CPU, and this
    // CPU holds it (every switch happens under it).
    if taken { BigKernelLock.release() }
}

/// For resume_user_frame_unlocking (vectors.S), on the stack of the thread it returns to.
@_cdecl("big_kernel_lock_release")
func bigKernelLockRelease() {
    BigKernelLock.release()
}

/// A new thread's first instructions in the kernel (vectors.S, thread_enter_user). Like a thread
/// resuming in `Scheduler.schedule`, it releases the threads that ended on this CPU (the one
/// switched away from may be one), then gives up the big kernel lock it was switched to under.
@_cdecl("thread_first_entry")
func threadFirstEntry() {
    if PerCPU.current.scheduler.dead != nil { Scheduler.releaseDeadThreads() }
    BigKernelLock.releaseIfHeld()
}
