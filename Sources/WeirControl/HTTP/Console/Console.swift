/// The web console served at `/`: one self-contained page (HTML, CSS and
/// script) that drives the same REST API as `weir job`, so the browser sees
/// exactly the statuses, warnings and refusals the CLI does. It lives in
/// `console.html` beside this file and is compiled into the binary.
enum Console {
    static let html = String(decoding: PackageResources.console_html, as: UTF8.self)
}
