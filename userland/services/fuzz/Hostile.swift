// Hostile values: handles that name nothing of the caller's, addresses no call may use, lengths
// and rights at and past every limit the ABI states. Each generator guarantees what its name
// says (a "foreign" handle is never one of the worker's live handles), so the oracles can insist
// that a call given one fails.

extension Worker {
    /// A handle value that names nothing in this process's table: 0, closed handles, slot numbers
    /// with generation 0 (never valid), other tables' plausible numbers, slots past the table.
    mutating func foreignHandle() -> UInt64 {
        var value: UInt64
        switch random.below(9) {
        case 0: value = 0
        case 1: value = model.staleCount > 0 ? model.stale[random.below(model.staleCount)] : 0
        case 2: value = random.next()
        case 3: value = UInt64(random.below(80))
        case 4: value = random.between(1, 6) << 32 | UInt64(random.below(IPCTableCapacity.slots))
        case 5: value = UInt64.max
        case 6:
            // A live handle's slot with another generation.
            let live = model.handleCount > 0 ? model.handles[random.below(model.handleCount)].value : 1 << 32
            value = live ^ (random.between(1, 3) << 32)
        case 7: value = random.between(1, 6) << 32 | UInt64(IPCTableCapacity.slots + random.below(8))
        default: value = random.next() << 32 | 0xFFFF_FFFF
        }
        return model.isLive(value) ? 0 : value
    }

    /// An address where no byte may be read or written: outside user space, at its edges, in the
    /// kernel, or unmapped (the first page, the guard page after the message area, a page that
    /// was unmapped, the page below the initial stack, the gap between the initial stack and the
    /// start block, the read-only page the loader maps at the top of user space).
    mutating func invalidAddress() -> UInt64 {
        switch random.below(15) {
        case 0: return 0
        case 1: return 1
        case 2: return UserSpace.start - 8
        case 3: return UserSpace.start
        case 4: return ProgramStart.blockAddress - 8
        case 5: return UserSpace.end
        case 6: return UserSpace.end + pageSize
        case 7: return ProgramStart.blockAddress - UInt64(IPCMessageLayout.size)
        case 8: return 0xFFFF_0000_4020_0000
        case 9: return 0xFFFF_FFFF_FFFF_F000
        case 10: return messageArea + Self.messageAreaBytes
        case 11: return model.unmappedAddress != 0 ? model.unmappedAddress : UserSpace.end
        case 12: return random.next() | 1 << 63
        case 13: return UserSpace.stackTop - UserSpace.stackSize - pageSize
        default: return UserSpace.stackTop
        }
    }

    /// A length at or past a limit: 0, around a page, around `limit`, and far beyond it.
    mutating func edgeLength(limit: UInt64) -> UInt64 {
        switch random.below(12) {
        case 0: return 0
        case 1: return 1
        case 2: return pageSize - 1
        case 3: return pageSize
        case 4: return pageSize + 1
        case 5: return limit
        case 6: return limit + 1
        case 7: return limit + pageSize
        case 8: return 1 << 32
        case 9: return 1 << 63
        case 10: return UInt64.max
        default: return UInt64.max - pageSize + 2
        }
    }

    /// A rights mask: a random subset of the defined rights, or bits beyond them.
    mutating func randomRights() -> Rights {
        switch random.below(6) {
        case 0: return Rights(rawValue: random.next())
        case 1: return Rights(rawValue: Rights.all.rawValue | (1 << random.below(UInt64(53))) << 11)
        case 2: return .all
        case 3: return []
        default: return Rights(rawValue: random.next() & Rights.all.rawValue)
        }
    }

    /// A value for a register that takes a handle, in a raw call: never a live handle.
    mutating func rawRegister() -> UInt64 {
        switch random.below(5) {
        case 0: return random.next()
        case 1: return UInt64(random.below(300))
        case 2: return invalidAddress()
        case 3: return foreignHandle()
        default: return edgeLength(limit: 1 << 20)
        }
    }

    /// A process id that is not a child of this worker: 0, init, the driver, this worker (for
    /// `wait`; `kill` may end the caller itself, so it never gets that one), its neighbours and
    /// random values.
    mutating func foreignProcess(includingSelf: Bool) -> UInt64 {
        var pid: UInt64
        switch random.below(7) {
        case 0: pid = 0
        case 1: pid = 1
        case 2: pid = parent
        case 3: pid = includingSelf ? self.pid : 0
        case 4: pid = self.pid &+ random.between(1, 8)
        case 5: pid = self.pid &- random.between(1, 4)
        default: pid = random.next()
        }
        if model.childIndex(pid) != nil || (!includingSelf && pid == self.pid) { pid = 0 }
        return pid
    }
}
