"""`python -m stochtp` is the `stochtp` command."""
import sys

from .cli import main

sys.exit(main())
