import Foundation

// Text layout shared by the CLI's tables (`weir snapshot`, `weir job`).

/// `2024-05-01T12:00:00.123Z` → `2024-05-01 12:00:00Z`.
func displayTime(_ iso: String) -> String {
    guard iso.count >= 19 else { return iso }
    let base = iso.prefix(19).replacingOccurrences(of: "T", with: " ")
    return iso.hasSuffix("Z") ? base + "Z" : base
}

/// 1536 → `1.5 KiB`.
func byteCount(_ n: Int64) -> String {
    if n < 1024 { return "\(n) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var v = Double(n) / 1024, u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return String(format: v >= 100 ? "%.0f %@" : "%.1f %@", v, units[u])
}

/// Aligns rows into columns separated by two spaces (display width, so `⚠` counts as one).
func alignedTable(_ rows: [[String]], rightAligned: Set<Int> = []) -> [String] {
    let cols = rows.map(\.count).max() ?? 0
    var widths = Array(repeating: 0, count: cols)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return rows.map { r in
        r.enumerated().map { i, c in
            let pad = String(repeating: " ", count: widths[i] - c.count)
            if i == r.count - 1 && !rightAligned.contains(i) { return c }
            return rightAligned.contains(i) ? pad + c : c + pad
        }.joined(separator: "  ")
    }
}
