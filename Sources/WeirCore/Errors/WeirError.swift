import Foundation

/// The one error type users see from Weir.
///
/// Every error names the object at fault (`subject`: a spec path such as
/// `nodes[2].filter`, a topic, a table, a column, a broker) and, where one
/// is known, what to do about it (`suggestion`).
public struct WeirError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidSpec = "invalid_spec"
        case brokerUnreachable = "broker_unreachable"
        case topicMissing = "topic_missing"
        /// A topic the job was reading was deleted while it ran.
        case topicDeleted = "topic_deleted"
        case kafka = "kafka_error"
        case mysqlUnreachable = "mysql_unreachable"
        case accessDenied = "access_denied"
        case tableMissing = "table_missing"
        case columnMismatch = "column_mismatch"
        /// The sink table changed while the job wrote to it: a column or the table
        /// dropped or renamed, or a column's type changed kind.
        case sinkSchemaChanged = "sink_schema_changed"
        case lockWaitTimeout = "lock_wait_timeout"
        case mysql = "mysql_error"
        case unsupportedLibrary = "unsupported_library"
        case io = "io_error"
        /// The disk holding the state directory is full (ENOSPC, EDQUOT).
        case stateDirFull = "state_dir_full"
        /// The state directory may not be written (EACCES, EPERM, EROFS).
        case stateDirUnwritable = "state_dir_unwritable"
        /// A snapshot's files fail their checks: missing, truncated, a checksum
        /// or manifest that does not match.
        case snapshotCorrupt = "snapshot_corrupt"
        /// A snapshot does not fit the job: state of a node it no longer has, a
        /// changed state layout, another maxParallelism.
        case snapshotIncompatible = "snapshot_incompatible"
        /// Records a restore or a start offset would resume from were already
        /// removed from the topic by retention.
        case offsetsRemoved = "offsets_removed"
        /// A record rejected under `onError: fail`.
        case badRecord = "bad_record"
        case internalError = "internal_error"

        /// Errors a restart from the last checkpoint cannot fix: the spec or the
        /// snapshot's compatibility, a record that would be replayed as it was,
        /// a sink table changed under the job, a deleted topic.
        public var isPermanent: Bool {
            switch self {
            case .invalidSpec, .snapshotIncompatible, .badRecord, .sinkSchemaChanged, .topicDeleted: return true
            default: return false
            }
        }

        /// The code of a failed file-system call on the state directory, by its
        /// errno: a full disk and a refused write have codes of their own, so
        /// that what to do about them is found by code, not in the OS's words.
        public static func io(errno: Int32) -> Code {
            switch errno {
            case ENOSPC, EDQUOT: return .stateDirFull
            case EACCES, EPERM, EROFS: return .stateDirUnwritable
            default: return .io
            }
        }
    }

    public var code: Code
    public var subject: String
    public var message: String
    public var suggestion: String?

    public init(_ code: Code, subject: String, _ message: String, suggestion: String? = nil) {
        self.code = code
        self.subject = subject
        self.message = message
        self.suggestion = suggestion
    }

    public var description: String {
        var s = subject.isEmpty ? message : "\(subject): \(message)"
        if let suggestion { s += " (\(suggestion))" }
        return s
    }

    /// Shorthand for a located spec validation error.
    public static func spec(_ path: String, _ message: String) -> WeirError {
        WeirError(.invalidSpec, subject: path, message)
    }
}

/// Several located spec errors reported together, so a user fixes them in one pass.
public struct SpecErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [WeirError]
    public init(_ errors: [WeirError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
