"""`python -m stochtp` is the `stochtp` command (its process tunings: `stochtp.process.start_command`)."""
import sys

from .cli import main

sys.exit(main())
