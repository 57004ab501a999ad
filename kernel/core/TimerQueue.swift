// Pending one-shot deadlines (sleeps, timeouts), ordered by expiry: a binary min-heap in fixed
// storage, so arming and firing never allocate and can run with interrupts masked.
// Deadlines are counter ticks; tokens identify the waiter to the caller. A thread has at most one
// deadline at a time (its sleep or its timed wait), and there are at most 1024 threads (one per
// kernel stack slot), so the queue, with room for more, is never full in the kernel: one process
// cannot take every deadline and make the others' timeouts fail.

public struct TimerQueue {
    public static let capacity = 1040

    public struct Entry: Equatable {
        public var deadline: UInt64
        public var token: UInt64
    }

    public enum Failure: Error, Equatable {
        case full
    }

    var entries = InlineArray<1040, Entry>(repeating: Entry(deadline: 0, token: 0))
    public private(set) var count = 0

    public init() {}

    public var earliest: Entry? { count > 0 ? entries[0] : nil }
    public var isEmpty: Bool { count == 0 }

    public mutating func insert(deadline: UInt64, token: UInt64) throws(Failure) {
        guard count < Self.capacity else { throw .full }
        entries[count] = Entry(deadline: deadline, token: token)
        count += 1
        siftUp(count - 1)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    public mutating func popExpired(now: UInt64) -> Entry? {
        guard count > 0, entries[0].deadline <= now else { return nil }
        return remove(at: 0)
    }

    /// Removes the entry with `token`; false if there is none.
    @discardableResult
    public mutating func cancel(token: UInt64) -> Bool {
        for index in 0..<count where entries[index].token == token {
            _ = remove(at: index)
            return true
        }
        return false
    }

    private mutating func remove(at index: Int) -> Entry {
        let removed = entries[index]
        count -= 1
        if index < count {
            entries[index] = entries[count]
            siftDown(index)
            siftUp(index)
        }
        return removed
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < count else { return }
            var smallest = left
            if left + 1 < count && entries[left + 1].deadline < entries[left].deadline { smallest = left + 1 }
            guard entries[smallest].deadline < entries[parent].deadline else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
