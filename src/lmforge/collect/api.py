"""A pass over a paginated JSON API into the store.

The cursor is the position of the next page to fetch ({"next": ..., "last": ...}: page
number, offset, cursor token or URL). Each page's items and the cursor after it are
committed in one transaction, so a pass killed at any point resumes at the first page
not committed: no committed page is fetched again within a pass, and no item is lost.
When a pass reaches the end (an empty page, no next cursor or link) the cursor goes back
to the last page that held items: the next pass re-reads that one page (items added
since are stored, unchanged ones are no-ops) and goes on from there.

A page that fails (HTTP error after retries, not JSON, no item list) becomes an error row
and the pass goes on with the next page where the position allows it (page, offset);
with a cursor or Link header there is no next page to go to, so the pass stops there and
the next pass retries it. Three failed pages in a row end a pass.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from lmforge.collect.config import ApiSource
from lmforge.collect.http import FetchError, PoliteClient
from lmforge.collect.store import Item, Store
from lmforge.errors import LmforgeError

MAX_ERRORS_IN_A_ROW = 3
_LINK_NEXT = re.compile(r"<([^>]+)>\s*;[^,]*\brel\s*=\s*\"?next\"?", re.I)


@dataclass
class PassResult:
    source: str
    pages: int = 0
    items: int = 0
    new: int = 0
    errors: int = 0
    finished: bool = False
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "pages": self.pages,
            "items": self.items,
            "new": self.new,
            "errors": self.errors,
            "finished": self.finished,
        }


def dotted(data: Any, path: str) -> Any:
    """data['a']['b'] for 'a.b' (list indices as numbers); '' is data itself; None if absent."""
    if not path:
        return data
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def auth_headers(source: ApiSource) -> dict[str, str]:
    if source.auth_env is None:
        return {}
    value = os.environ.get(source.auth_env)
    if not value:
        raise LmforgeError(
            f"collect source {source.name!r}: environment variable {source.auth_env} "
            "(its auth_env) is not set"
        )
    return {source.auth_header: f"{source.auth_prefix}{value}"}


def _start(source: ApiSource) -> dict:
    first: Any = {
        "page": source.page_start,
        "offset": 0,
        "cursor": None,
        "link": source.url,
    }[source.paginate]
    return {"next": first, "last": first}


def _request(source: ApiSource, position: Any) -> tuple[str, dict]:
    params = dict(source.params)
    if source.paginate == "link":
        return position, {}
    if source.paginate == "page":
        params[source.page_param] = position
    elif source.paginate == "offset":
        params[source.offset_param] = position
    elif position is not None:
        params[source.cursor_param] = position
    return source.url, params


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def page_items(source: ApiSource, records: list, page_url: str, status: int) -> list[Item]:
    """Items of one page; a record without a text string becomes an error item."""
    items = []
    for i, record in enumerate(records):
        where = f"{page_url} item {i}"
        record_id = _scalar(dotted(record, source.fields["id"])) if "id" in source.fields else None
        text = dotted(record, source.fields["text"])
        fields = {
            name: _scalar(dotted(record, path))
            for name, path in source.fields.items()
            if name in ("label", "time")
        }
        if not isinstance(text, str):
            problem = "missing" if text is None else f"a {type(text).__name__}, not a string"
            items.append(
                Item(
                    "",
                    key=record_id or where,
                    url=page_url,
                    http_status=status,
                    error=f"{where}: text field {source.fields['text']!r} is {problem}",
                )
            )
            continue
        items.append(Item(text, key=record_id, url=page_url, http_status=status, **fields))
    return items


def _next_position(
    source: ApiSource, position: Any, count: int, body: Any, resp_headers: httpx.Headers
) -> Any:
    """The position after a page of ``count`` items; None when there is no next page."""
    if source.paginate == "page":
        return position + 1
    if source.paginate == "offset":
        return position + count
    if source.paginate == "cursor":
        token = dotted(body, source.cursor_field)
        return None if token in (None, "") else str(token)
    match = _LINK_NEXT.search(resp_headers.get("link", ""))
    return httpx.URL(position).join(match.group(1)).__str__() if match else None


def run_api_pass(
    source: ApiSource,
    store: Store,
    client: PoliteClient | None = None,
    on_page: Callable[[PassResult], None] | None = None,
) -> PassResult:
    """One incremental pass over ``source``; see the module docstring."""
    headers = auth_headers(source)
    state = store.state(source.name) or _start(source)
    result = PassResult(source.name)
    own = client is None
    client = client or PoliteClient(source.http)
    errors_in_a_row = 0
    try:
        while source.max_pages is None or result.pages < source.max_pages:
            position = state["next"]
            url, params = _request(source, position)
            page_url = str(httpx.URL(url, params=params)) if params else url
            result.pages += 1
            try:
                fetched = client.get(url, headers=headers, params=params or None)
                if fetched.status >= 400:
                    raise FetchError("http_error", f"HTTP {fetched.status}", fetched.status)
                try:
                    body = json.loads(fetched.content)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise FetchError("malformed_json", f"not JSON: {exc}", fetched.status) from None
                records = dotted(body, source.items)
                if not isinstance(records, list):
                    raise FetchError(
                        "malformed_json",
                        f"no list of items at {source.items or '(top level)'!r}",
                        fetched.status,
                    )
            except FetchError as exc:
                errors_in_a_row += 1
                result.errors += 1
                message = f"{page_url}: {exc}"
                result.messages.append(message)
                error = Item("", key=page_url, url=page_url, http_status=exc.status, error=message)
                size = state.get("size", 0)
                can_skip = source.paginate == "page" or (source.paginate == "offset" and size)
                stop = not can_skip or errors_in_a_row >= MAX_ERRORS_IN_A_ROW
                if can_skip:
                    step = 1 if source.paginate == "page" else size
                    state = {**state, "next": position + step}
                store.save_page(source.name, [error], state)
                if stop:
                    break
                continue
            errors_in_a_row = 0
            items = page_items(source, records, page_url, fetched.status)
            result.items += len(items)
            result.errors += sum(1 for item in items if item.error)
            following = _next_position(source, position, len(records), body, fetched.headers)
            if not records or following is None:
                last = position if records else state["last"]
                state = {**state, "next": last, "last": last}
                result.new += store.save_page(source.name, items, state)
                result.finished = True
                break
            state = {"next": following, "last": position, "size": len(records)}
            result.new += store.save_page(source.name, items, state)
            if on_page is not None:
                on_page(result)
    finally:
        if own:
            client.close()
    return result
