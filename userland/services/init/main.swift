// init: the first user process. It reports itself, then, by its start argument, runs the user-space
// test suite (bit 0) or the user-space benchmarks (bit 1), and ends with their result.

@main
struct Init {
    static func main() {
        let memory = System.memory
        System.print("init: running at EL0 as process \(System.processID.value); \(memory.freeFrames) of \(memory.totalFrames) frames free")
        if System.startArgument & 1 != 0 { System.exit(run("tests")) }
        if System.startArgument & 2 != 0 { System.exit(run("bench")) }
        let code = run("hello")
        System.print("init: hello ended with code \(code); nothing more to start")
    }

    /// Runs a program to its end; its exit code, or 255 if it could not run or did not exit.
    static func run(_ name: StaticString) -> UInt64 {
        do throws(KernelError) {
            let child = try System.spawn(name)
            let status = try System.wait(child)
            return status.reason == .exited ? status.code : 255
        } catch {
            System.print("init: cannot run \(name): \(error)")
            return 255
        }
    }
}
