// hello: the template for a new user program. Copy this folder to userland/services/NAME, change
// the code, run `make`: the program is built with the runtime and packed into the initial
// ramdisk, where `System.spawn("NAME")` finds it.

@main
struct Hello {
    static func main() {
        let clock = System.clock
        System.print("hello: process \(System.processID.value), child of \(System.parentID.value), at \(clock.milliseconds) ms since boot")
        var squares: [UInt64] = []
        for value: UInt64 in 1...10 { squares.append(value * value) }
        System.print("hello: the first ten squares add up to \(squares.reduce(0, +))")
    }
}
