// The one source of choices: a worker's whole campaign follows from its seed (SplitMix64, whose
// every output depends on a counter, so nearby seeds give unrelated streams).

struct Random {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 ^ 0x5DEE_CE66_D1CE_4E5B }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A value in 0..<bound (bound > 0); the tiny modulo bias does not matter here.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }

    /// True once in `times` on average.
    mutating func oneIn(_ times: Int) -> Bool { below(times) == 0 }

    /// A value in lower...upper.
    mutating func between(_ lower: UInt64, _ upper: UInt64) -> UInt64 { lower + next() % (upper - lower + 1) }
}

/// A seed derived from another for the `index`th user of it: a worker's from the driver's.
func derivedSeed(_ seed: UInt64, _ index: UInt64) -> UInt64 {
    var random = Random(seed: seed ^ (index &+ 1) &* 0xD1B5_4A32_D192_ED03)
    return random.next()
}
