"""``python -m bench``: the whole benchmark (see bench/README.md)."""

import sys

from bench.suite import main

sys.exit(main())
