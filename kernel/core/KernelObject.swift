// What a handle names. Handle tables, messages and processes hold every kind of kernel object
// through this one base class, so that they need not know the kinds (the same way seL4's
// capabilities and Zircon's dispatchers are held): the layer that owns the tables (processes)
// sits below the one that defines most kinds (IPC). Each kind says for itself what making or
// letting go of a capability to it means. Every object carries its kind, so that finding the kind
// behind a handle is one compare of a byte (a Swift cast asks the runtime for the object's class
// first: about eight instructions more for every handle a system call looks up).

/// What a kernel object is.
public enum KernelObjectKind: UInt8, Sendable {
    case port
    case notification
    case reply
    case memory
    case process
    case deviceAccess
    case interrupt
    case kernelLog
}

/// A final class of kernel object, and the kind its objects carry. A build has one class per
/// kind (the kernel's `Port` is the one `MessagePort`): `downcast` trusts the kind alone.
public protocol KernelObjectType: KernelObject {
    static var objectKind: KernelObjectKind { get }
}

open class KernelObject {
    /// Set once, by the class that made it (`KernelObjectType.objectKind`).
    public final let objectKind: KernelObjectKind

    public init(kind: KernelObjectKind) { objectKind = kind }

    /// This object as a `Kind`, if it is one.
    @inline(__always)
    public final func downcast<Kind: KernelObjectType>(to type: Kind.Type) -> Kind? {
        objectKind == Kind.objectKind ? unsafeDowncast(self, to: Kind.self) : nil
    }

    /// Whether this object is a `Kind`.
    @inline(__always)
    public final func isKind<Kind: KernelObjectType>(_ type: Kind.Type) -> Bool { objectKind == Kind.objectKind }

    /// A new capability with `rights` names this object: one created or duplicated, not moved
    /// (a move takes nothing away and adds nothing).
    open func capabilityAdded(rights: Rights) {}

    /// A capability with `rights` left every table for good: closed, dropped with a message, or
    /// closed with its process. A port loses a receiver, an unanswered call fails.
    open func capabilityReleased(rights: Rights) {}

    /// `holder` let go of a capability with the receive right here (moved or closed);
    /// `holdsAnother` tells whether it still has one. A port ends the receives its holder's
    /// threads wait in, once it has none left.
    open func receiveRightLeft(holder: AnyObject, holdsAnother: () -> Bool) {}
}

extension MovedHandle where Object == KernelObject {
    /// This capability leaves every table for good.
    @inline(__always)
    public func release() { object.capabilityReleased(rights: rights) }
}
