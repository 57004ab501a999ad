import Foundation
import Testing
import PropertyBased
@testable import KernelCore

/// `text` parsed; the manifest holds no pointer into it, so it outlives the buffer.
private func parse(_ text: String) -> ServiceManifest {
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { ServiceManifest(parsing: $0) }
}

private func string<let capacity: Int>(_ text: BoundedText<capacity>) -> String {
    text.withBytes { String(decoding: $0, as: UTF8.self) }
}

private func names(_ manifest: ServiceManifest) -> [String] {
    (0..<manifest.count).map { string(manifest[$0].name) }
}

private func order(_ manifest: ServiceManifest) -> [String] {
    (0..<manifest.order.count).map { string(manifest[manifest.order[$0]].name) }
}

private func problems(_ manifest: ServiceManifest) -> [(line: Int, reason: ManifestProblem.Reason, detail: String)] {
    (0..<manifest.problemCount).map {
        let problem = manifest.problem($0)
        return (problem.line, problem.reason, string(problem.detail))
    }
}

private func describe(_ problem: ManifestProblem) -> String {
    var line = TextLine()
    problem.describe(into: &line)
    return line.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
}

@Suite struct ServiceManifestTests {
    /// The manifest the ramdisk carries must parse without a problem.
    @Test func theSystemManifestIsValid() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("userland/manifest")
        let text = try String(contentsOf: url, encoding: .utf8)
        let manifest = parse(text)
        #expect(manifest.problemCount == 0, "\(problems(manifest))")
        #expect(manifest.count > 0)
        #expect(manifest.order.count == manifest.count)
        #expect(manifest.index(of: "names") != nil)
    }

    @Test func everyField() {
        let manifest = parse("""
            # The system's services.

            service names program=names restart=always
            service console program=echo after=names restart=on-failure devices=console args="-v  --port  7" memory=4M
            \tservice  idle   program=spinner memory=65536   # trailing comment
            service quiet program=hello restart=never memory=64k args=one devices=power,console,services,terminal,disk
            """)
        #expect(manifest.problemCount == 0, "\(problems(manifest))")
        #expect(names(manifest) == ["names", "console", "idle", "quiet"])
        let console = manifest[1]
        #expect(string(console.program) == "echo")
        #expect(string(console.arguments) == "-v --port 7")
        #expect(console.restart == .onFailure)
        #expect(console.devices == .console)
        #expect(console.memoryLimit == 4 << 20)
        #expect(console.dependencies == 1 << 0)
        #expect(console.line == 4)
        #expect(manifest[0].restart == .always && manifest[0].memoryLimit == 0 && manifest[0].devices.isEmpty)
        #expect(manifest[2].restart == .never && manifest[2].memoryLimit == 65536 && manifest[2].line == 5)
        #expect(manifest[3].memoryLimit == 64 << 10 && string(manifest[3].arguments) == "one")
        #expect(manifest[3].devices == [.console, .power, .services, .terminal, .disk])
        #expect(order(manifest) == ["names", "console", "idle", "quiet"])
    }

    @Test func emptyAndCommentOnlyManifests() {
        for text in ["", "\n\n", "# nothing\n   # indented comment\n\t\n", "\r\n"] {
            let manifest = parse(text)
            #expect(manifest.count == 0 && manifest.problemCount == 0 && manifest.order.count == 0)
        }
    }

    @Test func carriageReturnsEndLines() {
        let manifest = parse("service a program=x restart=always\r\nservice b program=y after=a\r\n")
        #expect(manifest.problemCount == 0)
        #expect(manifest[0].restart == .always && order(manifest) == ["a", "b"])
    }

    /// Each malformed line is reported with its number and reason and left out; the others stay.
    @Test(arguments: [
        ("servic a program=x", ManifestProblem.Reason.unknownDirective, "servic"),
        ("service", .missingName, ""),
        ("service # comment", .missingName, ""),
        ("service a/b program=x", .badName, "a/b"),
        ("service \(String(repeating: "n", count: 33)) program=x", .badName, String(repeating: "n", count: 32)),
        ("service a program", .notKeyValue, "program"),
        ("service a program=x colour=red", .unknownKey, "colour"),
        ("service a program=x program=y", .duplicateKey, "program"),
        ("service a program=", .missingValue, "program"),
        ("service a program=\"\"", .missingValue, "program"),
        ("service a program=x args=\"one two", .unterminatedQuote, "args=\"one two"),
        ("service a restart=always", .missingProgram, "a"),
        ("service a program=x/y", .badProgram, "x/y"),
        ("service a program=\(String(repeating: "p", count: 33))", .badProgram, String(repeating: "p", count: 32)),
        ("service a program=x args=\"\(String(repeating: "w ", count: 65))\"", .argumentsTooLong, "args"),
        ("service a program=x args=\"a\"b\"c\"", .argumentsTooLong, "args"),
        ("service a program=x args=a\"b", .unterminatedQuote, "args=a\"b"),
        ("service a program=x after=b,,c", .badDependency, ""),
        ("service a program=x after=b,", .badDependency, ""),
        ("service a program=x after=b,c!", .badDependency, "c!"),
        ("service a program=x after=b1,b2,b3,b4,b5,b6,b7,b8,b9", .tooManyDependencies, "b9"),
        ("service a program=x restart=sometimes", .badPolicy, "sometimes"),
        ("service a program=x restart=Always", .badPolicy, "Always"),
        ("service a program=x devices=console,floppy", .unknownDevice, "floppy"),
        ("service a program=x memory=0", .badMemory, "0"),
        ("service a program=x memory=4T", .badMemory, "4T"),
        ("service a program=x memory=M", .badMemory, "M"),
        ("service a program=x memory=4MB", .badMemory, "4MB"),
        ("service a program=x memory=-1", .badMemory, "-1"),
        ("service a program=x memory=99999999999999999999", .badMemory, "99999999999999999999"),
        ("service a program=x memory=1025G", .badMemory, "1025G"),
        ("service a program=x args=caf\u{e9}", .badCharacter, ""),
        ("service a program=x\u{7}", .badCharacter, ""),
        ("service a program=x # \(String(repeating: "#", count: 256))", .lineTooLong, ""),
    ])
    func malformedLine(line: String, reason: ManifestProblem.Reason, detail: String) {
        let manifest = parse("service first program=hello\n\n\(line)\nservice last program=hello after=first\n")
        let found = problems(manifest)
        #expect(found.count == 1)
        #expect(found.first?.line == 3)
        #expect(found.first?.reason == reason)
        #expect(found.first?.detail == detail)
        #expect(names(manifest) == ["first", "last"])
        #expect(order(manifest) == ["first", "last"])
    }

    @Test func limitsThatHold() {
        let longest = String(repeating: "n", count: 32)
        let manifest = parse("""
            service \(longest) program=\(longest) memory=1G after=b1,b2,b3,b4,b5,b6,b7,b8
            service x program=y args="\(String(repeating: "a", count: 128))" memory=1024G
            """ + (1...8).map { "\nservice b\($0) program=p" }.joined())
        #expect(problems(manifest).map(\.reason) == [])
        #expect(manifest[1].memoryLimit == 1 << 40)
        #expect(manifest[1].arguments.count == 128)
        #expect(manifest[0].dependencies.nonzeroBitCount == 8)
        #expect(order(manifest).last == longest)
    }

    @Test func duplicateServicesKeepTheFirst() {
        let manifest = parse("service a program=one\nservice a program=two\nservice b program=three after=a\n")
        #expect(problems(manifest).map(\.line) == [2])
        #expect(problems(manifest).first?.reason == .duplicateService)
        #expect(string(manifest[0].program) == "one")
        #expect(order(manifest) == ["a", "b"])
    }

    @Test func tooManyServices() {
        let text = (1...40).map { "service s\($0) program=p" }.joined(separator: "\n")
        let manifest = parse(text)
        #expect(manifest.count == ServiceManifest.maximumServices)
        #expect(problems(manifest).map(\.line) == Array(33...40))
        #expect(problems(manifest).allSatisfy { $0.reason == .tooManyServices })
        #expect(manifest.order.count == 32)
    }

    @Test func problemsBeyondTheLimitAreCounted() {
        let manifest = parse(String(repeating: "nonsense\n", count: 50))
        #expect(manifest.problemCount == ServiceManifest.maximumProblems)
        #expect(manifest.problemsLeftOut == 18)
    }

    @Test func dependenciesComeFirstWhereverTheyAreWritten() {
        let manifest = parse("""
            service shell program=sh after=console,files
            service files program=fs after=disk
            service console program=echo after=names
            service disk program=blk after=names
            service names program=names
            """)
        #expect(manifest.problemCount == 0)
        #expect(order(manifest) == ["names", "console", "disk", "files", "shell"])
    }

    @Test func unknownDependencyLeavesOutItsDependents() {
        let manifest = parse("""
            service a program=x after=ghost
            service b program=x after=a
            service c program=x
            service d program=x after=b,c
            """)
        #expect(order(manifest) == ["c"])
        let found = problems(manifest)
        #expect(found.map(\.line) == [1, 2, 4])
        #expect(found.map(\.reason) == [.unknownDependency, .dependencyNotStarted, .dependencyNotStarted])
        #expect(found.map(\.detail) == ["ghost", "a", "b"])
        #expect(describe(manifest.problem(0)) == "line 1: not started: depends on a service the manifest does not define 'ghost'")
    }

    @Test func aDependencyOnAMalformedLineIsUnknown() {
        let manifest = parse("service a program=x colour=red\nservice b program=y after=a\n")
        #expect(problems(manifest).map(\.reason) == [.unknownKey, .unknownDependency])
        #expect(manifest.order.count == 0)
    }

    @Test func cyclesAreReportedAndTheRestStarts() {
        let manifest = parse("""
            service self program=x after=self
            service a program=x after=b
            service b program=x after=c
            service c program=x after=a
            service hanger program=x after=c
            service free program=x
            service late program=x after=free
            """)
        #expect(order(manifest) == ["free", "late"])
        let found = problems(manifest)
        #expect(found.map(\.line) == [1, 2, 3, 4, 5])
        #expect(found.map(\.reason) == [.dependencyCycle, .dependencyCycle, .dependencyCycle, .dependencyCycle, .dependencyNotStarted])
        #expect(found.map(\.detail) == ["self", "b", "c", "a", "c"])
    }

    @Test func repeatedDependenciesCountOnce() {
        let manifest = parse("service a program=x\nservice b program=x after=a,a,a,a,a,a,a,a,a,a\n")
        #expect(manifest.problemCount == 0 && manifest[1].dependencies == 1)
    }

    @Test func problemsDescribeThemselves() {
        let manifest = parse("\n\nservice a program=x colour=red\n")
        #expect(describe(manifest.problem(0)) == "line 3: unknown key 'colour'")
    }

    @Test func restartPolicies() {
        #expect(!RestartPolicy.never.restarts(after: .faulted, code: 0x9200_0045))
        #expect(RestartPolicy.always.restarts(after: .exited, code: 0))
        #expect(!RestartPolicy.onFailure.restarts(after: .exited, code: 0))
        #expect(RestartPolicy.onFailure.restarts(after: .exited, code: 1))
        #expect(RestartPolicy.onFailure.restarts(after: .faulted, code: 0))
        #expect(RestartPolicy.onFailure.restarts(after: .killed, code: 0))
    }

    @Test func validNames() {
        func valid(_ name: String) -> Bool { Array(name.utf8).withUnsafeBytes { ServiceManifest.isValidName($0) } }
        #expect(valid("names") && valid("a") && valid("console-2.log_x") && valid(String(repeating: "z", count: 32)))
        #expect(!valid("") && !valid(String(repeating: "z", count: 33)) && !valid("a b") && !valid("a/b") && !valid("é"))
    }

    /// Random manifests (made of plausible and broken pieces) never crash the parser; every service
    /// kept is valid, the order holds each service after its dependencies, and every service is
    /// either started or reported.
    @Test func randomManifests() async {
        let pieces = [
            "service", "names", "a", "b", "c", "d", "e", "program=x", "program=", "args=\"p q\"", "args=\"",
            "after=a", "after=b,c", "after=d,e,a", "after=", "restart=always", "restart=never", "restart=maybe",
            "devices=console", "devices=tape", "memory=4M", "memory=0", "#", "\n", "\n", "\n", "\n", "\r", "\t",
            "=", ",", "\"", "\u{0}", "\u{ff}", "service e program=y after=a", "service a program=z after=e",
        ]
        let input = Gen.int(in: 0...(pieces.count - 1)).array(of: 0...200)
        await propertyCheck(count: 300, input: input) { choices in
            let text = choices.map { pieces[$0] }.joined(separator: choices.count % 3 == 0 ? "" : " ")
            let manifest = parse(text)
            var position = [Int: Int]()
            for step in 0..<manifest.order.count { position[manifest.order[step]] = step }
            for index in 0..<manifest.count {
                let entry = manifest[index]
                #expect(entry.name.withBytes { ServiceManifest.isValidName($0) })
                #expect(entry.program.withBytes { ServiceManifest.isValidName($0) })
                guard let mine = position[index] else { continue }
                var dependencies = entry.dependencies
                while dependencies != 0 {
                    let other = dependencies.trailingZeroBitCount
                    dependencies &= dependencies - 1
                    #expect((position[other] ?? Int.max) < mine)
                }
                #expect(entry.missingDependency.isEmpty)
            }
            let reportedServices = Set((0..<manifest.order.problemCount).map { manifest.order.problem($0).line })
            for index in 0..<manifest.count {
                #expect((position[index] != nil) != reportedServices.contains(manifest[index].line))
            }
            #expect(Set(position.keys).count == manifest.order.count)
        }
    }

    /// Random dependency graphs against a model: a service starts exactly when it is on no cycle and
    /// every service it depends on starts.
    @Test func orderMatchesAModel() async {
        let input = Gen.int(in: 0...11).array(of: 0...3).array(of: 1...12)
        await propertyCheck(count: 300, input: input) { graph in
            let text = graph.enumerated().map { index, dependencies in
                "service s\(index) program=p" + (dependencies.isEmpty ? "" : " after=" + dependencies.map {
                    $0 < graph.count ? "s\($0)" : "missing\($0)"
                }.joined(separator: ","))
            }.joined(separator: "\n")
            let manifest = parse(text)
            #expect(manifest.count == graph.count)
            // The least set closed under "every dependency exists and starts": no cycle gets in.
            var model = Set<Int>()
            var grew = true
            while grew {
                grew = false
                for index in 0..<graph.count where !model.contains(index)
                    && graph[index].allSatisfy({ $0 < graph.count && model.contains($0) }) {
                    model.insert(index)
                    grew = true
                }
            }
            let expected = model.sorted()
            let started = (0..<manifest.order.count).map { manifest.order[$0] }
            #expect(started.sorted() == expected)
            #expect(manifest.problemCount == graph.count - expected.count)
        }
    }
}
