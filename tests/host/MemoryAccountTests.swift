import Testing
import PropertyBased
@testable import KernelCore

@Suite struct MemoryAccountTests {
    /// A charge is taken from the account and every ancestor, or from none; releases give back
    /// exactly what was taken; no account ever goes past its limit. Checked against a model of
    /// three levels under random charges and releases.
    @Test func chargesMatchAModel() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int.max).array(of: 40)) { codes in
            let root = MemoryAccount(limit: 10_000, parent: nil)
            let middle = MemoryAccount(limit: 6_000, parent: root)
            let leaf = MemoryAccount(limit: MemoryAccount.unlimited, parent: middle)
            let sibling = MemoryAccount(limit: 5_000, parent: root)
            let accounts = [root, middle, leaf, sibling]
            let limits: [UInt64] = [10_000, 6_000, .max, 5_000]
            let chains = [[0], [1, 0], [2, 1, 0], [3, 0]]
            var used: [UInt64] = [0, 0, 0, 0]
            var taken: [(account: Int, bytes: UInt64)] = []
            for code in codes {
                if code % 3 == 0, !taken.isEmpty {
                    let (index, bytes) = taken.remove(at: code / 3 % taken.count)
                    accounts[index].release(bytes)
                    for level in chains[index] { used[level] -= bytes }
                } else {
                    let index = code % 4
                    let bytes = UInt64(code / 4 % 3_000)
                    let fits = chains[index].allSatisfy { used[$0] + bytes <= limits[$0] }
                    do throws(KernelError) {
                        try accounts[index].charge(bytes)
                        #expect(fits)
                        taken.append((index, bytes))
                        for level in chains[index] { used[level] += bytes }
                    } catch {
                        #expect(!fits && error == .outOfMemory)
                    }
                }
                #expect(accounts.map(\.used) == used)
                #expect(leaf.available == chains[2].map { limits[$0] - used[$0] }.min())
            }
        }
    }

    /// Slots of the fixed tables: an account with a limit of its own holds at most its share,
    /// counted with its descendants; unlimited ones count nothing; a refusal, at the first level
    /// or higher up, takes nothing; giving back makes room again. Processes and threads count
    /// apart.
    @Test func aLimitedSubtreeHoldsAShareOfEachTable() throws {
        let root = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)
        let limited = MemoryAccount(limit: 1 << 30, parent: root)
        let child = MemoryAccount(limit: MemoryAccount.unlimited, parent: limited)
        let grandchild = MemoryAccount(limit: 1 << 20, parent: child)
        let other = MemoryAccount(limit: 1 << 30, parent: root)
        for _ in 0..<2 { try limited.takeSlot(.process, ofTable: 16) }
        for _ in 0..<2 { try grandchild.takeSlot(.process, ofTable: 16) }
        #expect(throws: KernelError.outOfMemory) { try child.takeSlot(.process, ofTable: 16) }
        #expect(throws: KernelError.outOfMemory) { try grandchild.takeSlot(.process, ofTable: 16) }
        #expect(limited.held(.process) == 4 && child.held(.process) == 0 && grandchild.held(.process) == 2
                && root.held(.process) == 0)
        // Another limited subtree has a share of its own, and the unlimited root is bounded only
        // by the table.
        for _ in 0..<4 { try other.takeSlot(.process, ofTable: 16) }
        for _ in 0..<20 { try root.takeSlot(.process, ofTable: 16) }
        #expect(other.held(.process) == 4 && root.held(.process) == 0)
        // Threads are counted apart.
        try grandchild.takeSlot(.thread, ofTable: 4)
        #expect(throws: KernelError.outOfMemory) { try child.takeSlot(.thread, ofTable: 4) }
        #expect(limited.held(.thread) == 1 && grandchild.held(.process) == 2)
        grandchild.giveBackSlot(.process)
        try child.takeSlot(.process, ofTable: 16)
        #expect(limited.held(.process) == 4 && grandchild.held(.process) == 1)
        // A refusal higher up takes nothing below it.
        let deep = MemoryAccount(limit: 1 << 20, parent: limited)
        #expect(throws: KernelError.outOfMemory) { try deep.takeSlot(.process, ofTable: 16) }
        #expect(deep.held(.process) == 0 && limited.held(.process) == 4)
        let full = MemoryAccount(limit: 1 << 20, parent: root)
        #expect(throws: KernelError.outOfMemory) { try full.takeSlot(.thread, ofTable: 0) }
        #expect(full.held(.thread) == 0)
    }

    /// An object's charge counts one object up the chain and goes back once, however often it
    /// is released.
    @Test func anObjectChargeIsReleasedOnce() throws {
        let root = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)
        let child = MemoryAccount(limit: 4096, parent: root)
        var charge = try MemoryCharge(1000, to: child)
        #expect(child.used == 1000 && child.objects == 1 && root.used == 1000 && root.objects == 1)
        #expect(throws: KernelError.outOfMemory) { _ = try MemoryCharge(4000, to: child) }
        #expect(child.used == 1000 && root.objects == 1)
        charge.release()
        charge.release()
        #expect(child.used == 0 && child.objects == 0 && root.used == 0 && root.objects == 0)
        #expect(child.peak == 1000)
    }

    /// A chain of accounts far deeper than a kernel stack could free recursively goes when its
    /// last account does, all of it; an account still held elsewhere stays with its ancestors.
    @Test func aLongChainGoesWithItsLastAccount() {
        weak var root: MemoryAccount?
        weak var middleSeen: MemoryAccount?
        var middle: MemoryAccount?
        var leaf: MemoryAccount?
        do {
            var current = MemoryAccount(limit: MemoryAccount.unlimited, parent: nil)
            root = current
            for level in 1...400_000 {
                current = MemoryAccount(limit: MemoryAccount.unlimited, parent: current)
                if level == 200_000 { middle = current }
            }
            leaf = current
        }
        middleSeen = middle
        leaf = nil
        #expect(root != nil && middleSeen != nil && middle?.parent != nil)
        middle = nil
        #expect(root == nil && middleSeen == nil)
    }
}

@Suite struct HandleTableEmptyingTests {
    /// `removeAny` hands back every handle once, with its rights, and leaves old numbers invalid.
    @Test func removeAnyEmptiesTheTable() throws {
        var table = HandleTable<Int>(capacity: 8)
        defer { table.destroy() }
        var handles: [Handle] = []
        for value in 0..<6 { handles.append(try table.insert(value, rights: value % 2 == 0 ? .send : .receive)) }
        try table.remove(handles[2])
        var seen: [Int: Rights] = [:]
        while let (object, rights) = table.removeAny() { seen[object] = rights }
        #expect(seen == [0: .send, 1: .receive, 3: .receive, 4: .send, 5: .receive])
        #expect(table.count == 0)
        for handle in handles { #expect(throws: HandleError.invalidHandle) { try table.lookup(handle, requiring: []) } }
    }
}
