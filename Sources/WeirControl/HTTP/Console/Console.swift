/// The web console served at `/`: one self-contained page (HTML, CSS and
/// script) that drives the same REST API as `weir job`, so the browser sees
/// exactly the statuses, warnings and refusals the CLI does. Its sources lie
/// beside this file — `console.html` (markup and style), `console-views.js`
/// (pure rendering: data in, HTML out) and `console-page.js` (state, API
/// calls, events) — and are compiled into the binary and joined into one
/// page here, so it works offline and needs no file beside `weir`.
enum Console {
    static let html: String = {
        let page = String(decoding: PackageResources.console_html, as: UTF8.self)
        let parts = [("console-views.js", PackageResources.console_views_js), ("console-page.js", PackageResources.console_page_js)]
        return parts.reduce(page) { page, part in
            page.replacingOccurrences(of: "// @include \(part.0)\n", with: String(decoding: part.1, as: UTF8.self))
        }
    }()
    /// The console's icon (a weir: water over a wall), served at `/favicon.ico`.
    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f4e79"/>\
        <path d="M2 6c2-2 4 2 6 0s4 2 6 0" stroke="#9fd3ff" stroke-width="1.5" fill="none"/><rect x="3" y="9" width="10" height="4" fill="#e8eef4"/></svg>
        """
}
