from genoforge.cli.app import main

main()
