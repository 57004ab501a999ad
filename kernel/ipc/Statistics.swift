// The kernel's IPC counters, read by the `ipcStatistics` call (the shell's `ipc`). Each CPU
// counts its own, in its per-CPU block beside its system calls (`PerCPU.ipc`): a fast path then
// counts its call and its message with the one address it has for that block, and no two CPUs
// write the same line. The call reads their sum.

enum IPCStatistics {
    struct Counters {
        /// Messages written into a receiver's buffer, by the general path or a fast path.
        var messages: UInt64 = 0
        /// Calls made (each waits for a reply).
        var calls: UInt64 = 0
    }

    /// Every CPU's counters, added up.
    static var total: Counters {
        var sum = Counters()
        guard let storage = PerCPU.storage else { return sum }
        for index in 0..<storage.count {
            let counters = PerCPU.block(index).pointee.ipc
            sum.messages &+= counters.messages
            sum.calls &+= counters.calls
        }
        return sum
    }
}
