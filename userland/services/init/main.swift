// init: the first user process and the holder of device access: the kernel starts it with a
// device-access capability as its start handle. It reports itself, then, by its start argument,
// runs the system call fuzzer (bit 2, its options above the flags), the user-space test suite
// (bit 0, started with the program loader and handed the capability, whose checks need one, and
// a copy of the ramdisk) or the benchmarks (bit 1, handed the capability too: one of them drives
// the UART's interrupt; bits 8-15 say which) and ends with their result. Otherwise it starts the manifest's services
// (among them the console driver and the shell) and serves its power control port: asked to shut
// down, it stops the services and ends with code 0, and the kernel powers the machine off.

import UserSystemCall

@main
struct Init {
    static func main() {
        let memory = System.memory
        System.print("init: running at EL0 as process \(System.processID.value); \(memory.freeFrames) of \(memory.totalFrames) frames free")
        let deviceAccess = System.startHandle
        if System.startFlags.contains(.runFuzzer) { System.exit(run("fuzz", argument: System.startFlags.fuzzerArgument)) }
        if System.startFlags.contains(.runTests) {
            // The kernel's suite first, on a quiet system; then the services, and their own tests.
            let failures = runTests(deviceAccess: deviceAccess)
            SystemStart.start(deviceAccess: deviceAccess, interactive: false)
            let serviceFailures = runServiceTests("restarts", rounds: System.startFlags.serviceKills)
            let diskFailures = runServiceTests("disktest", rounds: System.startFlags.serviceKills, disk: true)
            SystemStart.stop()
            System.exit(failures + serviceFailures + diskFailures)
        }
        if System.startFlags.contains(.runBenchmarks) {
            // The selection rides in bits 8-15 of bench's argument, as in init's.
            System.exit(run("bench", argument: System.startFlags.benchmarks.rawValue << 8, handle: deviceAccess))
        }
        SystemStart.start(deviceAccess: deviceAccess, interactive: true)
        servePowerControl()
    }

    /// Runs a program to its end, moving `handle` to it; its exit code, or 255 if it could not run
    /// or did not exit.
    static func run(_ name: StaticString, argument: UInt64 = 0, handle: Handle? = nil) -> UInt64 {
        do throws(KernelError) {
            // The ramdisk that spawn maps is let go afterwards: init keeps nothing for it.
            defer { System.releaseSpawn() }
            let child = try System.spawn(name, argument: argument, handle: handle)
            let status = try System.wait(child)
            return status.reason == .exited ? status.code : 255
        } catch {
            System.print("init: cannot run \(name): \(error)")
            return 255
        }
    }
}

extension Init {
    /// Runs a test of the services (`restarts`, `disktest`) through the process manager, with
    /// `rounds` kills of a service (0: its default), and a copy of the disk if `disk`; its exit
    /// code, 255 if it could not run.
    static func runServiceTests(_ program: StaticString, rounds: UInt64, disk: Bool = false) -> UInt64 {
        guard let manager = SystemStart.processManager else {
            System.print("init: no process manager: the services' tests cannot run")
            return 255
        }
        do throws(KernelError) {
            // It crashes services on purpose: it needs the control right. The disk test also
            // gets the disk, if a block service started.
            var handles = ClientHandles()
            manager.grantControl(to: &handles)
            if disk, let copy = SystemStart.sendRight(to: SystemStart.disk) { handles.append(.disk, copy) }
            let child = try manager.spawn(program, argument: rounds, handles: handles)
            let status = try System.wait(child)
            return status.reason == .exited ? status.code : 255
        } catch {
            System.print("init: cannot run \(program): \(error)")
            return 255
        }
    }

    /// Runs the test suite with the program loader: device access as its start handle, and a
    /// copy of the ramdisk under `.ramdisk` so that it can load programs itself. Its exit code,
    /// or 255 if it could not run or did not exit.
    static func runTests(deviceAccess: Handle?) -> UInt64 {
        // The suite gets a copy: the services started after it need the capability too.
        let deviceAccess = deviceAccess.flatMap { try? IPC.duplicate($0, rights: [.open, .duplicate, .transfer]) }
        guard let ramdisk = System.initialRamdisk else { return run("tests", handle: deviceAccess) }
        do throws(KernelError) {
            let loader = try ProgramLoader(ramdisk: ramdisk)
            // Unmapped when the suite has ended: what init holds at the end is only its own.
            defer { loader.close() }
            // Without a copy the suite still runs; its loader cases then fail.
            var handles = StartHandles()
            let copy = try? IPC.duplicate(ramdisk, rights: [.map, .duplicate, .transfer])
            if let copy { handles.append(.ramdisk, copy) }
            let tests: (process: Handle, id: UInt64)
            do throws(KernelError) {
                tests = try loader.spawn("tests", startHandle: deviceAccess, handles: handles)
            } catch {
                if let copy { try? IPC.close(copy) }
                throw error
            }
            let status = try ProcessHandles.wait(tests.process)
            try? IPC.close(tests.process)
            return status.reason == .exited ? status.code : 255
        } catch {
            System.print("init: cannot run tests: \(error)")
            return 255
        }
    }
}

extension Init {
    /// Answers requests on the power control port (PowerControl.swift) until one asks for a
    /// shutdown; then stops the services and ends, and the kernel powers off.
    static func servePowerControl() {
        guard let port = SystemStart.powerControl else {
            System.print("init: no power control port; the services run on")
            while true { System.sleep(nanoseconds: .max) }
        }
        var message = IPCMessage()
        while true {
            do throws(KernelError) {
                try IPC.receive(port, into: &message)
            } catch {
                System.sleep(nanoseconds: 10_000_000)
                continue
            }
            message.closeHandles()
            let shutdown = message.label == PowerControl.shutdown
            if let reply = message.replyHandle {
                var answer = IPCMessage(label: shutdown ? 0 : KernelError.invalidArgument.rawValue)
                try? IPC.reply(reply, &answer)
            }
            if shutdown {
                System.print("init: shutdown requested by process \(message.sender.value); stopping the services")
                SystemStart.stop()
                System.exit(0)
            }
        }
    }
}
