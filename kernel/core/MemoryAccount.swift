// Memory accounts: who pays for the memory the kernel holds on a process's behalf. Every process
// has an account with a limit, set by whoever created it, and its account is a child of its
// creator's (or of the account of a process whose handle with the account right the creator
// named, as a process manager does for its clients): a charge is taken from the account and from
// every ancestor at once, or from none, so a process can never hold more than any ancestor's
// limit allows for its whole subtree.
// User pages, translation tables, kernel stacks and kernel objects are all charged, by size;
// each is released when the memory goes back.
//
// Two of the kernel's tables are fixed, whatever the memory: the process table and the kernel
// stacks (one per thread). Bytes alone would let a program with a modest limit fill them (a few
// MiB of processes or threads), and then nobody could start a program or restart a service. So
// each account with a limit of its own also counts the slots its subtree holds, and may hold at
// most a quarter of each table (`takeSlot`), checked at every such level on the way up as bytes
// are.

public final class MemoryAccount {
    /// Keeps the parent alive as long as this account (a descendant's charges pass through it).
    /// Let go only by `deinit`.
    public private(set) var parent: MemoryAccount?
    /// The same parent, for walking up without counting references on every step: a charge
    /// walks the whole chain, and counting cost more than the walk.
    private(set) var parentLink: Unmanaged<MemoryAccount>?
    /// The most this account and its descendants may hold, in bytes (`unlimited`: only the
    /// ancestors' limits apply).
    public let limit: UInt64
    public private(set) var used: UInt64 = 0
    /// Kernel objects charged here and below that are still alive; and the process table's slots
    /// and the kernel stacks held here and below. In one word, so that the account stays within
    /// the 64 bytes of its heap class.
    private var objectCount: UInt32 = 0
    private var slots = InlineArray<2, UInt16>(repeating: 0)
    /// The most `used` has been.
    public private(set) var peak: UInt64 = 0

    /// Kernel objects charged here and below that are still alive.
    public var objects: UInt64 { UInt64(objectCount) }

    /// A slot of one of the kernel's fixed tables.
    public enum Slot: Int {
        /// An entry of the process table.
        case process = 0
        /// A kernel stack: one per thread.
        case thread = 1
    }

    /// `slot`s held here and below, counted where the account has a limit of its own (0 where
    /// it has none).
    public func held(_ slot: Slot) -> Int { Int(slots[slot.rawValue]) }

    public static let unlimited = UInt64.max
    /// How many accounts are above this one (the root's is 0), counted up to `maximumDepth`.
    /// Walked rather than kept: a stored count made the object 8 bytes larger than the 64 of
    /// its heap class.
    public var depth: Int {
        var levels = 0
        forEachLevel { _ in
            levels += 1
            return levels <= Self.maximumDepth
        }
        return levels - 1
    }
    /// The deepest an account may be. Every charge walks the chain up to the root, and an ended
    /// process's account stays as long as a descendant's does, unpaid once the process is gone:
    /// a lineage that starts its successor and ends, generation after generation, would make both
    /// grow without bound.
    public static let maximumDepth = 64

    public init(limit: UInt64, parent: MemoryAccount?) {
        self.limit = limit
        self.parent = parent
        parentLink = parent.map { Unmanaged.passUnretained($0) }
    }

    /// Lets the parent go without a recursion as deep as the chain: the accounts of ended
    /// processes stay as long as a descendant's does, so a chain may be thousands long, and
    /// letting the last one go would otherwise free each ancestor from inside the one below it,
    /// on a kernel stack of 16 KiB. Each ancestor this chain was the last to hold gives up its
    /// own parent before it goes, so every one is freed from this loop.
    deinit {
        var next = parent.take()
        // Taken, not copied: the loop's reference must be the only one left for the test.
        while var account = next.take() {
            guard isKnownUniquelyReferenced(&account) else { return }
            account.parentLink = nil
            next = account.parent.take()
        }
    }

    /// Calls `body` with this account and each ancestor, nearest first, until it returns false.
    @inline(__always)
    func forEachLevel(_ body: (MemoryAccount) -> Bool) {
        var level: Unmanaged<MemoryAccount>? = Unmanaged.passUnretained(self)
        while let current = level {
            let goOn = current._withUnsafeGuaranteedRef { account in body(account) }
            guard goOn else { return }
            level = current._withUnsafeGuaranteedRef { $0.parentLink }
        }
    }

