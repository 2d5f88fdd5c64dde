from conversa.adapters.cli import main

main()
