import Foundation
import Testing

/// The kernel's layers (docs/ARCHITECTURE.md, "Layers") as the source has them: a layer names
/// only what the layers below it declare. The compiler sees one module and cannot tell, so this
/// reads the source.
@Suite struct LayeringTests {
    static let kernel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("kernel")

    /// The Swift sources of a kernel folder, by file name.
    static func sources(_ folder: String) -> [(name: String, text: String)] {
        let directory = kernel.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".swift") }.sorted().compactMap { name in
            (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)).map { (name, $0) }
        }
    }

    /// The types, namespaces and aliases a folder declares at the top level.
    static func declarations(_ folder: String) -> Set<String> {
        let pattern = /^(?:final |public |open )*(?:class|struct|enum|protocol|typealias|actor) ([A-Za-z_][A-Za-z0-9_]*)/
        var names = Set<String>()
        for source in sources(folder) {
            for line in source.text.split(separator: "\n", omittingEmptySubsequences: false) {
                if let match = line.prefixMatch(of: pattern) { names.insert(String(match.1)) }
            }
        }
        return names
    }

    /// Where the code of `folder` (comments left out) names one of `names`: "file:line name".
    static func uses(in folder: String, of names: Set<String>) -> [String] {
        var found: [String] = []
        for source in sources(folder) {
            for (number, line) in source.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                for word in code.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") })
                    where names.contains(String(word)) {
                    found.append("\(source.name):\(number + 1) \(word)")
                }
            }
        }
        return found
    }

    /// Processes own the handle tables, and IPC builds on processes and threads: nothing in
    /// process/ may name what ipc/ or syscalls/ declare (the base class `KernelObject` and the
    /// handle operations are what lets it close a table without knowing the kinds of object).
    @Test func processesNameNothingOfIPC() {
        let above = Self.declarations("ipc").union(Self.declarations("syscalls"))
        #expect(above.contains("IPC") && above.contains("Port") && above.contains("SystemCalls"))
        #expect(!Self.declarations("process").isEmpty)
        let uses = Self.uses(in: "process", of: above)
        #expect(uses.isEmpty, "process/ names ipc/ or syscalls/: \(uses)")
    }

    /// The check sees a use when there is one.
    @Test func theCheckFindsAUse() {
        #expect(Self.uses(in: "syscalls", of: Self.declarations("ipc")).contains { $0.hasSuffix(" IPC") })
    }
}
