"""Token-free, URL-free model descriptions for reports and dataset cards."""

from __future__ import annotations

from .client import get_client
from .config import LLMConfig


def served_model(config: LLMConfig) -> str | None:
    """The model id the endpoint reported when this process's client asked it (`None` before the first call,
    or when it reported none). Never a URL: a card must not carry this machine's addresses."""
    if config.is_local:
        return None
    for backend in get_client(config).backends:
        model_id = getattr(backend, "model_id", None)
        if model_id and model_id != getattr(backend, "url", None) and "://" not in str(model_id):
            return str(model_id)
    return None


def describe_llm(config: LLMConfig) -> str:
    """`config.describe()` with the model id the endpoint reported, when known."""
    return config.describe(served_model(config))


__all__ = ["describe_llm", "served_model"]
