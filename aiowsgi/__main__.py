"""``python -m aiowsgi [OPTIONS] APP``: the same as the ``aiowsgi`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
