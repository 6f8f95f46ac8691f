#!/usr/bin/env python
"""Select preference pairs by preference divergence (PD); thin wrapper over `hf-prefsel pd`.

Examples:
    # PD(rati.): the ratings in the data as the per-aspect rewards
    python dataset_scripts/pd_select.py --data ../shared/data/preference_multiaspect/sf_data2text_multiaspect.jsonl \
        --ratio 0.3 --from-ratings --output out/sf_pd.jsonl

    # an existing reward model (one for all aspects, or ASPECT=PATH per aspect)
    python dataset_scripts/pd_select.py --data my_pairs.parquet --ratio 0.3 --reward-model path/to/rm \
        --output out/pd.parquet --push-to-hub user/my-pd-subset

See `--help` for training per-aspect proxy reward models (`--train-proxy-rm BASE_MODEL`) and every option.
"""

import sys

from hf_prefsel.cli.pd import main

if __name__ == "__main__":
    sys.exit(main())
