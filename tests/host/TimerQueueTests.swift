import Testing
import PropertyBased
@testable import KernelCore

@Suite struct TimerQueueTests {
    @Test func expiresInDeadlineOrder() throws {
        var queue = TimerQueue()
        for (deadline, token) in [(50, 1), (10, 2), (30, 3), (10, 4), (70, 5)] as [(UInt64, UInt64)] {
            try queue.insert(deadline: deadline, token: token)
        }
        #expect(queue.earliest?.deadline == 10)
        let early = queue.popExpired(now: 9)
        #expect(early == nil)
        var fired: [UInt64] = []
        while let entry = queue.popExpired(now: 40) { fired.append(entry.deadline) }
        #expect(fired == [10, 10, 30])
        #expect(queue.count == 2)
        #expect(queue.earliest?.deadline == 50)
    }

    @Test func cancelRemovesOnlyThatToken() throws {
        var queue = TimerQueue()
        try queue.insert(deadline: 5, token: 1)
        try queue.insert(deadline: 6, token: 2)
        let first = queue.cancel(token: 1)
        let again = queue.cancel(token: 1)
        let remaining = queue.popExpired(now: 100)
        #expect(first)
        #expect(!again)
        #expect(remaining?.token == 2)
        #expect(queue.isEmpty)
    }

    @Test func fullQueueIsAnErrorAndLosesNothing() throws {
        var queue = TimerQueue()
        for index in 0..<UInt64(TimerQueue.capacity) { try queue.insert(deadline: index, token: index) }
        #expect(throws: TimerQueue.Failure.full) { try queue.insert(deadline: 0, token: 999) }
        var count = 0
        var previous: UInt64 = 0
        while let entry = queue.popExpired(now: .max) {
            #expect(entry.deadline >= previous)
            previous = entry.deadline
            count += 1
        }
        #expect(count == TimerQueue.capacity)
    }

    /// Random inserts, cancels and expiries against a sorted array model.
    @Test func matchesASortedModel() async {
        let operations = Gen.int(in: 0...99).array(of: 1...300)
        await propertyCheck(count: 200, input: operations) { codes in
            var queue = TimerQueue()
            var model: [(deadline: UInt64, token: UInt64)] = []
            var nextToken: UInt64 = 0
            var now: UInt64 = 0
            for code in codes {
                switch code % 4 {
                case 0, 1:
                    let deadline = now + UInt64(code)
                    do {
                        try queue.insert(deadline: deadline, token: nextToken)
                        model.append((deadline, nextToken))
                    } catch {
                        #expect(model.count == TimerQueue.capacity)
                    }
                    nextToken += 1
                case 2:
                    if !model.isEmpty {
                        let victim = model[code % model.count].token
                        let cancelled = queue.cancel(token: victim)
                        #expect(cancelled)
                        model.removeAll { $0.token == victim }
                    }
                default:
                    now += UInt64(code / 4)
                    var fired: [UInt64] = []
                    while let entry = queue.popExpired(now: now) {
                        #expect(entry.deadline <= now)
                        fired.append(entry.deadline)
                    }
                    let due = model.filter { $0.deadline <= now }.map(\.deadline).sorted()
                    #expect(fired == due)
                    model.removeAll { $0.deadline <= now }
                }
                #expect(queue.count == model.count)
                #expect(queue.earliest?.deadline == model.map(\.deadline).min())
            }
        }
    }
}

@Suite struct BootArgumentNumberTests {
    @Test func parsesDecimalValues() {
        let arguments = BootArguments(DeviceTreeBytes("test tick=250 big=18446744073709551615 huge=18446744073709551616 bad=12x empty="))
        #expect(arguments.number(of: "tick") == 250)
        #expect(arguments.number(of: "big") == UInt64.max)
        #expect(arguments.number(of: "huge") == nil)
        #expect(arguments.number(of: "bad") == nil)
        #expect(arguments.number(of: "empty") == nil)
        #expect(arguments.number(of: "missing") == nil)
        #expect(arguments.number(of: "test") == nil)
    }
}
