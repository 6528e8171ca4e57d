"""`nox -s live-contract -- [--server-url URL]`: does the live API still answer as openapi.yaml
says?

A fixed set of valid calls (the seed's query, one per granularity, one over last month) goes
to the API (default: openapi.yaml's server) with the key from OPPER_API_KEY or
OPPER_HTTP_BEARER. openapi-core checks each answer against openapi.yaml: its status (a valid
call is answered 200), its headers (the content type, and any header the spec documents) and
its body. Every mismatch is reported with the field and the value seen.

Exit 0 when every answer conforms, 1 on drift, 2 when it cannot check: no key (or a key the
API refuses), or no connection.

What it prints goes into CI logs, and a server or proxy may echo the Authorization header into
its answer: the key is removed from the answer, in every form it can take there, before
anything is checked or printed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from jsonschema.exceptions import ValidationError
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tools.extract import PATH, operation
from tools.sources import parse

try:
    from opperai_usage._redact import redact
except ModuleNotFoundError:  # nox's session installs the tools' needs, not the package:
    # _redact needs only the standard library, so it is read from this checkout.
    sys.path.append(str(Path(__file__).resolve().parent.parent / "overlays"))
    from opperai_usage._redact import redact

SPEC = Path("openapi.yaml")
KEY_VARIABLES = ("OPPER_API_KEY", "OPPER_HTTP_BEARER")
TIMEOUT_S = 60.0
#: Answers worth a second try before they count as drift, and the waits between tries.
TRANSIENT = frozenset({429, 502, 503, 504})
WAITS_S = (1.0, 2.0)
#: The seed's example (the official SDK's documentation of get_usage).
SEED_QUERY = [
    ("fields", "completion_tokens"),
    ("fields", "total_tokens"),
    ("group_by", "model"),
    ("group_by", "project.name"),
]

Query = list[tuple[str, str]]
#: Text a server sent -> that text without the key.
Hide = Callable[[str], str]


class CannotCheck(Exception):
    """No answer to check: no key, a key the API refuses, or no connection (exit 2)."""


def hider(key: str) -> Hide:
    """What takes `key` out of text a server sent: raw, JSON-escaped, URL-encoded, HTML-escaped
    or with its whitespace changed (_redact), and as Python's repr writes it (the schema
    errors quote the values they saw so)."""
    forms = [key, repr(key)[1:-1]]
    return lambda text: redact(text, forms)


def calls(spec: dict[str, Any], today: dt.date) -> list[tuple[str, Query]]:
    """The fixed set of valid calls, each a name and its query. The granularities are the
    spec's own enum; the range is last month, in UTC."""
    this_month = dt.datetime(today.year, today.month, 1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    return [
        ("the seed's query", SEED_QUERY),
        *((f"granularity={g}", [("granularity", g)]) for g in granularities(spec)),
        (
            "last month, by day",
            [
                ("from_date", f"{last_month.isoformat()}Z"),
                ("to_date", f"{this_month.isoformat()}Z"),
                ("granularity", "day"),
            ],
        ),
    ]


def granularities(spec: dict[str, Any]) -> list[str]:
    """The enum values of the `granularity` parameter, following `$ref`s and unions."""
    (parameter,) = [
        p for p in operation(spec, str(SPEC))["parameters"] if p["name"] == "granularity"
    ]
    found: list[str] = []
    pending = [parameter["schema"]]
    while pending:
        schema = pending.pop(0)
        if "$ref" in schema:
            target: Any = spec
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            pending.append(target)
        found += [value for value in schema.get("enum", []) if value not in found]
        pending += schema.get("anyOf", []) + schema.get("oneOf", [])
    return found


@dataclass
class _Request:
    """An `openapi_core.protocols.Request`: only what finds the operation is needed."""

    host_url: str
    path: str
    parameters: RequestParameters
    method: str = "get"
    body: bytes | None = None
    content_type: str = ""


@dataclass(frozen=True)
class _Response:
    """An `openapi_core.protocols.Response` made from an httpx answer."""

    status_code: int
    data: bytes
    content_type: str
    headers: Headers


class Checker:
    """openapi.yaml, served from `server_url`, as openapi-core checks answers against it;
    `hide` takes the key out of each answer before it is checked."""

    def __init__(self, spec: dict[str, Any], server_url: str, hide: Hide) -> None:
        self.hide = hide
        served = copy.deepcopy(spec)
        served["servers"] = [{"url": server_url}]
        self.openapi = OpenAPI.from_dict(served)
        self.documented = sorted(operation(spec, str(SPEC))["responses"])
        parts = urlsplit(server_url)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path.rstrip("/") + PATH

    def mismatches(self, query: Query, answer: httpx.Response) -> list[str]:
        """Every way `answer` departs from the spec, each naming the field and the value."""
        found = []
        text = self.hide(answer.text)  # whole, before anything is cut short
        if answer.status_code != 200:
            listed = ", ".join(self.documented)
            known = str(answer.status_code) in self.documented
            note = "" if known else f" (undocumented: {SPEC} lists {listed})"
            body = text[:200].replace("\n", " ")
            found.append(
                f"status: {answer.status_code}, expected 200 for a valid call{note}; body: {body!r}"
            )
        request = _Request(
            self.host_url, self.path, RequestParameters(query=ImmutableMultiDict(query))
        )
        content = answer.content
        if text != answer.text:
            content = text.encode(answer.encoding or "utf-8", errors="replace")
        headers = [(name, self.hide(value)) for name, value in answer.headers.items()]
        response = _Response(
            answer.status_code,
            content,
            self.hide(answer.headers.get("content-type", "")),
            Headers(headers),
        )
        for error in self.openapi.iter_response_errors(request, response):
            found += [self.hide(line) for line in _describe(error, self.hide)]
        return found


def _describe(error: Exception, hide: Hide) -> Iterator[str]:
    """openapi-core's error as lines, one per schema error (grouped over the items)."""
    schema_errors = getattr(error.__cause__, "schema_errors", None) or getattr(
        error, "schema_errors", None
    )
    if not schema_errors:
        cause = error.__cause__ or error
        yield f"{_kind(cause)}: {cause}"
        return
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema_error in schema_errors:
        field, text = _schema_error(schema_error, hide)
        key = (re.sub(r"\[\d+\]", "[*]", field), str(schema_error.validator))
        groups.setdefault(key, []).append((field, text))
    for seen in groups.values():
        (field, text), more = seen[0], len(seen) - 1
        yield f"{field}: {text}" + (f" (and {more} more like it)" if more else "")


def _kind(error: BaseException) -> str:
    """Which part of the answer an openapi-core error is about, by its class."""
    name = type(error).__name__
    if name == "MediaTypeNotFound":
        return "content-type"
    return "headers" if "Header" in name else "body"


def _schema_error(error: ValidationError, hide: Hide) -> tuple[str, str]:
    field = "body" + "".join(
        f"[{part}]"
        if isinstance(part, int)
        else f".{part}"
        if part.isidentifier()
        else f"[{part!r}]"
        for part in error.absolute_path
    )
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in error.instance]
        field = field + "." + missing[0] if missing else field
        seen = hide(json.dumps(error.instance))[:120]
        return field, f"missing, and required (the item: {seen})"
    return field, error.message


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s live-contract --",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--server-url", help="default: openapi.yaml's server")
    arguments = parser.parse_args(argv)
    spec = parse(SPEC.read_bytes(), str(SPEC))
    server_url = (arguments.server_url or spec["servers"][0]["url"]).rstrip("/")
    try:
        key = _key()
    except CannotCheck as problem:
        print(f"live-contract: {problem}", file=sys.stderr)
        return 2
    hide = hider(key)
    checker = Checker(spec, server_url, hide)
    planned = calls(spec, dt.datetime.now(dt.timezone.utc).date())
    drift = 0
    try:
        with httpx.Client(timeout=TIMEOUT_S, headers=_headers(key)) as client:
            for name, query in planned:
                answer = _get(client, f"{server_url}{PATH}", query)
                found = checker.mismatches(query, answer)
                drift += bool(found)
                print(f"{'DRIFT' if found else 'ok':5}  {name}: {answer.status_code}")
                for mismatch in found:
                    print(f"       {mismatch}")
    except CannotCheck as problem:  # httpx's message may quote what the server sent
        print(f"live-contract: {hide(str(problem))}", file=sys.stderr)
        return 2
    conform = len(planned) - drift
    print(f"{server_url}: {conform} of {len(planned)} answers conform to {SPEC}")
    return 1 if drift else 0


def _key() -> str:
    for variable in KEY_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    raise CannotCheck(f"no API key: set OPPER_API_KEY (or {KEY_VARIABLES[1]})")


def _headers(key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json",
        "User-Agent": "opperai-usage-live-contract",
    }


def _get(client: httpx.Client, url: str, query: Query) -> httpx.Response:
    """One valid call; transient answers are tried again before they count."""
    target = f"{url}?{urlencode(query)}"
    for wait in (*WAITS_S, None):
        try:
            answer = client.get(target)
        except httpx.HTTPError as error:
            raise CannotCheck(f"cannot reach {url}: {type(error).__name__}: {error}") from None
        if answer.status_code in (401, 403):
            raise CannotCheck(
                f"the API refused the key ({answer.status_code}): check OPPER_API_KEY"
            )
        if answer.status_code not in TRANSIENT or wait is None:
            return answer
        time.sleep(wait)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    sys.exit(main())
