"""The ``collect:`` section of a recipe: where the store is, and the sources a pass reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, field_validator, model_validator

USER_AGENT = "lmforge-collect/1.0 (+https://github.com/lmforge/lmforge)"
_NAME = r"^[A-Za-z0-9._-]+$"


class HttpConfig(BaseModel, extra="forbid"):
    """How a source talks HTTP. ``delay``: seconds between two requests to one host (the
    crawler waits max(delay, robots Crawl-delay, Retry-After)); ``retries`` on 429, 5xx,
    timeouts and connection errors, with exponential backoff from ``backoff`` seconds
    (a Retry-After header wins, capped at ``max_retry_after``)."""

    delay: float = Field(1.0, ge=0)
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(4, ge=0)
    backoff: float = Field(0.5, ge=0)
    max_retry_after: float = Field(300.0, ge=0)
    user_agent: str = USER_AGENT
    concurrency: int = Field(1, ge=1, le=64, description="requests in flight per host")

    @field_validator("user_agent")
    @classmethod
    def _names_lmforge(cls, value: str) -> str:
        if "lmforge" not in value.lower():
            raise ValueError("the User-Agent must name lmforge (site owners must see who crawls)")
        return value


class ApiSource(BaseModel, extra="forbid"):
    """A paginated JSON API.

    ``paginate``: ``page`` (``page_param`` = start, start+1, ...), ``offset``
    (``offset_param`` += number of items), ``cursor`` (``cursor_field`` of the response, a
    dotted path, sent back as ``cursor_param``) or ``link`` (the ``Link: <...>; rel="next"``
    header). ``items``: dotted path of the list of records in the response ('' = the
    response is the list). ``fields``: record field (dotted) for text / label / id / time.
    ``auth_env``: the environment variable holding the ``auth_header`` value (never the
    secret itself in the recipe). A pass stops at an empty page, a missing next cursor or
    link, or after ``max_pages``.
    """

    type: Literal["api"] = "api"
    name: str = Field(pattern=_NAME)
    url: str
    params: dict[str, str | int | float] = {}
    paginate: Literal["page", "offset", "cursor", "link"] = "page"
    page_param: str = "page"
    page_start: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    cursor_field: str = "next_cursor"
    items: str = "items"
    fields: dict[Literal["text", "label", "id", "time"], str] = {"text": "text"}
    auth_env: str | None = None
    auth_header: str = "Authorization"
    auth_prefix: str = "Bearer "
    max_pages: int | None = Field(None, ge=1)
    http: HttpConfig = HttpConfig()

    @model_validator(mode="after")
    def _text_mapped(self) -> ApiSource:
        if "text" not in self.fields:
            raise ValueError("fields must map 'text' to a record field")
        return self


class CrawlSource(BaseModel, extra="forbid"):
    """Web pages from ``seeds``, following links within ``scope`` (``host``: the seeds'
    hosts; ``domain``: also their subdomains), up to ``max_depth`` links away and
    ``max_pages`` pages per pass. robots.txt is obeyed; only HTML is read, and a page over
    ``max_bytes`` is aborted while streaming. ``allow``/``deny``: regular expressions a
    URL must / must not match to be followed."""

    type: Literal["crawl"] = "crawl"
    name: str = Field(pattern=_NAME)
    seeds: list[str] = Field(min_length=1)
    scope: Literal["host", "domain"] = "host"
    max_depth: int = Field(3, ge=0)
    max_pages: int = Field(1000, ge=1)
    max_bytes: int = Field(2_000_000, ge=1024)
    allow: list[str] = []
    deny: list[str] = []
    http: HttpConfig = HttpConfig()

    @field_validator("allow", "deny")
    @classmethod
    def _valid_patterns(cls, values: list[str]) -> list[str]:
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return values


CollectSource = Annotated[Union[ApiSource, CrawlSource], Field(discriminator="type")]  # noqa: UP007


class CollectConfig(BaseModel, extra="forbid"):
    """``store``: a SQLAlchemy URL (``mysql+pymysql://...``, ``postgresql+psycopg://...``);
    default: ``sqlite:///runs/<name>/collect.sqlite``."""

    store: str | None = None
    sources: list[CollectSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> CollectConfig:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique: {', '.join(dup)} repeats")
        return self

    def store_url(self, run_dir: Path) -> str:
        if self.store:
            return self.store
        return f"sqlite:///{(Path(run_dir) / 'collect.sqlite').as_posix()}"
