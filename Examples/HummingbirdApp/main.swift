// An app with its own routes plus the mounted broker: the Swift counterpart of registering
// Flask-SSE's blueprint. Built only with the package trait `Hummingbird`.
#if Hummingbird
import Hummingbird

let router = Router()
router.get("/") { _, _ in
    "This app's own routes live next to the broker's.\n"
}
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: 8080), serverName: "hummingbird-example")
)
try await app.runService()
#else
print(
    """
    hummingbird-example needs the package trait Hummingbird, which also builds Hummingbird 2:
        swift run --traits Hummingbird hummingbird-example
    """
)
#endif
