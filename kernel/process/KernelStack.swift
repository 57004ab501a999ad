// Kernel stacks for threads: 16 KiB each, mapped in their own slot of the kernel address space
// with the page below left unmapped, so an overflow faults instead of corrupting a neighbour.

enum KernelStacks {
    static let base: UInt64 = 0xFFFF_E000_0000_0000
    static let pages: UInt64 = 4
    /// Stack plus guard, rounded to a power of two.
    static let slotSize: UInt64 = 8 * pageSize
    static let slotCount = 1024
    /// One bit per slot, set while the slot holds a stack. Under `lock`.
    nonisolated(unsafe) static var used = InlineArray<16, UInt64>(repeating: 0)
    /// `used`. A leaf in the lock order (LockOrder.kernelStacks): mapping and unmapping a stack
    /// happen outside it.
    static let lock = SpinLock(.kernelStacks)

    /// The stack whose slot holds `address`, if that slot holds a stack now (all its pages
    /// mapped). Read without the lock: for a panic's backtrace, which must not wait.
    static func stackInUse(containing address: UInt64) -> Stack? {
        guard address >= base, address - base < UInt64(slotCount) * slotSize else { return nil }
        let slot = Int((address - base) / slotSize)
        guard used[slot / 64] & (1 << UInt64(slot % 64)) != 0 else { return nil }
        return Stack(slot: slot)
    }

    struct Stack {
        let slot: Int
        var bottom: UInt64 { KernelStacks.base + UInt64(slot) * KernelStacks.slotSize + pageSize }
        var top: UInt64 { bottom + KernelStacks.pages * pageSize }
    }

    /// A stack for a thread of the process with `account`, which pays for its pages and holds
    /// its slot (within the account's share, `MemoryAccount.takeSlot`) until `free`.
    static func allocate(for account: MemoryAccount) -> Stack? {
        guard (try? account.takeSlot(.thread, ofTable: slotCount)) != nil else { return nil }
        let slot: Int? = lock.withLock {
            for word in 0..<16 where used[word] != .max {
                let bit = (~used[word]).trailingZeroBitCount
                used[word] |= 1 << UInt64(bit)
                return word * 64 + bit
            }
            return nil
        }
        guard let slot else {
            account.giveBackSlot(.thread)
            return nil
        }
        let stack = Stack(slot: slot)
        // Charged at once; each page is given back as it is freed, those never taken here.
        guard (try? KernelMemory.chargeFrames(pages, to: account)) != nil else {
            release(stack, mappedPages: 0, account: account)
            return nil
        }
        for page in 0..<pages {
            guard let frame = try? KernelMemory.allocatePaidFrame(.kernelStack) else {
                account.release((pages - page) * pageSize)
                release(stack, mappedPages: page, account: account)
                return nil
            }
            do throws(PageTableError) {
                try KernelAddressSpace.map(VirtualAddress(stack.bottom + page * pageSize), to: frame.address,
                                           size: pageSize, permissions: .readWrite, type: .normal)
            } catch {
                KernelMemory.freeFrame(frame, for: account)
                account.release((pages - page - 1) * pageSize)
                release(stack, mappedPages: page, account: account)
                return nil
            }
        }
        return stack
    }

    static func free(_ stack: Stack, for account: MemoryAccount) { release(stack, mappedPages: pages, account: account) }

    private static func release(_ stack: Stack, mappedPages: UInt64, account: MemoryAccount) {
        for page in 0..<mappedPages {
            let address = VirtualAddress(stack.bottom + page * pageSize)
            if let translation = KernelAddressSpace.translate(address) {
                try? KernelAddressSpace.unmap(address, size: pageSize)
                KernelMemory.freeFrame(PageFrame(containing: translation.physical), for: account)
            }
        }
        lock.withLock { used[stack.slot / 64] &= ~(1 << UInt64(stack.slot % 64)) }
        account.giveBackSlot(.thread)
    }
}
