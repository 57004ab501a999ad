import Testing
import PropertyBased
@testable import KernelCore

@Suite struct HandleTableTests {
    @Test func entriesAreSixteenBytes() {
        // Finding one is then a shift (`HandleTable.Entry`).
        #expect(HandleTable<AnyObject>.Entry.isSixteenBytes)
        // Which holds only while every right fits the entry's 32 bits.
        #expect(Rights.all.rawValue <= UInt64(UInt32.max))
    }

    @Test func rightsAreCheckedAndOnlyShrink() throws {
        var table = HandleTable<String>(capacity: 8)
        defer { table.destroy() }
        let port = try table.insert("port", rights: [.send, .receive, .duplicate])
        #expect(try table.lookup(port, requiring: .send).object == "port")
        #expect(throws: HandleError.accessDenied) { try table.lookup(port, requiring: .signal) }
        let sendOnly = try table.duplicate(port, rights: [.send])
        #expect(throws: HandleError.accessDenied) { try table.lookup(sendOnly, requiring: .receive) }
        #expect(throws: HandleError.accessDenied) { try table.duplicate(sendOnly, rights: [.send]) } // no .duplicate
        #expect(throws: HandleError.accessDenied) { try table.duplicate(port, rights: [.send, .signal]) } // wider
        // A right past the 32 bits an entry keeps is one no handle holds.
        #expect(throws: HandleError.accessDenied) { try table.duplicate(port, rights: Rights(rawValue: 1 << 40 | 1)) }
        #expect(table.count == 2)
    }

    @Test func theInPlaceLookupChecksGenerationAndRights() throws {
        final class Box {}
        var table = HandleTable<Box>(capacity: 4)
        defer { table.destroy() }
        let box = Box()
        let handle = try table.insert(box, rights: [.send, .duplicate])
        #expect(table.unretainedObject(for: handle, requiring: .send)?.takeUnretainedValue() === box)
        #expect(table.unretainedObject(for: handle, requiring: [.send, .duplicate]) != nil)
        #expect(table.unretainedObject(for: handle, requiring: .receive) == nil)
        #expect(table.unretainedObject(for: handle, requiring: Rights(rawValue: 1 << 32 | 1)) == nil)
        // The same slot under another generation, and a slot past the table.
        #expect(table.unretainedObject(for: Handle(handle.value &+ (1 << 32)), requiring: []) == nil)
        #expect(table.unretainedObject(for: Handle(handle.value ^ 1), requiring: []) == nil)
        #expect(table.unretainedObject(for: Handle(UInt64(4) | handle.value & ~0xFFFF_FFFF), requiring: []) == nil)
        #expect(table.unretainedObject(for: Handle(handle.value &+ (1 << 32)), requiring: .send) == nil)
        #expect(table.unretainedObject(for: Handle(UInt64(4) | handle.value & ~0xFFFF_FFFF), requiring: .send) == nil)
        // A slot never used, under the generation every slot starts with: found free by its
        // rights when some right is asked for, by its object when none is.
        let unused = Handle(UInt64(handle.slot + 1) | handle.value & ~0xFFFF_FFFF)
        #expect(table.unretainedObject(for: unused, requiring: .send) == nil)
        #expect(table.unretainedObject(for: unused, requiring: []) == nil)
        try table.remove(handle)
        #expect(table.unretainedObject(for: handle, requiring: []) == nil)
        #expect(table.unretainedObject(for: handle, requiring: .send) == nil)
        // The freed slot under the generation it moved on to, which the next handle there gets.
        let freedNow = Handle(handle.value &+ (1 << 32))
        #expect(table.unretainedObject(for: freedNow, requiring: .send) == nil)
        #expect(table.unretainedObject(for: freedNow, requiring: []) == nil)
        // An object held with no rights at all is found only by a lookup that asks for none.
        let bare = try table.insert(box, rights: [])
        #expect(table.unretainedObject(for: bare, requiring: .send) == nil)
        #expect(table.unretainedObject(for: bare, requiring: [])?.takeUnretainedValue() === box)
    }

