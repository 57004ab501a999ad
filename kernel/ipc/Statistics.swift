// The kernel's IPC counters, read by the `ipcStatistics` call (the shell's `ipc`). Shared, behind
// the big kernel lock: every path that counts is a system call, which runs under it once more
// than one CPU runs threads (with one CPU, interrupts are masked in the kernel). So plain
// increments suffice.

enum IPCStatistics {
    struct Counters {
        /// Messages written into a receiver's buffer, by the general path or a fast path.
        var messages: UInt64 = 0
        /// Calls made (each waits for a reply).
        var calls: UInt64 = 0
    }

    /// Both in one variable, side by side: a call's fast path counts both with one address.
    nonisolated(unsafe) static var counters = Counters()
}
