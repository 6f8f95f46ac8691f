"""Talking to language models: TGI, vLLM, llama.cpp, OpenAI-compatible endpoints, or the embedded Gemma.

Example:
    >>> from hf_prefsel.llm import LLMConfig, LLMClient, FewShotPrompt
    >>> client = LLMClient(LLMConfig(endpoints=["http://127.0.0.1:8080"]))
"""

from .backends import Reply
from .cache import RequestCache
from .client import LLMClient, Result, get_client, run_sync, shared_clients
from .config import LLMConfig
from .local import LocalServers, free_port, local_model_path, serve_local
from .mapper import LLMMapper, text_field
from .prompt import FewShotPrompt, TranscriptFormat, render_transcript
from .structured import extract_json, parse_reply, schema_of
from .usage import Usage

__all__ = [
    "FewShotPrompt",
    "LLMClient",
    "LLMConfig",
    "LLMMapper",
    "LocalServers",
    "Reply",
    "RequestCache",
    "Result",
    "TranscriptFormat",
    "Usage",
    "extract_json",
    "free_port",
    "get_client",
    "local_model_path",
    "parse_reply",
    "render_transcript",
    "run_sync",
    "schema_of",
    "serve_local",
    "shared_clients",
    "text_field",
]
