import Foundation

/// The control plane's REST contract as Swift: `openapi.yaml` beside this file
/// is the one source; the generator derives `Components` (the schemas),
/// `APIProtocol` and `registerHandlers` (the server, implemented in
/// WeirControl) and `Client` (used by `weir job`). A change to the document
/// that the server or the CLI does not follow is a compile error.
public enum WeirAPIDocument {
    /// The document as written (YAML), served at `/openapi.yaml`.
    public static var yaml: String { String(decoding: PackageResources.openapi_yaml, as: UTF8.self) }
}
