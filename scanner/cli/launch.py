"""The `likeness` console entry point, kept apart from the command line it loads.

Worker processes are spawned, and a spawned process first imports the script that started its
parent. The `likeness` script imports only this module, so the workers do not load the command
line (Typer, the consent and report modules) that they never use.
"""

from __future__ import annotations


def main() -> None:
    """Run the `likeness` command line (`scanner.cli.main.main`)."""
    from scanner.cli.main import main as run_command_line

    run_command_line()
