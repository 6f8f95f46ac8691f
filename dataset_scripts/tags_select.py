#!/usr/bin/env python
"""Select instruction data with TAGS (knowledge concepts -> tree -> information gain); wrapper over `hf-prefsel tags`.

Example:
    python dataset_scripts/tags_select.py --data ../shared/data/instructions/flask_eval_skills.jsonl --limit 200 --budget 0.1
"""

import sys

from hf_prefsel.cli.tags import main

if __name__ == "__main__":
    sys.exit(main())
