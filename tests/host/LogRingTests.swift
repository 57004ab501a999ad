import Testing
import PropertyBased
@testable import KernelCore

@Suite struct LogRingTests {
    func append(_ ring: inout LogRing, _ text: String, terminator: UInt8? = nil) -> Bool {
        Array(text.utf8).withUnsafeBytes { ring.append($0, terminator: terminator) }
    }

    func readAll(_ ring: inout LogRing, capacity: Int = 4096) -> String {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let count = buffer.withUnsafeMutableBytes { ring.read(into: $0) }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    @Test func recordsComeOutWholeAndInOrder() {
        var ring = LogRing(capacity: 1024)
        defer { ring.destroy() }
        #expect(append(&ring, "first", terminator: 10))
        #expect(append(&ring, "second\n"))
        #expect(ring.records == 2)
        #expect(readAll(&ring) == "first\nsecond\n")
        #expect(ring.isEmpty && ring.used == 0)
        #expect(readAll(&ring) == "")
    }

    @Test func refusesEmptyOversizedAndWhatDoesNotFit() {
        var ring = LogRing(capacity: 600)
        defer { ring.destroy() }
        #expect(!append(&ring, ""))
        #expect(!append(&ring, String(repeating: "x", count: LogRing.maximumRecord + 1)))
        #expect(append(&ring, String(repeating: "y", count: LogRing.maximumRecord - 1), terminator: 10))
        // 600 bytes hold one longest record and its header, not another 100 bytes.
        #expect(!append(&ring, String(repeating: "z", count: 100)))
        #expect(ring.records == 1)
        #expect(readAll(&ring).count == LogRing.maximumRecord)
        #expect(append(&ring, String(repeating: "z", count: 100)))
    }

    /// A read takes only records that fit whole; a buffer of the longest record always takes one.
    @Test func readTakesWholeRecordsOnly() {
        var ring = LogRing(capacity: 4096)
        defer { ring.destroy() }
        #expect(append(&ring, String(repeating: "a", count: 300)))
        #expect(append(&ring, String(repeating: "b", count: 300)))
        #expect(readAll(&ring, capacity: 299) == "")
        #expect(readAll(&ring, capacity: 599) == String(repeating: "a", count: 300))
        #expect(readAll(&ring, capacity: LogRing.maximumRecord) == String(repeating: "b", count: 300))
    }

    @Test func copyFirstLeavesTheRecordUntilDropped() {
        var ring = LogRing(capacity: 1024)
        defer { ring.destroy() }
        #expect(append(&ring, "kept"))
        var buffer = [UInt8](repeating: 0, count: 16)
        var small = [UInt8](repeating: 0, count: 2)
        #expect(small.withUnsafeMutableBytes { ring.copyFirst(into: $0) } == 0)
        #expect(buffer.withUnsafeMutableBytes { ring.copyFirst(into: $0) } == 4)
        #expect(ring.records == 1)
        ring.dropFirst()
        #expect(ring.isEmpty)
        #expect(buffer.withUnsafeMutableBytes { ring.copyFirst(into: $0) } == 0)
    }

    /// Random appends and reads of random sizes, wrapping around many times, against a queue of
    /// strings: every record accepted comes out once, whole, in order; a refusal happens only
    /// when the record could not fit.
    @Test func matchesAQueueModel() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_000_000).array(of: 1...300)) { codes in
            var ring = LogRing(capacity: 1100)
            defer { ring.destroy() }
            var model: [String] = []
            var used = 0
            for code in codes {
                if code % 3 != 0 {
                    let length = code % (LogRing.maximumRecord + 1)
                    let text = String(repeating: Character(Unicode.Scalar(UInt8(97 + code % 26))), count: length)
                    let fits = length > 0 && used + 2 + length <= ring.capacity
                    #expect(append(&ring, text) == fits)
                    if fits {
                        model.append(text)
                        used += 2 + length
                    }
                } else {
                    let capacity = code % 1200
                    var expected = ""
                    while let first = model.first, expected.utf8.count + first.utf8.count <= capacity {
                        expected += first
                        used -= 2 + first.utf8.count
                        model.removeFirst()
                    }
                    #expect(readAll(&ring, capacity: capacity) == expected)
                }
                #expect(ring.records == model.count && ring.used == used)
            }
        }
    }
}
