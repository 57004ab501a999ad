// Finding the system's services from any program the process manager started: the name service
// (start block `.names`) answers a service's current port and generation; when a service is
// restarting the lookup waits for it, and when the name service itself was restarted (its old
// port answers `peerClosed`) a fresh send right to it comes from the process manager
// (`.processManager`). Nothing here allocates: the user heap uses it to find a restarted memory
// manager.

public enum SystemServices {
    nonisolated(unsafe) static var names: Handle? = ProgramStart.handle(.names)

    /// The process manager this program was given, if any.
    public static var processManager: ProcessManager? {
        ProgramStart.handle(.processManager).map { ProcessManager($0, control: ProgramStart.handle(.serviceControl)) }
    }

    /// A send right to `name`'s running instance and the generation of its registration (one
    /// more at each restart). Waits out a restart and a restarted name service, retrying up to
    /// `attempts` times with a pause that grows from 1 ms to 64 ms; the last error otherwise.
    public static func lookup(_ name: StaticString, attempts: Int = 40) throws(KernelError) -> (port: Handle, generation: UInt64) {
        var attempt = 0
        while true {
            attempt += 1
            var failure = KernelError.notFound
            if let current = names {
                do throws(KernelError) {
                    return try Names(current).lookup(name)
                } catch {
                    failure = error
                }
            }
            guard attempt < attempts else { throw failure }
            if failure == .peerClosed || failure == .invalidHandle || names == nil {
                // The name service we knew is gone (or we never had one): ask for the new one.
                if let endpoint = try? processManager?.serviceEndpoint(UnsafeRawBufferPointer(
                    start: ("names" as StaticString).utf8Start, count: 5)) {
                    if let old = names { try? IPC.close(old) }
                    names = endpoint.port
                }
            } else if failure != .wouldBlock && failure != .notFound {
                throw failure
            }
            System.sleep(nanoseconds: 1_000_000 << UInt64(min(attempt, 6)))
        }
    }
}
