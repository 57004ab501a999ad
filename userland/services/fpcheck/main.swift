// fpcheck: keeps values in floating-point registers across yields and preemption, checking them
// against integer copies kept in memory the compiler cannot see through (volatile accesses).
// Exits 0 if every value survived every context switch, 1 if another thread's state leaked in.

import UserSystemCall

@main
struct FPCheck {
    static func main() {
        var shadow = InlineArray<4, UInt64>(repeating: 0)
        let seed = Double(System.processID.value)
        var a = seed + 0.5, b = seed * 3.25, c = seed - 7.125, d = seed / 3
        withUnsafeMutablePointer(to: &shadow) { pointer in
            let base = UInt64(UInt(bitPattern: pointer))
            for round in 0..<300 {
                a = a * 1.0009765625 + 0.25
                b = b * 0.9990234375 - 0.5
                c = c + a * 0.125
                d = d - b * 0.0625
                user_write(base, a.bitPattern)
                user_write(base + 8, b.bitPattern)
                user_write(base + 16, c.bitPattern)
                user_write(base + 24, d.bitPattern)
                if round % 3 == 0 { System.yield() }
                if a.bitPattern != user_read(base) || b.bitPattern != user_read(base + 8)
                    || c.bitPattern != user_read(base + 16) || d.bitPattern != user_read(base + 24) {
                    System.exit(1)
                }
            }
        }
        System.exit(0)
    }
}
