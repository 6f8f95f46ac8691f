#!/usr/bin/env python
"""Select instruction data with TACOS (open tagging + comparative scoring); thin wrapper over `hf-prefsel tacos`.

Example:
    python dataset_scripts/tacos_select.py --data ../shared/data/instructions/lima_train_1k.jsonl --budget 100
"""

import sys

from hf_prefsel.cli.tacos import main

if __name__ == "__main__":
    sys.exit(main())
