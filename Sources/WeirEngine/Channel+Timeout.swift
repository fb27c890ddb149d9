import Foundation
import WeirCore

extension Channel {
    /// Result of a receive with a deadline.
    public enum Received { case element(Int, StreamElement), timeout, cancelled }
}
