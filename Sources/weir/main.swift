import WeirCLI

CLILogging.bootstrap()
await WeirCommand.run()
