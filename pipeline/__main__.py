"""`python -m pipeline` runs the b2b-enrich command line."""

import sys

from pipeline.cli import main

sys.exit(main())
