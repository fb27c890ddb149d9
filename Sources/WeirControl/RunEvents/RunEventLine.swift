import Foundation

/// One line of a run's events file (`weir run --events FILE`).
///
/// `weir run` writes these lines and the control plane supervises its runs by
/// reading them: this one type is the contract of both sides, so a field
/// cannot be renamed on one side only. On disk a line is one flat JSON
/// object: the payload's fields beside `event` (the kind) and `time`
/// (ISO-8601), as people `tail -f` it and scripts read it.
public struct RunEventLine: Sendable, Equatable {
    public var time: String
    public var event: Event

    public init(time: String, _ event: Event) {
        self.time = time
        self.event = event
    }

    /// What happened, with its fields.
    public enum Event: Sendable, Equatable {
        case starting(Starting)
        case restorePreview(RestorePreview)
        case running(Running)
        case firstRecord
        case startupTimes(StartupTimes)
        case splitsAdded(SplitsAdded)
        case restoreAdjusted(RestoreAdjusted)
        case snapshot(Snapshot)
        case snapshotFailed(SnapshotFailed)
        case savepointFailed(Reason)
        case stopFailed(Reason)
        case restarting(Restarting)
        case metrics(Metrics)
        case finished
        case stopped(Stopped)
        case cancelled
        case failed(Failed)
        /// A kind this reader does not know (written by a newer `weir`): kept by name, otherwise ignored.
        case unknown(String)

        /// The `event` field.
        public var kind: String {
            switch self {
            case .starting: "starting"
            case .restorePreview: "restore_preview"
            case .running: "running"
            case .firstRecord: "first_record"
            case .startupTimes: "startup_times"
            case .splitsAdded: "splits_added"
            case .restoreAdjusted: "restore_adjusted"
            case .snapshot: "snapshot"
            case .snapshotFailed: "snapshot_failed"
            case .savepointFailed: "savepoint_failed"
            case .stopFailed: "stop_failed"
            case .restarting: "restarting"
            case .metrics: "metrics"
            case .finished: "finished"
            case .stopped: "stopped"
            case .cancelled: "cancelled"
            case .failed: "failed"
            case .unknown(let kind): kind
            }
        }

        /// How the run ended: a run writes exactly one of these, last.
        public var isFinal: Bool {
            switch self {
            case .finished, .stopped, .cancelled, .failed: true
            default: false
            }
        }
    }
}

extension RunEventLine: Codable {
    private enum Keys: String, CodingKey { case event, time }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        time = try c.decode(String.self, forKey: .time)
        let kind = try c.decode(String.self, forKey: .event)
        switch kind {
        case "starting": event = .starting(try Starting(from: decoder))
        case "restore_preview": event = .restorePreview(try RestorePreview(from: decoder))
        case "running": event = .running(try Running(from: decoder))
        case "first_record": event = .firstRecord
        case "startup_times": event = .startupTimes(try StartupTimes(from: decoder))
        case "splits_added": event = .splitsAdded(try SplitsAdded(from: decoder))
        case "restore_adjusted": event = .restoreAdjusted(try RestoreAdjusted(from: decoder))
        case "snapshot": event = .snapshot(try Snapshot(from: decoder))
        case "snapshot_failed": event = .snapshotFailed(try SnapshotFailed(from: decoder))
        case "savepoint_failed": event = .savepointFailed(try Reason(from: decoder))
        case "stop_failed": event = .stopFailed(try Reason(from: decoder))
        case "restarting": event = .restarting(try Restarting(from: decoder))
        case "metrics": event = .metrics(try Metrics(from: decoder))
        case "finished": event = .finished
        case "stopped": event = .stopped(try Stopped(from: decoder))
        case "cancelled": event = .cancelled
        case "failed": event = .failed(try Failed(from: decoder))
        default: event = .unknown(kind)
        }
    }

    /// The payload's fields, then `event` and `time`, in one object.
    public func encode(to encoder: any Encoder) throws {
        switch event {
        case .starting(let p): try p.encode(to: encoder)
        case .restorePreview(let p): try p.encode(to: encoder)
        case .running(let p): try p.encode(to: encoder)
        case .startupTimes(let p): try p.encode(to: encoder)
        case .splitsAdded(let p): try p.encode(to: encoder)
        case .restoreAdjusted(let p): try p.encode(to: encoder)
        case .snapshot(let p): try p.encode(to: encoder)
        case .snapshotFailed(let p): try p.encode(to: encoder)
        case .savepointFailed(let p), .stopFailed(let p): try p.encode(to: encoder)
        case .restarting(let p): try p.encode(to: encoder)
        case .metrics(let p): try p.encode(to: encoder)
        case .stopped(let p): try p.encode(to: encoder)
        case .failed(let p): try p.encode(to: encoder)
        case .firstRecord, .finished, .cancelled, .unknown: break
        }
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(event.kind, forKey: .event)
        try c.encode(time, forKey: .time)
    }

    /// The line as written to the file: compact JSON, sorted keys, no newline.
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }

    /// Parses one line of the file; nil for a blank or malformed line (a known
    /// kind missing a field it must have, or not JSON at all).
    public static func decode(_ line: Data) -> RunEventLine? {
        try? JSONDecoder().decode(RunEventLine.self, from: line)
    }

    /// The line as a JSON document (what the lifecycle keeps of a run's latest
    /// metrics and of its final event).
    public var json: JSONValue {
        (try? encoded()).flatMap { JSONValue.parse($0) } ?? .null
    }

    /// The line a JSON document holds (the inverse of `json`).
    public init?(json: JSONValue) {
        guard let line = RunEventLine.decode(Data(json.text.utf8)) else { return nil }
        self = line
    }
}
