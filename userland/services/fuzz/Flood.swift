// Floods of threads that each sleep for a while: every sleeping thread holds one of the kernel's
// pending deadlines, and a flood from a worker and its children together holds more than the
// kernel keeps. Meanwhile the worker makes calls with timeouts, which must still time out (or
// fail) rather than wait for ever; and the limits on threads per process and on kernel stacks
// are met, where creating one more must be an error.

import FuzzRegisters
import UserSystemCall

enum Flood {
    /// More than a process may have (64 threads, the main one included).
    static let threads = 72
    static let stackBytes: UInt64 = 4096
    /// A flag per thread, set as its last act (fuzz_finish_thread).
    nonisolated(unsafe) static var flags = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
    nonisolated(unsafe) static var sleep: UInt64 = 0

    static func prepare() {
        flags = UnsafeMutablePointer<UInt64>.allocate(capacity: threads)
        flags.initialize(repeating: 0, count: threads)
    }

    /// Starts threads on 4 KiB slices of the mapping at `stacks` until `create` (which makes
    /// the threadCreate call for a stack top and an index) fails; returns how many started.
    static func start(stacks: UInt64, sleeping nanoseconds: UInt64, _ create: (UInt64, UInt64) -> Bool) -> Int {
        sleep = nanoseconds
        var started = 0
        while started < threads {
            flags[started] = 0
            guard create(stacks + UInt64(started + 1) * stackBytes, UInt64(started)) else { break }
            started += 1
        }
        return started
    }

    static func finished(_ count: Int) -> Bool {
        for index in 0..<count where flags[index] == 0 { return false }
        return true
    }

    static var body: UInt64 { unsafeBitCast(floodThreadBody as @convention(c) (UInt64) -> Void, to: UInt64.self) }

    /// A child that floods: as many sleeping threads as it may have, then it waits (yielding: a
    /// sleep of its own might find no room for its deadline) until all have ended.
    static func child(sleeping nanoseconds: UInt64) -> UInt64 {
        prepare()
        guard let stacks = try? System.map(bytes: UInt64(threads + 1) * stackBytes, access: .write) else { return 0 }
        let count = start(stacks: UInt64(UInt(bitPattern: stacks)), sleeping: nanoseconds) { top, index in
            user_system_call(SystemCallNumber.threadCreate.rawValue, user_thread_start_address(), top, index, Flood.body,
                             0, 0).status == systemCallSuccess
        }
        while !finished(count) { System.yield() }
        return 0
    }
}

@_cdecl("fuzz_flood_thread_body")
func floodThreadBody(_ index: UInt64) {
    _ = user_system_call(SystemCallNumber.sleep.rawValue, Flood.sleep, 0, 0, 0, 0, 0)
    fuzz_finish_thread(Flood.flags + Int(index), 1)
}
