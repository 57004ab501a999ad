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
/// kernel objects. Equal before and after means nothing leaked.
public struct KernelFootprint: Equatable {
    public var frames: UInt64
    public var objects: UInt64

    public init(frames: UInt64, objects: UInt64) {
        self.frames = frames
        self.objects = objects
    }

    public static var now: KernelFootprint {
        KernelFootprint(frames: System.memory.freeFrames + System.kernelHeap.pages, objects: System.kernelObjects.objects)
    }

    /// The footprint once it is back to `expected`, or the last of `looks` readings 10 ms apart.
    /// The counts are the whole machine's: a program running beside the caller (the disk test
    /// restarts its driver a hundred times) holds objects and frames for moments, and a reading
    /// can fall inside one. A leak is what stays.
    public static func settled(toward expected: KernelFootprint, looks: Int = 100) -> KernelFootprint {
        var reading = now
        var look = 1
        while reading != expected && look < looks {
            System.sleep(nanoseconds: 10_000_000)
            reading = now
            look += 1
        }
        return reading
    }
}
