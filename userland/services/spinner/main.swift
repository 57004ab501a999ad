// spinner: runs forever without a system call, for tests of preemption and `kill`.

@main
struct Spinner {
    static func main() {
        var counter: UInt64 = 0
        while true { counter &+= 1 }
    }
}