    @Test func closedHandlesStayInvalidWhenTheSlotIsReused() throws {
        var table = HandleTable<Int>(capacity: 1)
        defer { table.destroy() }
        let first = try table.insert(1, rights: .all)
        try table.remove(first)
        let second = try table.insert(2, rights: .all)
        #expect(first != second)
        #expect(throws: HandleError.invalidHandle) { try table.lookup(first, requiring: []) }
        #expect(throws: HandleError.invalidHandle) { try table.remove(first) }
        #expect(throws: HandleError.tableFull) { try table.insert(3, rights: []) }
        #expect(throws: HandleError.invalidHandle) { try table.lookup(Handle(0), requiring: []) }
        #expect(throws: HandleError.invalidHandle) { try table.lookup(Handle(UInt64.max), requiring: []) }
        // A thread's reply slot, never a table's (generation 0).
        #expect(throws: HandleError.invalidHandle) { try table.lookup(Handle.replySlot, requiring: []) }
        #expect(try table.lookup(second, requiring: []).object == 2)
    }

    @Test func containsLooksAtTheLiveEntriesOnly() throws {
        var table = HandleTable<String>(capacity: 4)
        defer { table.destroy() }
        let receive = try table.insert("port", rights: [.send, .receive])
        let send = try table.insert("port", rights: [.send])
        #expect(table.contains { $0 == "port" && $1.contains(.receive) })
        try table.remove(receive)
        #expect(!table.contains { $0 == "port" && $1.contains(.receive) })
        #expect(table.contains { $0 == "port" && $1 == [.send] })
        try table.remove(send)
        #expect(!table.contains { _, _ in true })
    }

    /// Random inserts, removes (with the object back, or discarded as known current), duplicates
    /// and lookups of forged handles against a dictionary model.
    @Test func matchesAModel() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000).array(of: 1...200)) { codes in
            var table = HandleTable<Int>(capacity: 16)
            var model: [UInt64: (object: Int, rights: Rights)] = [:]
            var retired: [Handle] = []
            for code in codes {
                let live = model.keys.sorted()
                switch code % 5 {
                case 0, 1:
                    let rights = Rights(rawValue: UInt64(code) & Rights.all.rawValue)
                    if let handle = try? table.insert(code, rights: rights) {
                        #expect(model[handle.value] == nil && handle != .replySlot && handle.generation != 0)
                        model[handle.value] = (code, rights)
                    } else {
                        #expect(model.count == 16)
                    }
                case 2 where !live.isEmpty:
                    let handle = Handle(live[code % live.count])
                    if code & 8 == 0 {
                        #expect((try? table.remove(handle))?.object == model[handle.value]?.object)
                    } else {
                        table.discard(current: handle) // current: the model holds it
                    }
                    model[handle.value] = nil
                    retired.append(handle)
                case 3 where !live.isEmpty:
                    let handle = Handle(live[code % live.count])
                    let wanted = Rights(rawValue: UInt64(code >> 3) & Rights.all.rawValue)
                    let entry = model[handle.value]!
                    let allowed = entry.rights.contains(.duplicate) && entry.rights.isSuperset(of: wanted) && model.count < 16
                    if let copy = try? table.duplicate(handle, rights: wanted) {
                        #expect(allowed)
                        model[copy.value] = (entry.object, wanted)
                    } else {
                        #expect(!allowed)
                    }
                default:
                    for handle in retired.suffix(3) { #expect((try? table.lookup(handle, requiring: [])) == nil) }
                }
                #expect(table.count == model.count)
                for (value, entry) in model {
                    let found = try? table.lookup(Handle(value), requiring: entry.rights)
                    #expect(found?.object == entry.object && found?.rights == entry.rights)
                }
            }
            table.destroy()
        }
    }
}

@Suite struct MessageRingTests {
    @Test func fifoBoundedAndLossless() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...100).array(of: 1...300)) { codes in
            var ring = MessageRing<Int>(capacity: 5)
            var model: [Int] = []
            for code in codes {
                if code % 3 == 0 {
                    #expect(ring.pop() == model.first)
                    if !model.isEmpty { model.removeFirst() }
                } else {
                    do throws(MessageRing<Int>.Failure) {
                        try ring.push(code)
                        model.append(code)
                    } catch {
                        #expect(model.count == 5)
                    }
                }
                #expect(ring.count == model.count && ring.isFull == (model.count == 5))
            }
            var drained: [Int] = []
            ring.drain { drained.append($0) }
            #expect(drained == model && ring.isEmpty)
            ring.destroy()
        }
    }
}