    /// Takes `bytes` (and `objects` kernel objects) from this account and every ancestor, or
    /// throws `outOfMemory` and takes nothing when one of them would pass its limit.
    public func charge(_ bytes: UInt64, objects: UInt64 = 0) throws(KernelError) {
        var fits = true
        forEachLevel { account in
            fits = bytes <= account.limit - account.used
            return fits
        }
        guard fits else { throw .outOfMemory }
        forEachLevel { account in
            account.used += bytes
            account.objectCount += UInt32(truncatingIfNeeded: objects)
            account.peak = max(account.peak, account.used)
            return true
        }
    }

    /// The most of a fixed table of `capacity` slots that an account with a limit of its own may
    /// hold with its descendants: a quarter.
    public static func share(ofTable capacity: Int) -> Int { capacity / 4 }

    /// Takes one `slot` of a table of `capacity` at each level with a limit of its own, or throws
    /// `outOfMemory` and takes nothing when one of them already holds its share
    /// (`share(ofTable:)`). The unlimited levels (the root's, init's) are bounded by the table
    /// alone, and count nothing: a spawn walks the chain twice for this (a process and its first
    /// thread) and twice to give back, so each step is short.
    public func takeSlot(_ slot: Slot, ofTable capacity: Int) throws(KernelError) {
        let share = Self.share(ofTable: capacity)
        var refusedAt: MemoryAccount?
        forEachLevel { account in
            guard account.limit != Self.unlimited else { return true }
            guard Int(account.slots[slot.rawValue]) < share else {
                refusedAt = account
                return false
            }
            account.slots[slot.rawValue] &+= 1
            return true
        }
        guard let refusedAt else { return }
        // Undo the levels below the one that refused.
        forEachLevel { account in
            guard account !== refusedAt else { return false }
            if account.limit != Self.unlimited { account.slots[slot.rawValue] -= 1 }
            return true
        }
        throw .outOfMemory
    }

    /// Gives back a slot `takeSlot` took. Giving back more than was taken is a kernel bug.
    public func giveBackSlot(_ slot: Slot) {
        forEachLevel { account in
            guard account.limit != Self.unlimited else { return true }
            precondition(account.slots[slot.rawValue] > 0, "memory account gave back a slot it did not hold")
            account.slots[slot.rawValue] -= 1
            return true
        }
    }

    /// Gives back `bytes` taken by `charge`. Giving back more than was taken is a kernel bug.
    public func release(_ bytes: UInt64, objects: UInt64 = 0) {
        forEachLevel { account in
            precondition(account.used >= bytes && account.objects >= objects,
                         "memory account released more than it was charged")
            account.used -= bytes
            account.objectCount -= UInt32(truncatingIfNeeded: objects)
            return true
        }
    }

    /// What may still be charged here: the smallest room left on the way to the root.
    public var available: UInt64 {
        var room = UInt64.max
        forEachLevel { account in
            room = min(room, account.limit - account.used)
            return true
        }
        return room
    }
}

/// What a kernel object paid for itself, kept with the object and given back when it goes (each
/// charged object's deinit calls `release`). It counts as one object in its account.
public struct MemoryCharge {
    public private(set) var account: MemoryAccount?
    public private(set) var bytes: UInt64

    public init() {
        account = nil
        bytes = 0
    }

    /// Charges `bytes` to `account` (and its ancestors).
    public init(_ bytes: UInt64, to account: MemoryAccount) throws(KernelError) {
        try account.charge(bytes, objects: 1)
        self.account = account
        self.bytes = bytes
    }

    /// Gives back all but `bytes` of the charge (nothing when it is no more than that): for an
    /// object that frees part of itself and lives on. It still counts as one object.
    public mutating func shrink(to bytes: UInt64) {
        guard let account, self.bytes > bytes else { return }
        account.release(self.bytes - bytes)
        self.bytes = bytes
    }

    /// Gives the charge back; a second call does nothing.
    public mutating func release() {
        account?.release(bytes, objects: 1)
        account = nil
        bytes = 0
    }
}
