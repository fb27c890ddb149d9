/// The librdkafka properties a job spec may not set: those that load code
/// into the process or run a command (librdkafka 2.8.0's CONFIGURATION.md).
///
/// A spec comes from whoever can reach the API or write a file; its
/// properties must not turn into code execution in `weir run` or, through
/// validation, in `weir server`. Property names are case-sensitive in
/// librdkafka, and `topic.`-prefixed names reach topic properties only.
public enum KafkaPropertySafety {
    /// Properties refused whatever their value, with why.
    static let refused: [String: String] = [
        "plugin.library.paths": "it loads shared libraries (plugins) into the process",
        "sasl.kerberos.kinit.cmd": "it is a shell command librdkafka runs",
        "ssl.engine.location": "it loads an OpenSSL engine library into the process",
        "ssl.engine.id": "it selects an OpenSSL engine to load into the process",
    ]

    /// Properties interpolated into the default kinit command line: only
    /// characters that cannot escape it.
    static let shellInterpolated: Set<String> = ["sasl.kerberos.keytab", "sasl.kerberos.principal", "sasl.kerberos.service.name"]

    /// Why `key = value` is refused, nil when it is allowed.
    public static func refusal(key: String, value: String) -> String? {
        if let why = refused[key] { return "not allowed: \(why)" }
        if shellInterpolated.contains(key),
           !value.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSetSafe.word.contains($0) || "._/@+=:-".unicodeScalars.contains($0)) }) {
            return "not allowed: the value goes into a shell command line (kinit); use letters, digits and . _ / @ + = : - only"
        }
        // OpenSSL loads a provider by name, or from a path: names only.
        if key == "ssl.providers",
           !value.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSetSafe.word.contains($0) || ",-".unicodeScalars.contains($0)) }) {
            return "not allowed: OpenSSL providers are given by name (for example default,legacy), never by path"
        }
        return nil
    }
}

/// ASCII letters, digits and underscore.
private enum CharacterSetSafe {
    static let word: Set<Unicode.Scalar> = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_".unicodeScalars)
}
