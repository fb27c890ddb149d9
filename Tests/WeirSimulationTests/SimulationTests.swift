#if WEIR_BUG_SWITCHES
import Foundation
import XCTest
@testable import WeirCore
@testable import WeirEngine

/// The deterministic simulator in the test suite: thousands of seeded
/// histories with random faults must all satisfy the invariants, and each
/// deliberately injected protocol bug must be caught within the same budget.
///
/// Environment (all optional): `WEIR_SIM_SEEDS` (how many, default 2000),
/// `WEIR_SIM_FIRST` (first seed, default 1), `WEIR_SIM_SEED` + `WEIR_SIM_BUGS`
/// (replay one history, with the bug named in a failure message).
final class SimulationTests: XCTestCase {
    static var env: [String: String] { ProcessInfo.processInfo.environment }

    /// Seeds 1…N (CI: 2,000) with faults: zero invariant violations.
    func testSeededHistoriesKeepTheInvariants() throws {
        let count = UInt64(Self.env["WEIR_SIM_SEEDS"] ?? "") ?? 2_000
        let first = UInt64(Self.env["WEIR_SIM_FIRST"] ?? "") ?? 1
        var failures: [String] = []
        var runs = 0, steps = 0
        let t0 = Date()
        for seed in first..<(first + count) {
            let sim = try Simulation(seed: seed)
            do { try sim.execute() } catch let v as Simulation.Violation {
                failures.append(v.description)
                if failures.count >= 3 { break }
            }
            runs += sim.runs
            steps += sim.step
        }
        print("simulated \(count) seeds from \(first): \(runs) runs, \(steps) steps in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        XCTAssert(failures.isEmpty, failures.joined(separator: "\n\n"))
        XCTAssertGreaterThan(runs, Int(count), "faults restarted runs: more runs than seeds")
    }

    /// Each deliberately injected protocol bug is caught within the CI seed budget.
    func testEveryInjectedBugIsCaught() throws {
        let budget: UInt64 = 2_000
        for bug in InjectedBugs.allCases {
            var caught: (UInt64, String)?
            for seed in 1...budget {
                do { try Simulation(seed: seed, bugs: bug).execute() } catch let v as Simulation.Violation {
                    caught = (seed, v.message)
                    break
                }
            }
            XCTAssertNotNil(caught, "injected bug \(bug) was not caught within \(budget) seeds")
            if let (s, m) = caught { print("injected bug \(bug): caught by seed \(s): \(m)") }
        }
    }

    /// Replays one history (the command a failure prints), printing its trace.
    func testReplay() throws {
        // Without WEIR_SIM_SEED it replays seed 498, whose history caught a real bug (an epoch
        // closed by a barrier other than its own id was committed under the wrong number).
        let seed = UInt64(Self.env["WEIR_SIM_SEED"] ?? "") ?? 498
        let names = (Self.env["WEIR_SIM_BUGS"] ?? "").split(separator: "+").map(String.init)
        let bugs = InjectedBugs(InjectedBugs.allCases.filter { names.contains($0.description) })
        let sim = try Simulation(seed: seed, bugs: bugs)
        do { try sim.execute() } catch let v as Simulation.Violation {
            print(sim.world.trace.joined(separator: "\n"))
            XCTFail(v.description)
            return
        }
        print(sim.world.trace.joined(separator: "\n"))
        print("seed \(seed): \(sim.runs) runs, \(sim.step) steps, invariants hold")
    }

    /// The simulator is deterministic: one seed, one history.
    func testASeedReplaysTheSameHistory() throws {
        for seed: UInt64 in [7, 42] {
            let a = try Simulation(seed: seed), b = try Simulation(seed: seed)
            try a.execute(); try b.execute()
            XCTAssertEqual(a.world.trace, b.world.trace)
            XCTAssertEqual(a.step, b.step)
        }
    }
}
#endif
