// The kernel's IPC counters, read by the `ipcStatistics` call (the shell's `ipc`). One core
// runs the kernel with interrupts masked, so plain increments suffice; a second core would give
// each its own counters, summed when read.

enum IPCStatistics {
    /// Messages written into a receiver's buffer, by the general path or a fast path.
    nonisolated(unsafe) static var messages: UInt64 = 0
    /// Calls made (each waits for a reply).
    nonisolated(unsafe) static var calls: UInt64 = 0
}
