"""`python -m scanner` runs the likeness command line."""

from scanner.cli import main

main()
