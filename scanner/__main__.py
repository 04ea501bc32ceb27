"""`python -m scanner` runs the likeness command line."""

from scanner.cli.main import main

main()
