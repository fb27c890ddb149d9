/// The web console served at `/`: one self-contained page (HTML, CSS and
/// script) that drives the same REST API as `weir job`, so the browser sees
/// exactly the statuses, warnings and refusals the CLI does. It lives in
/// `console.html` beside this file and is compiled into the binary.
enum Console {
    static let html = String(decoding: PackageResources.console_html, as: UTF8.self)
    /// The console's icon (a weir: water over a wall), served at `/favicon.ico`.
    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f4e79"/>\
        <path d="M2 6c2-2 4 2 6 0s4 2 6 0" stroke="#9fd3ff" stroke-width="1.5" fill="none"/><rect x="3" y="9" width="10" height="4" fill="#e8eef4"/></svg>
        """
}
