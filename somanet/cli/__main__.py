"""``python -m somanet.cli``: the same as the ``somanet`` command."""
import sys

from .main import main

sys.exit(main())
