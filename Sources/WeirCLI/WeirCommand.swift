import ArgumentParser
import Foundation
import WeirCore
import WeirKafka
import WeirMySQL

/// The root of the `weir` command tree (async: `weir job` and `weir server`
/// are async commands; the engine's commands run on their own threads).
public struct WeirCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "weir",
        abstract: "Weir: a stream-processing runtime for Kafka → MySQL jobs.",
        subcommands: [RunCommand.self, ValidateCommand.self, BenchCommand.self, ExportCommand.self, ProduceCommand.self, DrillCommand.self,
                      SnapshotCommand.self, JobCommand.self, ServerCommand.self])

    public init() {}

    /// Parses the command line and runs the command, awaiting the async ones.
    /// (What `AsyncParsableCommand.main()` does; called by name, since from
    /// another module the synchronous `main()` is the one Swift picks.)
    public static func run() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// The connector kinds this binary knows, handed to the spec parser.
let connectorKinds: [ConnectorKind] = [KafkaSourceConnector.kind, MySQLSinkConnector.kind]

/// Reads and compiles a job spec file, turning spec errors into a readable failure.
func loadPlan(_ path: String) throws -> JobPlan {
    do { return try compilePlan(path) } catch { throw CLIError(describeSpecError(error, path: path)) }
}

/// Reads and compiles a job spec file (errors as thrown by the parser).
func compilePlan(_ path: String) throws -> JobPlan {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw WeirError(.invalidSpec, subject: path, "cannot read the job spec: \(error.localizedDescription)")
    }
    return try JobPlan.compile(text, connectors: connectorKinds)
}

func describeSpecError(_ error: any Error, path: String) -> String {
    if let e = error as? SpecErrors {
        return "\(path) is not a valid job spec:\n" + e.errors.map { "  \($0)" }.joined(separator: "\n")
    }
    return "\(path): \(error)"
}

/// An error printed as-is (no stack, no type name), exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func printErr(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a job spec: structure, references, types and expressions.")

    @Argument(help: "The job spec (YAML or JSON).") var spec: String

    func run() throws {
        let plan = try loadPlan(spec)
        print("\(spec): ok — job '\(plan.name)', \(plan.nodes.count) nodes, parallelism \(plan.parallelism)")
        for n in plan.nodes {
            let inputs = n.inputs.map { plan.nodes[$0].id }
            let from = inputs.isEmpty ? "" : " ← \(inputs.joined(separator: ", "))"
            print("  \(n.id) [\(kindName(n))]\(from) \(n.schema)")
        }
    }
}

func kindName(_ n: PlannedNode) -> String {
    switch n.kind {
    case .source(let c, _, _), .sink(let c, _): return c
    case .filter: return "filter"
    case .select: return "select"
    case .aggregate(_, let w, _): return w == nil ? "aggregate" : "window"
    case .union: return "union"
    }
}
