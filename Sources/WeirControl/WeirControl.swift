// The control plane module; see ServerCommand and the README.
import WeirCore
