import Foundation

/// The demo page served at `/` with `--demo`: the four classic Flask-SSE demos, live.
///
/// Plain HTML and JavaScript, no build step (`Resources/demo.html`); each panel opens its own
/// EventSource and shows which node serves its stream. Read from the bundle once.
package enum DemoPage {
    /// The page's bytes; empty if the resource is missing from the bundle (a packaging mistake,
    /// which the demo tests catch).
    package static let html: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "demo", withExtension: "html"),
            let data = try? Data(contentsOf: url)
        else { return [] }
        return Array(data)
    }()
}
