import XCTest
@testable import WeirCore

/// A node's shown watermark is its slowest subtask's; a subtask without one
/// (no partitions, nothing read yet) does not hold it back.
final class WatermarkGaugeTests: XCTestCase {
    func testTheLowestReportedSubtaskWins() {
        let g = WatermarkGauge(subtasks: 3)
        XCTAssertNil(g.current)
        g.set(0, 500)
        XCTAssertEqual(g.current, 500)
        g.set(2, 300)
        XCTAssertEqual(g.current, 300)
        g.set(2, 900)
        XCTAssertEqual(g.current, 500)
        g.set(7, 1)  // a subtask the gauge does not have is ignored, not a crash
        XCTAssertEqual(g.current, 500)
    }

    func testAnOutputRecordsWhatItPassesOn() {
        let counters = NodeCounters(id: "n", inputs: [], subtasks: 2)
        let out = Output()
        out.watermarkGauge = counters.watermark
        out.subtask = 1
        out.emitWatermark(1_700_000_000_000)
        XCTAssertEqual(counters.watermark.current, 1_700_000_000_000)
    }
}
