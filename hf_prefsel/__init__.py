"""hf_prefsel: build, tag, score and select instruction and preference data on the Hugging Face stack."""

__version__ = "0.1.0"
