from instructkit.cli.app import main

main()
