// spinner: runs forever without a system call, for tests of preemption and `kill`. A start
// argument other than 0 is a mask of CPUs: a spinning thread is kept to each of them (the main
// thread to the lowest), for a kill of a process that runs on several CPUs at once.

import UserSystemCall

@main
struct Spinner {
    static func main() {
        let cpus = System.startArgument
        if cpus != 0 {
            var others = cpus & (cpus &- 1)
            while others != 0 {
                let cpu = others & (~others &+ 1)
                others &= others &- 1
                _ = try? System.createThread(argument: cpu) { cpu in
                    _ = try? System.setAffinity(cpu)
                    Spinner.spin()
                }
            }
            _ = try? System.setAffinity(cpus & (~cpus &+ 1))
        }
        spin()
    }

    static func spin() -> Never {
        var counter: UInt64 = 0
        while true { counter &+= 1 }
    }
}
