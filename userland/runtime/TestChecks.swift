// What the services' test programs (restarts, disktest) share: checks printed one per line under
// the program's name, and what the kernel holds, for leak checks.

/// Checks that print "NAME: ✓ what" or "NAME: ✗ FAILED: what" and count both.
public struct TestChecks {
    public let program: StaticString
    public private(set) var passed = 0
    public private(set) var failed = 0

    public init(_ program: StaticString) { self.program = program }

    public mutating func check(_ condition: Bool, _ description: FormattedText) {
        var line = TextLine()
        line.write(program)
        line.write(condition ? ": \u{2713} " : ": \u{2717} FAILED: ")
        description.line.forEachByte { line.write(byte: $0) }
        System.print(FormattedText(line: line))
        if condition { passed += 1 } else { failed += 1 }
    }

    /// The last line, "NAME: N passed, N failed", and the exit code: the failures.
    public func finish() -> Never {
        System.print("\(program): \(passed) passed, \(failed) failed")
        System.exit(UInt64(failed))
    }
}

/// What the kernel holds: free frames (with the kernel heap's pages, which it keeps warm) and
/// kernel objects, and of those the ports closed but still named (`portStatistics`). Equal frames
/// and objects before and after means nothing leaked on a quiet system. Across restarts of
/// services, a client that has not used its send right since the service ended still names the
/// closed port, one object, which it lets go when it next reaches for the service; whether it
/// has done so yet depends on timing, so such checks count closed ports apart
/// (`closedPortsApart`) and bound them instead.
public struct KernelFootprint: Equatable {
    public var frames: UInt64
    public var objects: UInt64
    public var closedPorts: UInt64

    public init(frames: UInt64, objects: UInt64, closedPorts: UInt64 = 0) {
        self.frames = frames
        self.objects = objects
        self.closedPorts = closedPorts
    }

    public static var now: KernelFootprint {
        let objects = System.kernelObjects.objects
        return KernelFootprint(frames: System.memory.freeFrames + System.kernelHeap.pages, objects: objects,
                               closedPorts: System.ports.closed)
    }

    /// The objects other than closed ports still named.
    public var objectsInUse: UInt64 { objects &- min(closedPorts, objects) }

    /// Frames and objects equal, the closed ports counted with the objects or apart.
    public func matches(_ other: KernelFootprint, closedPortsApart: Bool = false) -> Bool {
        frames == other.frames
            && (closedPortsApart ? objectsInUse == other.objectsInUse : objects == other.objects)
    }

    public static func == (left: KernelFootprint, right: KernelFootprint) -> Bool { left.matches(right) }

    /// The reading the machine keeps to: the most frequent of `looks` readings 10 ms apart (the
    /// earliest of them on a tie). A baseline read once can fall inside a moment when a program
    /// beside the caller holds more than usual, or less (between one instance of a restarting
    /// service and the next), and a later reading would then seem to leak, or to give back.
    public static func steady(looks: Int = 9, closedPortsApart: Bool = false) -> KernelFootprint {
        MachineReading.steady(looks: looks, same: { $0.matches($1, closedPortsApart: closedPortsApart) }) { now }
    }

    /// The machine-wide count of kernel objects the machine keeps to: the most frequent of nine
    /// readings 10 ms apart (the latest on a tie), the baseline of a check of objects alone.
    /// Read once, it can fall while an ended program's objects are still on their way back
    /// (another CPU releases a thread at its next switch). Frames are not looked at: they may
    /// move in every reading while the objects keep still.
    public static var steadyObjects: UInt64 {
        MachineReading.steady(latestOnTie: true, same: ==) { System.kernelObjects.objects }
    }

    /// The machine-wide count of kernel objects once it is back to `expected`, or the last of
    /// `looks` readings 10 ms apart (see `settled`).
    public static func objectsSettled(toward expected: UInt64, looks: Int = 100) -> UInt64 {
        MachineReading.settled(looks: looks, until: { $0 == expected }) { System.kernelObjects.objects }
    }

    /// The footprint once it is back to `expected`, or the last of `looks` readings 10 ms apart.
    /// The counts are the whole machine's: a program running beside the caller (the disk test
    /// restarts its driver a hundred times) holds objects and frames for moments, and a reading
    /// can fall inside one. A leak is what stays.
    public static func settled(toward expected: KernelFootprint, looks: Int = 100,
                               closedPortsApart: Bool = false) -> KernelFootprint {
        MachineReading.settled(looks: looks, until: { $0.matches(expected, closedPortsApart: closedPortsApart) }) { now }
    }
}

/// How the leak checks read what the whole machine holds (`KernelFootprint`, the test suite's
/// `KernelHoldings`, the fuzzing driver): a baseline steady, and an after-reading once settled.
public enum MachineReading {
    /// The most frequent of `looks` readings (at most 16) 10 ms apart, `same` telling equal
    /// ones; on a tie the earliest, or the latest if `latestOnTie`.
    public static func steady<Value>(looks: Int = 9, latestOnTie: Bool = false, same: (Value, Value) -> Bool,
                                     _ read: () -> Value) -> Value {
        // Kept inline: a heap page the caller took meanwhile would count as the kernel's.
        var readings = InlineArray<16, Value>(repeating: read())
        let count = max(1, min(looks, readings.count))
        for look in 1..<count {
            System.sleep(nanoseconds: 10_000_000)
            readings[look] = read()
        }
        var best = latestOnTie ? count - 1 : 0
        var bestSeen = 0
        for step in 0..<count {
            let candidate = latestOnTie ? count - 1 - step : step
            var seen = 0
            for other in 0..<count where same(readings[other], readings[candidate]) { seen += 1 }
            if seen > bestSeen {
                best = candidate
                bestSeen = seen
            }
        }
        return readings[best]
    }

    /// The first reading `done` accepts, or the last of `looks` readings `interval` nanoseconds
    /// apart.
    public static func settled<Value>(looks: Int = 100, interval: UInt64 = 10_000_000, until done: (Value) -> Bool,
                                      _ read: () -> Value) -> Value {
        var reading = read()
        var look = 1
        while !done(reading) && look < looks {
            System.sleep(nanoseconds: interval)
            reading = read()
            look += 1
        }
        return reading
    }
}

/// The error `body` threw, or nil if it succeeded.
public func catching(_ body: () throws(KernelError) -> Void) -> KernelError? {
    do throws(KernelError) {
        try body()
        return nil
    } catch {
        return error
    }
}
