"""`redact`: the common credential shapes never survive into an error column or message."""

from __future__ import annotations

import pytest

from hf_prefsel.llm.redact import MASK, error_text, redact

SECRETS = {
    "bearer": ("Authorization: Bearer abcdef0123456789", "abcdef0123456789"),
    "bearer in prose": ('{"error": "token Bearer xyz-ABC.987654 is invalid"}', "xyz-ABC.987654"),
    "openai key": ("Incorrect API key provided: sk-proj-AbCdEf0123456789xYz_ab", "sk-proj-AbCdEf0123456789xYz_ab"),
    "anthropic key": ("key sk-ant-api03-AAAAbbbbCCCCdddd1234", "sk-ant-api03-AAAAbbbbCCCCdddd1234"),
    "hugging face token": ("Invalid user token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
    "api_key query": ("GET /v1/models?api_key=s3cr3t-value&x=1 failed", "s3cr3t-value"),
    "api_key json": ('{"api_key": "plain-secret-42"}', "plain-secret-42"),
    "password field": ("password=hunter2hunter2", "hunter2hunter2"),
    "authorization header in json": ('{"headers": {"authorization": "Basic dXNlcjpwYXNz"}}', "dXNlcjpwYXNz"),
    "cookie header": ("Cookie: session=abc123def; csrftoken=zzz999", "abc123def"),
    "set-cookie header": ("Set-Cookie: sid=31d4d96e407aad42; Path=/", "31d4d96e407aad42"),
    "x-api-key header": ("x-api-key: 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
    "jwt": ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    "aws access key id": ("The AWS Access Key Id AKIAIOSFODNN7EXAMPLE does not exist", "AKIAIOSFODNN7EXAMPLE"),
    "aws secret": ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG"),
    "github token": ("ghp_0123456789abcdefghijABCDEFGHIJ012345 rejected", "ghp_0123456789abcdefghij"),
    "url credentials": ("proxy https://me:pa55word@proxy.example.com failed", "pa55word"),
}


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_common_key_shapes_are_masked(case):
    text, secret = SECRETS[case]
    out = redact(text)
    assert secret not in out and MASK in out


def test_an_echoed_request_dump_loses_every_credential():
    body = (
        '{"error": {"message": "Unauthorized", "request": {"headers": {"Authorization": "Bearer sk-live-0123456789abcdef", '
        '"Cookie": "session=s3cr3tcookie", "User-Agent": "python-httpx"}}}}'
    )
    out = redact(body, limit=None)
    assert "sk-live" not in out and "s3cr3tcookie" not in out
    assert "Unauthorized" in out and "python-httpx" in out  # the reason itself is kept


def test_known_secret_of_any_shape_is_removed():
    assert "my-own-Key-42" not in redact("unknown key my-own-Key-42 given", secrets=["my-own-Key-42", None, ""])


def test_ordinary_errors_are_kept_and_cut_short():
    text = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens. " * 10
    out = redact(text)
    assert out.startswith("This model's maximum context length is 4096 tokens.") and len(out) == 200
    assert redact("The model `llama-3` does not exist") == "The model `llama-3` does not exist"
    assert redact("line one\nline two") == "line one line two"


def test_secret_at_the_cut_is_not_left_half_visible():
    out = redact("x" * 190 + " Bearer abcdefghijklmnopqrstuvwxyz", limit=200)
    assert "abcdef" not in out


def test_error_text_names_the_exception():
    assert error_text(ValueError("bad key sk-abcdefghijklmnop1234")) == f"ValueError: bad key {MASK}"
