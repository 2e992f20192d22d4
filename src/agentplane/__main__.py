from agentplane.cli import main

main()
