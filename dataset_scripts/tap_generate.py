#!/usr/bin/env python
"""Generate SFT and preference data from a taxonomy (TaP); thin wrapper over `hf-prefsel tap`.

Example:
    python dataset_scripts/tap_generate.py --taxonomy default --language zh --per-leaf 2 --responses 2 --max-leaves 3
"""

import sys

from hf_prefsel.cli.tap import main

if __name__ == "__main__":
    sys.exit(main())
