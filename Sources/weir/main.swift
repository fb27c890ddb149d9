import WeirCLI

CLILogging.bootstrap()
WeirCommand.main()
