"""The pieces behind the Gradio Space (`spaces/app.py`): bounded data loading, the shared model, the four method
runs and the views of their results. Nothing here imports gradio, so every piece is usable (and testable) alone.
"""

from .data import LoadedData, SampleSet, available_samples, load_hub_dataset, load_sample, read_upload
from .limits import SpaceLimits
from .models import ModelProvider
from .runs import RunResult

__all__ = [
    "LoadedData",
    "ModelProvider",
    "RunResult",
    "SampleSet",
    "SpaceLimits",
    "available_samples",
    "load_hub_dataset",
    "load_sample",
    "read_upload",
]
