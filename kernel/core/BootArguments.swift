// The kernel command line (/chosen bootargs): whitespace-separated words, each a flag ("test")
// or a key=value pair ("selftest=panic"). Read in place, without allocation.

public struct BootArguments {
    let text: DeviceTreeBytes

    public init(_ text: DeviceTreeBytes?) {
        self.text = text ?? DeviceTreeBytes("")
    }

    /// True when `flag` appears as a whole word.
    public func contains(_ flag: StaticString) -> Bool {
        let wanted = DeviceTreeBytes(flag)
        for word in words where word == wanted { return true }
        return false
    }

    /// The value after `key=` of the first word with that key.
    public func value(of key: StaticString) -> DeviceTreeBytes? {
        let wanted = DeviceTreeBytes(key)
        for word in words {
            let name = word.prefix(upTo: UInt8(ascii: "="))
            if name == wanted && name.count < word.count { return word.slice(name.count + 1, word.count) }
        }
        return nil
    }

    /// The decimal value after `key=`; nil when absent, not a number, or too large.
    public func number(of key: StaticString) -> UInt64? {
        guard let digits = value(of: key), digits.count > 0 else { return nil }
        var result: UInt64 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            result = sum
        }
        return result
    }

    public var words: WordSequence { WordSequence(text: text) }

    public struct WordSequence: Sequence {
        let text: DeviceTreeBytes

        public struct Iterator: IteratorProtocol {
            let text: DeviceTreeBytes
            var offset = 0

            public mutating func next() -> DeviceTreeBytes? {
                while offset < text.count && Self.isSpace(text[offset]) { offset += 1 }
                guard offset < text.count else { return nil }
                let start = offset
                while offset < text.count && !Self.isSpace(text[offset]) { offset += 1 }
                return text.slice(start, offset)
            }

            static func isSpace(_ byte: UInt8) -> Bool {
                byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            }
        }

        public func makeIterator() -> Iterator { Iterator(text: text) }
    }
}
