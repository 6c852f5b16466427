import Foundation

/// The demo page served at `/` with `--demo`: the four classic Flask-SSE demos, live.
///
/// Plain HTML and JavaScript, no build step (`Resources/demo.html`); the page opens one
/// multi-channel EventSource for all four panels (`?streams=per-panel`: one per panel, the mode
/// that shows HTTP/1.1's six-connection limit) and shows which node serves it. Read from the bundle once.
package enum DemoPage {
    /// The page's bytes. A missing bundle stops the process in SwiftPM's `Bundle.module`; a
    /// bundle without the file gives an empty page (both packaging mistakes the demo tests catch).
    package static let html: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "demo", withExtension: "html"),
            let data = try? Data(contentsOf: url)
        else { return [] }
        return Array(data)
    }()
}
