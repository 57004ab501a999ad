// ipcstress: several servers and clients at once. Started with argument 0 it is the conductor:
// it starts 3 echo servers and 6 clients (this program with argument 1, each given a send handle
// to one server), waits for all, and exits 0 only if every client verified every reply. As a
// client it makes 150 calls with varying payloads and checks each answer, and floods its server's
// port with asynchronous sends until the queue is full (two clients share each server, so a call
// can meet the other's flood: it backs off and retries). The exit code is the number of errors.

@main
struct IPCStress {
    static let servers = 3
    static let clients = 6
    static let callsPerClient = 150
    /// Tries of one call against a queue kept full by other clients' floods: the first ones
    /// after a yield, the rest after 1 ms each (about a second in all).
    static let maximumAttempts = 1100
    static let yieldingAttempts = 100

    static func main() {
        if System.startArgument == 1 { System.exit(client()) }
        var ports: [Handle] = []
        var serverIDs: [ChildProcess] = []
        for _ in 0..<servers {
            guard let port = try? IPC.createPort(), let serverSide = try? IPC.duplicate(port, rights: [.receive, .transfer]),
                  let server = try? System.spawn("echo", handle: serverSide) else { System.exit(100) }
            ports.append(port)
            serverIDs.append(server)
        }
        var clientIDs: [ChildProcess] = []
        for index in 0..<clients {
            guard let sendOnly = try? IPC.duplicate(ports[index % servers], rights: [.send, .transfer]),
                  let client = try? System.spawn("ipcstress", argument: 1, handle: sendOnly) else { System.exit(101) }
            clientIDs.append(client)
        }
        var errors: UInt64 = 0
        for client in clientIDs {
            guard let status = try? System.wait(client), status.reason == .exited else {
                System.print("ipcstress: a client did not exit")
                errors += 1
                continue
            }
            errors += status.code
        }
        for (port, server) in zip(ports, serverIDs) {
            // The clients' floods may still fill the queue (a server whose CPU the host runs
            // seldom drains it late): a call meeting a full queue fails at once, so try again a
            // while, as the clients do. A server that was never stopped is killed, not waited for.
            var stop = IPCMessage(label: 0)
            var stopped = false
            for _ in 0..<maximumAttempts where !stopped {
                do throws(KernelError) {
                    try IPC.call(port, &stop)
                    stopped = true
                } catch {
                    if error != .queueFull {
                        System.print("ipcstress: the stop call to a server failed: \(error)")
                        break
                    }
                    System.sleep(nanoseconds: 1_000_000)
                }
            }
            if !stopped {
                System.print("ipcstress: a server could not be stopped")
                errors += 1
                try? System.kill(server)
            }
            let status = try? System.wait(server)
            if stopped && status?.code != 0 {
                System.print("ipcstress: a server ended with code \(status?.code ?? 999)")
                errors += 1
            }
            try? IPC.close(port)
        }
        System.exit(errors)
    }

    static func client() -> UInt64 {
        guard let port = System.startHandle else { return 1 }
        var errors: UInt64 = 0
        let me = System.processID.value
        for round in 0..<callsPerClient {
            let size = (round * 37 + Int(me) * 11) % 257
            var request = IPCMessage(label: 10)
            request.fill(count: size) { UInt8(truncatingIfNeeded: $0 &* 3 &+ round &+ Int(me)) }
            // Another client's flood may fill the shared queue: a call then fails with queue full
            // (calls never block on a full queue), and the client backs off and tries again.
            var attempts = 0
            var failure: KernelError?
            while true {
                do throws(KernelError) {
                    try IPC.call(port, &request)
                    break
                } catch {
                    attempts += 1
                    if error != .queueFull || attempts == maximumAttempts {
                        failure = error
                        break
                    }
                    // Yields first; then, since a yield returns at once when this CPU has nothing
                    // else to run, waits a millisecond at a time for the server's CPU to drain
                    // the queue (with more vCPUs than host cores it may not run for a while).
                    if attempts < yieldingAttempts {
                        System.yield()
                    } else {
                        System.sleep(nanoseconds: 1_000_000)
                    }
                }
            }
            if let failure {
                System.print("ipcstress: process \(me) call \(round) failed after \(attempts) attempts: \(failure)")
                errors += 1
                continue
            }
            if request.label != 11 || request.length != size {
                System.print("ipcstress: process \(me) call \(round): answer label \(request.label), length \(request.length), not 11 and \(size)")
                errors += 1
                continue
            }
            for index in 0..<size where request[byte: index] != UInt8(truncatingIfNeeded: index &* 3 &+ round &+ Int(me)) {
                System.print("ipcstress: process \(me) call \(round): answer byte \(index) differs")
                errors += 1
                break
            }
            if round % 50 == 49 { System.yield() }
        }
        // Flood: asynchronous sends until the queue is full; the server drains them.
        var flood = IPCMessage(label: 99)
        var sent = 0
        while sent < 64 {
            do throws(KernelError) {
                try IPC.send(port, &flood)
                sent += 1
            } catch {
                if error != .queueFull {
                    System.print("ipcstress: process \(me) flood send \(sent) failed: \(error)")
                    errors += 1
                }
                break
            }
        }
        return errors
    }
}
