// fuzz: the EL0 system call fuzzer (docs/FUZZING.md). One program in three roles, chosen by its
// start argument (FuzzOptions): the driver, which init starts and which runs several workers at
// once and checks that the kernel gave back everything they took; a worker, which makes hostile
// system calls against a model of what it owns and checks every answer; and the short-lived
// children a worker spawns to kill, to wait for, or to probe the kernel from a fresh process.

@main
struct Fuzz {
    static func main() {
        let options = FuzzOptions(argument: System.startArgument)
        switch options.role {
        case .driver: System.exit(Driver.run(options))
        case .worker: System.exit(Worker.run(options))
        case .child: System.exit(Child.run(options))
        }
    }
}
