import Foundation
import Testing
@testable import KernelCore

/// docs/SYSCALLS.md must describe exactly the numbers and errors the ABI defines.
@Suite struct SystemCallABITests {
    static let document: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/SYSCALLS.md"), encoding: .utf8)) ?? ""
    }()

    /// Rows `| value | name | ... |` of the table under `heading`.
    static func rows(under heading: String) -> [(UInt64, String)] {
        guard let start = document.range(of: "## \(heading)\n") else { return [] }
        var result: [(UInt64, String)] = []
        for line in document[start.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.count >= 2, let value = UInt64(cells[0]) { result.append((value, cells[1])) }
        }
        return result
    }

    @Test func documentIsPresent() {
        #expect(Self.document.contains("## Calling convention"))
    }

    @Test func callsMatchTheABI() {
        let documented = Self.rows(under: "Calls")
        let defined = SystemCallNumber.allCases.map { ($0.rawValue, "\($0)") }
        #expect(documented.map(\.0) == defined.map(\.0))
        #expect(documented.map(\.1) == defined.map(\.1))
    }

    @Test func errorsMatchTheABI() {
        let documented = Self.rows(under: "Errors")
        var value: UInt64 = 0
        var defined: [(UInt64, String)] = []
        while let error = KernelError(rawValue: value) {
            defined.append((value, "\(error)"))
            value += 1
        }
        #expect(!documented.isEmpty)
        #expect(documented.map(\.0) == defined.map(\.0))
        #expect(documented.map(\.1) == defined.map(\.1))
    }
}
