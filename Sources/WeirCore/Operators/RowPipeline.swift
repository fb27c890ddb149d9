/// Filters and selects chained directly behind a source, fused into the
/// decode loop: each decoded row is tested and projected in place, and only
/// the rows that survive are appended to a batch. Saves materialising (and
/// copying twice) the rows a selective filter drops.
package struct RowPipeline {
    package enum Step {
        case filter(RowEval)
        case project([CompiledExpr], arity: Int)
        /// A projection of bare fields only (the usual `select`): copied by index, no closure calls.
        case pick([Int])
    }

    package let steps: [Step]
    /// The fused nodes' own outputs (only their counters are used).
    private let stepOutputs: [Output]
    /// Rows each filter step dropped since the last `countBatch`.
    private var dropped: [Int]
    /// Arity of the rows the pipeline emits.
    package let outArity: Int
    /// Where the pipeline's output goes (the fused operators' downstream).
    package let output: Output
    private var scratch: [[Value]]

    /// Fuses the leading run of chained filters/selects of `output`, if any.
    package init?(from output: Output, sourceArity: Int) {
        var steps: [Step] = []
        var stepOutputs: [Output] = []
        var out = output
        var arity = sourceArity
        while out.targets.count == 1, case .chained(let op, let next) = out.targets[0] {
            if let f = op as? FilterOperator {
                steps.append(.filter(f.condition.eval))
            } else if let s = op as? SelectOperator {
                arity = s.exprs.count
                let fields = s.exprs.compactMap(\.fieldIndex)
                steps.append(fields.count == arity ? .pick(fields) : .project(s.exprs, arity: arity))
            } else {
                break
            }
            stepOutputs.append(next)
            out = next
        }
        if steps.isEmpty { return nil }
        self.steps = steps
        self.stepOutputs = stepOutputs
        self.dropped = Array(repeating: 0, count: steps.count)
        self.outArity = arity
        self.output = out
        self.scratch = steps.map { step in
            switch step {
            case .project(_, let a): return Array(repeating: .null, count: a)
            case .pick(let fields): return Array(repeating: .null, count: fields.count)
            case .filter: return []
            }
        }
    }

    /// Runs the row through the steps; appends it to `batch` if it survives.
    @inline(__always) package mutating func push(_ row: UnsafePointer<Value>, timestamp: Int64, into batch: inout RecordBatch) {
        var cur = row
        for k in 0..<steps.count {
            switch steps[k] {
            case .filter(let eval):
                if !eval(cur).isTrue { dropped[k] &+= 1; return }
            case .project(let exprs, _):
                let src = cur
                scratch[k].withUnsafeMutableBufferPointer { buf in
                    for (i, e) in exprs.enumerated() {
                        buf[i] = e.fieldIndex.map { src[$0] } ?? e.eval(src)
                    }
                }
                cur = scratch[k].withUnsafeBufferPointer { $0.baseAddress! }
            case .pick(let fields):
                let src = cur
                scratch[k].withUnsafeMutableBufferPointer { buf in
                    fields.withUnsafeBufferPointer { f in
                        for i in 0..<f.count { buf[i] = src[f[i]] }
                    }
                }
                cur = scratch[k].withUnsafeBufferPointer { $0.baseAddress! }
            }
        }
        batch.values.append(contentsOf: UnsafeBufferPointer(start: cur, count: outArity))
        batch.timestamps.append(timestamp)
    }

    /// Counts, per fused node, the rows of the batch just built from `rows`
    /// decoded rows. The last node's count comes from emitting the batch.
    package mutating func countBatch(rows: Int) {
        var n = rows
        for k in 0..<steps.count {
            n -= dropped[k]
            dropped[k] = 0
            if k < steps.count - 1 { stepOutputs[k].count(n) }
        }
    }
}
