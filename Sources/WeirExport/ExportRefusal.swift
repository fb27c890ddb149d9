/// Why a job cannot be exported to Flink SQL: the part of the job at fault
/// (a node id, or `job`, or the option that does not fit) and the reason.
///
/// It exists because the exporter never approximates: whatever has no
/// faithful Flink equivalent stops the export, and the user must be told
/// exactly which node and why, and what to do instead.
public struct ExportRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The node id at fault (`per-user`), `job` for job-wide settings, or the
    /// option (`--end-offsets`, `snapshot`) that does not fit the job.
    public var subject: String
    /// What has no faithful Flink equivalent, and why.
    public var reason: String
    /// What the user can do instead (nil when nothing sensible is known).
    public var hint: String?

    public init(_ subject: String, _ reason: String, hint: String? = nil) {
        self.subject = subject
        self.reason = reason
        self.hint = hint
    }

    /// `subject: reason`, the form the CLI prints after `error: `.
    public var description: String { "\(subject): \(reason)" }
}
