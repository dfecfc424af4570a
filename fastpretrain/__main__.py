"""``python -m fastpretrain`` (and ``torchrun -m fastpretrain``) runs the command line."""

import sys

from fastpretrain.cli import main

sys.exit(main())
