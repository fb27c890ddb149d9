import WeirCore
