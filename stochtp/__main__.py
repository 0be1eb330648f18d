"""The `stochtp` command (`python -m stochtp`, and the console script `stochtp`).

It applies the process tunings (`stochtp.configure_process`) before anything imports NumPy, so
that OpenBLAS, which reads its variables as it loads, starts with them; then runs the command.
"""
import sys

from .process import configure_process


def main():
    configure_process()
    from .cli import main as run_command  # imports NumPy: after the tunings

    return run_command()


if __name__ == "__main__":
    sys.exit(main())
