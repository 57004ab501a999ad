// A bounded FIFO of fixed-size elements in storage allocated once: a port's message queue.
// Full is an error for the producer, never a wait inside the kernel and never a lost element.

public struct MessageRing<Element> {
    let storage: UnsafeMutablePointer<Element?>
    /// 0 once destroyed: nothing fits then, and the storage is gone.
    public private(set) var capacity: Int
    var head = 0
    public private(set) var count = 0

    public enum Failure: Error, Equatable {
        case full
    }

    public init(capacity: Int) {
        self.capacity = capacity
        storage = UnsafeMutablePointer<Element?>.allocate(capacity: capacity)
        storage.initialize(repeating: nil, count: capacity)
    }

    /// Drops the elements left and frees the storage; the ring is then empty and full at once
    /// (capacity 0), so a push is refused. A second call does nothing.
    public mutating func destroy() {
        guard capacity > 0 else { return }
        storage.deinitialize(count: capacity)
        storage.deallocate()
        capacity = 0
        head = 0
        count = 0
    }

    public var isEmpty: Bool { count == 0 }
    /// The slot index the next push fills (so a caller can keep data beside each slot).
    public var nextIndex: Int { (head + count) % capacity }
    public var isFull: Bool { count == capacity }
    /// The slot index `pushFront` fills: the one the last `pop` emptied.
    public var frontIndex: Int { (head + capacity - 1) % capacity }

    public mutating func push(_ element: consuming Element) throws(Failure) {
        guard count < capacity else { throw .full }
        (storage + (head + count) % capacity).pointee = consume element
        count += 1
    }

    /// Puts `element` before every other: for an element taken with `pop` and given back, so
    /// the order of the rest is kept.
    public mutating func pushFront(_ element: consuming Element) throws(Failure) {
        guard count < capacity else { throw .full }
        head = frontIndex
        (storage + head).pointee = consume element
        count += 1
    }

    public mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        // Moved out, not copied: the slot is left empty without a retain/release pair.
        let element = (storage + head).pointee.take()
        head = (head + 1) % capacity
        count -= 1
        return element
    }

    /// Empties the ring, handing each element to `body` (for releasing what they hold).
    public mutating func drain(_ body: (Element) -> Void) {
        while let element = pop() { body(element) }
    }
}
