"""`python -m llmsec_aio` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
