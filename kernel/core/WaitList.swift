// Waiter lists threaded through the waiters themselves: each waiter owns a few links, one per
// list it can be on at once, so joining and leaving a list never allocates and costs a few
// stores. A list does not count references to its waiters: a waiter must leave every list
// before it goes (`WaitLink.unlink`), and a list that goes first lets go of its links
// (`WaitList.destroy`), so neither side is ever left pointing at freed memory.

public struct WaitLink<Waiter: AnyObject> {
    public let waiter: Unmanaged<Waiter>
    var next: UnsafeMutablePointer<WaitLink>?
    var previous: UnsafeMutablePointer<WaitLink>?
    /// The ends of the list this link is on; nil when it is on none.
    var list: UnsafeMutableRawPointer?

    public init(waiter: Waiter) {
        self.waiter = Unmanaged.passUnretained(waiter)
    }

    public var isLinked: Bool { list != nil }

    /// Takes `link` off whatever list it is on (nothing if none). Inlined, as most callers find
    /// it on none: the test is then all they pay.
    @inline(__always)
    public static func unlink(_ link: UnsafeMutablePointer<WaitLink>) {
        guard let list = link.pointee.list else { return }
        WaitList<Waiter>(ends: list.assumingMemoryBound(to: WaitList<Waiter>.Ends.self)).remove(link)
    }
}

/// A FIFO of waiters. The list is a handle to its two ends, allocated once, so copies of it name
/// the same list and a link can find its list again.
public struct WaitList<Waiter: AnyObject> {
    public typealias Link = UnsafeMutablePointer<WaitLink<Waiter>>

    struct Ends {
        var head: Link?
        var tail: Link?
    }

    let ends: UnsafeMutablePointer<Ends>

    fileprivate init(ends: UnsafeMutablePointer<Ends>) { self.ends = ends }

    public init() {
        ends = UnsafeMutablePointer<Ends>.allocate(capacity: 1)
        ends.initialize(to: Ends(head: nil, tail: nil))
    }

    /// Unlinks every waiter and frees the ends; the list must not be used afterwards.
    public func destroy() {
        removeAll { _ in }
        ends.deallocate()
    }

    public var isEmpty: Bool { ends.pointee.head == nil }
    /// The oldest link.
    public var first: Link? { ends.pointee.head }

    public func contains(_ link: Link) -> Bool { link.pointee.list == UnsafeMutableRawPointer(ends) }

    /// Adds `link` at the back, first taking it off any list it is on.
    public func append(_ link: Link) { appendInline(link) }

    /// `append`, inlined: for the IPC fast path, whose call to it cost more in the registers it
    /// had to keep across the call than the few stores it makes.
    @inline(__always)
    public func appendInline(_ link: Link) {
        WaitLink.unlink(link)
        link.pointee.list = UnsafeMutableRawPointer(ends)
        link.pointee.next = nil
        link.pointee.previous = ends.pointee.tail
        if let tail = ends.pointee.tail { tail.pointee.next = link } else { ends.pointee.head = link }
        ends.pointee.tail = link
    }

    /// Takes `link` off this list; nothing if it is not on it.
    public func remove(_ link: Link) {
        guard contains(link) else { return }
        if let previous = link.pointee.previous { previous.pointee.next = link.pointee.next } else { ends.pointee.head = link.pointee.next }
        if let next = link.pointee.next { next.pointee.previous = link.pointee.previous } else { ends.pointee.tail = link.pointee.previous }
        link.pointee.next = nil
        link.pointee.previous = nil
        link.pointee.list = nil
    }

    /// Takes the oldest link off and gives its waiter.
    public func removeFirst() -> Unmanaged<Waiter>? {
        guard let head = ends.pointee.head else { return nil }
        removeFirst(head)
        return head.pointee.waiter
    }

    /// Takes `head`, the first link, off: `remove` without its tests, for the IPC fast path, which
    /// has just read it as `first`.
    @inline(__always)
    public func removeFirst(_ head: Link) {
        let next = head.pointee.next
        ends.pointee.head = next
        if let next { next.pointee.previous = nil } else { ends.pointee.tail = nil }
        head.pointee.next = nil
        head.pointee.list = nil
    }

    /// The oldest link whose waiter satisfies `predicate`.
    public func first(where predicate: (Unmanaged<Waiter>) -> Bool) -> Link? {
        var cursor = ends.pointee.head
        while let link = cursor {
            if predicate(link.pointee.waiter) { return link }
            cursor = link.pointee.next
        }
        return nil
    }

    /// Empties the list, oldest first, handing each waiter to `body` once it is off the list.
    public func removeAll(_ body: (Unmanaged<Waiter>) -> Void) {
        while let waiter = removeFirst() { body(waiter) }
    }

    public var count: Int {
        var total = 0
        var cursor = ends.pointee.head
        while let link = cursor {
            total += 1
            cursor = link.pointee.next
        }
        return total
    }
}
