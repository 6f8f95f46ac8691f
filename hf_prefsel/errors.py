"""Every error hf_prefsel raises on purpose, in one place.

Each message says what was wrong and what to do about it. Catch `HfPrefselError` to
catch them all.
"""

from __future__ import annotations


class HfPrefselError(Exception):
    """Base class of all hf_prefsel errors."""


class ConfigError(HfPrefselError, ValueError):
    """A config object or argument has an invalid value."""


class DataError(HfPrefselError, ValueError):
    """The input data is unusable: a missing column, an empty or non-string value, a malformed row."""


class MissingColumnError(DataError, KeyError):
    """A required column is absent from the dataset.

    `option` is the setting that chose the column (a config field, possibly dotted like `cluster.tags_column`, or a
    keyword argument): the message names it as the fix. `flag` is that setting's command-line flag, filled in by
    `hf-prefsel` (the library knows no flags). Without `option` (a column the method needs by schema) the message
    keeps the generic advice.
    """

    def __init__(self, column: str, available: list[str] | tuple[str, ...] = (), *, option: str | None = None):
        self.column = column
        self.available = list(available)
        self.option = option
        self.flag: str | None = None
        super().__init__(column)

    def __str__(self) -> str:  # built when shown, so a front-end can add its flag first
        hint = f" Available columns: {', '.join(self.available)}." if self.available else ""
        if self.option:
            where = f"`{self.option}`" + (f" (CLI: `{self.flag}`)" if self.flag else "")
            target = "one of them" if self.available else "the dataset's column"
            fix = f"Set {where} to {target}, or rename the column with `ds.rename_column`."
        else:
            fix = "Pass the right column name in the config, or rename the column with `ds.rename_column`."
        return f"Column {self.column!r} is missing from the dataset.{hint} {fix}"

    def __reduce__(self) -> tuple:  # crosses process boundaries (Ray, datasets' workers) whole
        return type(self), (self.column, self.available), {"option": self.option, "flag": self.flag}


class EndpointError(HfPrefselError):
    """An LLM endpoint answered with an error that retries could not fix."""


class EndpointUnavailableError(EndpointError, ConnectionError):
    """No endpoint could be reached (connection refused, DNS failure, timeouts) after all retries."""


class EndpointAccessError(EndpointError):
    """An endpoint refused access (HTTP 401/403) or has no such route or model (404): every request would fail the
    same way, so it is raised at once, not retried; the message says whether to check the token, the URL or the model."""


class StructuredOutputError(HfPrefselError, ValueError):
    """The model's reply could not be parsed or validated against the requested schema, repairs included."""


class BudgetExceededError(HfPrefselError):
    """The configured call or token budget is spent; work done so far is kept in the request cache."""


class ArtifactError(HfPrefselError):
    """An artifact folder or Hub repo is missing files, has the wrong type or an unsupported format version."""


class HubUnavailableError(ArtifactError, ConnectionError):
    """The Hugging Face Hub could not be reached (offline mode, no network, Hub down); use a local path or retry."""


class HubPushError(HfPrefselError):
    """The Hub refused or broke off a push (a rejected or read-only token, no rights on the namespace, a server error).

    The message says what was and was not uploaded and where the local copy is (`local_copy`, when one was kept).
    """

    def __init__(self, message: str, local_copy: str | None = None):
        super().__init__(message)
        self.local_copy = local_copy


class ClusterError(HfPrefselError):
    """A Ray cluster run could not go on: every worker was lost, or one stopped making progress."""


class ClusterUnavailableError(ClusterError, ConnectionError):
    """No Ray cluster answers at the given address (nothing listening, or not a Ray head node)."""


class ClusterStalledError(ClusterError, TimeoutError):
    """A cluster worker finished no request for longer than the stall timeout (a hung worker)."""


class DependencyError(HfPrefselError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the package {package!r}, which is not installed. "
            f"Install it with `pip install 'hf_prefsel[{extra}]'`."
        )