/// Waiter lists: several lists, waiters with several links each (as threads waiting in `waitAny`
/// on several ports), against one array per list.
@Suite struct WaitListTests {
    final class Waiter {
        let id: Int
        let links: UnsafeMutablePointer<WaitLink<Waiter>>
        init(id: Int, linkCount: Int) {
            self.id = id
            links = UnsafeMutablePointer<WaitLink<Waiter>>.allocate(capacity: linkCount)
            for index in 0..<linkCount { (links + index).initialize(to: WaitLink(waiter: self)) }
        }
    }

    @Test func fifoAndRemovalFromTheMiddle() {
        let list = WaitList<Waiter>()
        let waiters = (0..<3).map { Waiter(id: $0, linkCount: 1) }
        for waiter in waiters { list.append(waiter.links) }
        #expect(list.count == 3 && list.first?.pointee.waiter.takeUnretainedValue().id == 0)
        list.remove(waiters[1].links)
        #expect(!waiters[1].links.pointee.isLinked)
        list.remove(waiters[1].links) // not on it any more: nothing happens
        #expect(list.removeFirst()?.takeUnretainedValue().id == 0)
        #expect(list.removeFirst()?.takeUnretainedValue().id == 2)
        #expect(list.removeFirst() == nil && list.isEmpty)
        list.destroy()
    }

    @Test func destroyingAListLetsGoOfItsLinks() {
        let list = WaitList<Waiter>()
        let waiter = Waiter(id: 7, linkCount: 1)
        list.append(waiter.links)
        list.destroy()
        #expect(!waiter.links.pointee.isLinked)
        WaitLink.unlink(waiter.links) // safe after the list is gone
    }

    @Test func matchesAModel() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000).array(of: 1...300)) { codes in
            let lists = (0..<3).map { _ in WaitList<Waiter>() }
            let waiters = (0..<5).map { Waiter(id: $0, linkCount: 2) }
            // Each (waiter, link) pair is on at most one list; the model keeps each list's pairs in order.
            var model: [[(waiter: Int, link: Int)]] = [[], [], []]
            for code in codes {
                let list = code % 3, waiter = (code / 3) % 5, link = (code / 15) % 2
                let pointer = waiters[waiter].links + link
                switch (code / 30) % 5 {
                case 0, 1:
                    lists[list].append(pointer) // moves it here from any other list
                    for index in 0..<3 { model[index].removeAll { $0 == (waiter, link) } }
                    model[list].append((waiter, link))
                case 2:
                    WaitLink.unlink(pointer)
                    for index in 0..<3 { model[index].removeAll { $0 == (waiter, link) } }
                case 3:
                    #expect(lists[list].removeFirst()?.takeUnretainedValue().id == model[list].first?.waiter)
                    if !model[list].isEmpty { model[list].removeFirst() }
                default:
                    // The fast path's form: the head, read first, taken off without the tests.
                    if let head = lists[list].first {
                        lists[list].removeFirst(head)
                        #expect(!head.pointee.isLinked && head.pointee.next == nil && head.pointee.previous == nil)
                        model[list].removeFirst()
                    }
                }
                for index in 0..<3 {
                    var seen: [(waiter: Int, link: Int)] = []
                    var cursor = lists[index].first
                    var behind: WaitList<Waiter>.Link? = nil
                    while let node = cursor {
                        let id = node.pointee.waiter.takeUnretainedValue().id
                        seen.append((id, node == waiters[id].links ? 0 : 1))
                        #expect(node.pointee.previous == behind) // the links back agree with those forward
                        behind = node
                        cursor = node.pointee.next
                    }
                    #expect(seen.count == model[index].count && lists[index].count == seen.count)
                    #expect(zip(seen, model[index]).allSatisfy { $0 == $1 })
                }
            }
            for list in lists { list.destroy() }
            for waiter in waiters {
                for link in 0..<2 { #expect(!(waiter.links + link).pointee.isLinked) }
            }
        }
    }
}
