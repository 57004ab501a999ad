// The vocabulary of virtual memory that does not depend on how it is translated: an address and
// what a mapping allows. The page tables (PageTable.swift) use it, and so does the ELF validator,
// which user programs compile too (the program loader); so it lives apart from the tables.

public struct VirtualAddress: Equatable, Comparable, Sendable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static func < (lhs: VirtualAddress, rhs: VirtualAddress) -> Bool { lhs.value < rhs.value }

    public var isPageAligned: Bool { value & (pageSize - 1) == 0 }
}

public struct MappingPermissions: OptionSet, Equatable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Readable is implied by every mapping; these add to it.
    public static let write = MappingPermissions(rawValue: 1 << 0)
    public static let execute = MappingPermissions(rawValue: 1 << 1)
    /// Accessible from EL0. Without it the mapping is the kernel's alone.
    public static let user = MappingPermissions(rawValue: 1 << 2)

    public static let readOnly: MappingPermissions = []
    public static let readWrite: MappingPermissions = [.write]
    public static let readExecute: MappingPermissions = [.execute]
}
