// Init's power control port: a send right to it is the authority to power the machine off. Init
// hands it only to the services whose manifest entry asks for it (`devices=power`); a call with
// label `shutdown` makes init stop every service and end, and the kernel powers off when init
// ends with code 0 (docs/SHELL.md).

public enum PowerControl {
    /// Stop the services and power off. Answered (label 0) before the services stop.
    public static let shutdown: UInt64 = 1
}
