// init: the first user process and the holder of device access: the kernel starts it with a
// device-access capability as its start handle. It reports itself, then, by its start argument,
// runs the system call fuzzer (bit 2, its options above the flags), the user-space test suite
// (bit 0, started with the program loader and handed the capability, whose checks need one, and
// a copy of the ramdisk) or the benchmarks (bit 1) and ends with their result. Otherwise it runs
// hello and then drives console input: a userspace driver for the UART's receive side, woken by
// the UART interrupt through a notification.

import UserSystemCall

@main
struct Init {
    static func main() {
        let memory = System.memory
        System.print("init: running at EL0 as process \(System.processID.value); \(memory.freeFrames) of \(memory.totalFrames) frames free")
        let deviceAccess = System.startHandle
        if System.startFlags.contains(.runFuzzer) { System.exit(run("fuzz", argument: System.startArgument >> 8)) }
        if System.startFlags.contains(.runTests) {
            // The kernel's suite first, on a quiet system; then the services, and their own tests.
            let failures = runTests(deviceAccess: deviceAccess)
            SystemStart.start(deviceAccess: deviceAccess)
            let serviceFailures = runServiceTests(restarts: System.startArgument >> 8)
            SystemStart.stop()
            System.exit(failures + serviceFailures)
        }
        if System.startFlags.contains(.runBenchmarks) { System.exit(run("bench")) }
        SystemStart.start(deviceAccess: deviceAccess)
        let code = run("hello")
        System.print("init: hello ended with code \(code)")
        guard let deviceAccess else {
            System.print("init: no console input driver: started without device access")
            return
        }
        ConsoleInput.serve(through: deviceAccess)
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
    /// Runs the services' tests (the `restarts` program) through the process manager, with
    /// `restarts` rounds of killing a service (0: its default); its exit code, 255 if it could
    /// not run.
    static func runServiceTests(restarts: UInt64) -> UInt64 {
        guard let manager = SystemStart.processManager else {
            System.print("init: no process manager: the services' tests cannot run")
            return 255
        }
        do throws(KernelError) {
            // It crashes services on purpose: it needs the control right.
            var handles = ClientHandles()
            if let control = manager.control, let copy = try? IPC.duplicate(control, rights: [.send, .transfer]) {
                handles.append(.serviceControl, copy)
            }
            let child = try manager.spawn("restarts", argument: restarts, handles: handles)
            let status = try System.wait(child)
            return status.reason == .exited ? status.code : 255
        } catch {
            System.print("init: cannot run restarts: \(error)")
            return 255
        }
    }

    /// Runs the test suite with the program loader: device access as its start handle, and a
    /// copy of the ramdisk under `.ramdisk` so that it can load programs itself. Its exit code,
    /// or 255 if it could not run or did not exit.
    static func runTests(deviceAccess: Handle?) -> UInt64 {
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

/// The PL011's receive side, driven from user space (registers from Arm DDI 0183).
enum ConsoleInput {
    static let data = 0x000
    static let flags = 0x018
    static let interruptMask = 0x038
    static let interruptClear = 0x044
    static let receiveFIFOEmpty: UInt32 = 1 << 4
    static let receiveInterrupts: UInt32 = 1 << 4 | 1 << 6 // RX, RX timeout

    /// Drives the console UART, device 0 of device-access capability `access`.
    static func serve(through access: Handle) {
        let device: (registers: Handle, interrupt: Handle)
        let base: UInt64
        let bell: Handle
        let identifier: UInt64
        do throws(KernelError) {
            device = try System.openDevice(0, through: access)
            base = UInt64(UInt(bitPattern: try IPC.map(device.registers, writable: true)))
            bell = try IPC.createNotification()
            identifier = try System.bindInterrupt(device.interrupt, to: bell)
        } catch {
            System.print("init: no console input driver: \(error)")
            return
        }
        user_write32(base + UInt64(interruptMask), user_read32(base + UInt64(interruptMask)) | receiveInterrupts)
        System.print("init: console input driver ready (UART interrupt \(identifier)); type a line")
        var line = TextLine()
        while true {
            _ = try? IPC.wait(bell)
            // Clear the UART's interrupt status before draining: a character that arrives while
            // draining raises it again, and the (level) interrupt fires once acknowledged.
            user_write32(base + UInt64(interruptClear), receiveInterrupts)
            while user_read32(base + UInt64(flags)) & receiveFIFOEmpty == 0 {
                let byte = UInt8(truncatingIfNeeded: user_read32(base + UInt64(data)))
                if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                    var report = TextLine()
                    report.write("init: console read '")
                    line.forEachByte { report.write(byte: $0) }
                    report.write("'")
                    System.print(FormattedText(line: report))
                    line = TextLine()
                } else {
                    line.write(byte: byte)
                }
            }
            try? System.acknowledgeInterrupt(device.interrupt)
        }
    }
}
