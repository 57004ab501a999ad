import Testing
import PropertyBased
@testable import KernelCore

@Suite struct HandleTableTests {
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
        #expect(table.count == 2)
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
        #expect(try table.lookup(second, requiring: []).object == 2)
    }

    /// Random inserts, removes, duplicates and lookups of forged handles against a dictionary model.
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
                        #expect(model[handle.value] == nil)
                        model[handle.value] = (code, rights)
                    } else {
                        #expect(model.count == 16)
                    }
                case 2 where !live.isEmpty:
                    let handle = Handle(live[code % live.count])
                    #expect((try? table.remove(handle))?.object == model[handle.value]?.object)
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
