// The kernel's IPC counters, read by the `ipcStatistics` call (the shell's `ipc`). Each CPU
// counts its own, in its per-CPU block beside its system calls (`PerCPU.ipc`), so no two CPUs
// write the same line; the call reads their sum.
//
// An IPC fast path's leg (`IPCFastPath`) always does the same: one system call, one message, one
// thread switch, and for a call's leg one call. So it adds 1 to one counter, `fastCalls` or
// `fastAnswers`, and the readers add those into the system calls (`PerCPU.systemCallsTaken`), the
// switches (`PerCPU.switchesMade`), the messages and the calls: one store on the path rather than
// four.

enum IPCStatistics {
    struct Counters {
        /// Messages written into a receiver's buffer by the general path.
        var messages: UInt64 = 0
        /// Calls made by the general path (each waits for a reply).
        var calls: UInt64 = 0
        /// The IPC fast paths' call legs (`call`, `callRegisters`), and their answers'
        /// (`replyReceive`, `replyReceiveRegisters`), counted once each for all they did.
        var fastCalls: UInt64 = 0
        var fastAnswers: UInt64 = 0

        /// Every fast leg: each a system call, a message and a switch.
        var fastLegs: UInt64 { fastCalls &+ fastAnswers }
    }

    /// What `ipcStatistics` reports.
    struct Total {
        var messages: UInt64 = 0
        var calls: UInt64 = 0
    }

    /// Every CPU's messages and calls, added up, the fast paths' among them.
    static var total: Total {
        var sum = Total()
        guard let storage = PerCPU.storage else { return sum }
        for index in 0..<storage.count {
            let counters = PerCPU.block(index).pointee.ipc
            sum.messages &+= counters.messages &+ counters.fastLegs
            sum.calls &+= counters.calls &+ counters.fastCalls
        }
        return sum
    }
}
