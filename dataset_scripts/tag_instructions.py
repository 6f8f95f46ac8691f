#!/usr/bin/env python
"""Tag instructions with open intent tags; thin wrapper over `hf-prefsel tag`.

Example:
    python dataset_scripts/tag_instructions.py --data ../shared/data/instructions/lima_train_1k.jsonl --limit 20
"""

import sys

from hf_prefsel.cli.tag import main

if __name__ == "__main__":
    sys.exit(main())
