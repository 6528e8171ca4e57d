"""Drop-in parity with the official SDK (`opperai==1.7.2`), measured, not transcribed: the same
cases run through both clients against the local server must send the same query strings and
give the same items and errors.

The official SDK lives in a venv of its own (`nox -s tests` makes it and sets
`OFFICIAL_PYTHON`); `tests/release/parity_driver.py` runs the cases in each interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.servers import LocalServer

#: One worker runs them all, so that both SDKs are run once (`sides`), not once per worker.
pytestmark = pytest.mark.xdist_group("parity")
DRIVER = ROOT / "tests" / "release" / "parity_driver.py"
SEED = {"fields": ["completion_tokens", "total_tokens"], "group_by": ["model", "project.name"]}
WINDOW = {"from_date": {"$datetime": "2026-11-01T00:00:00+00:00"}}

CASES: dict[str, dict[str, Any]] = {
    "seed example": {"args": SEED},
    "no arguments": {"args": {}},
    "aware UTC, date, enum": {
        "args": {
            "from_date": {"$datetime": "2026-10-01T00:00:00+00:00"},
            "to_date": {"$date": "2026-11-15"},
            "granularity": {"$granularity": "DAY"},
            "fields": ["total_tokens"],
        }
    },
    "other offset, naive, microseconds, string enum": {
        "args": {
            "from_date": {"$datetime": "2026-10-01T03:00:00+02:00"},
            "to_date": {"$datetime": "2026-11-05T12:30:00.000005"},
            "granularity": "hour",
            "group_by": ["model"],
        }
    },
    "ISO strings": {"args": {"from_date": "2026-10-01", "to_date": "2026-11-01T00:00:00Z"}},
    "encoding of odd field names": {"args": {"fields": ["a b", "ä,&="], "group_by": ["x/y"]}},
    "empty lists and None": {"args": {"fields": [], "group_by": [], "granularity": None}},
    "400": {"args": WINDOW, "script": [{"status": 400, "json": {"detail": "bad range"}}]},
    "401": {
        "args": {},
        "script": [
            {
                "status": 401,
                "json": {"type": "UnauthorizedError", "message": "Nope", "detail": None},
            }
        ],
    },
    "404": {
        "args": {},
        "script": [{"status": 404, "json": {"message": "gone", "detail": {"id": 1}}}],
    },
    "422": {
        "args": {},
        "script": [
            {"status": 422, "json": {"detail": [{"loc": ["query", "x"], "msg": "m", "type": "t"}]}}
        ],
    },
    "503 HTML": {
        "args": {},
        "script": [{"status": 503, "body": "<html>down</html>", "content_type": "text/html"}],
    },
    "500 JSON": {
        "args": {},
        "script": [{"status": 500, "json": {"type": "X", "message": "boom", "detail": None}}],
    },
    "418 empty": {"args": {}, "script": [{"status": 418, "body": ""}]},
    "302 not followed": {
        "args": {},
        "script": [{"status": 302, "headers": {"Location": "/elsewhere"}}],
    },
    "404 wrong shape": {"args": {}, "script": [{"status": 404, "json": {"foo": 1}}]},
    "200 wrong shape": {"args": {}, "script": [{"json": {"a": 1}}]},
    "200 missing key": {"args": {}, "script": [{"json": [{"cost": "1"}]}]},
    "200 not JSON": {
        "args": {},
        "script": [{"body": "not json", "content_type": "application/json"}],
    },
    "retried until it works": {
        "args": {"retries": {"$retries": ["backoff", [10, 50, 1.5, 10_000], False]}},
        "script": [
            {"status": 503, "body": "busy"},
            {"status": 429, "headers": {"Retry-After": "0"}},
        ],
    },
    "not retried with another strategy": {
        "args": {"retries": {"$retries": ["none", [10, 50, 1.5, 10_000], False]}},
        "script": [{"status": 503, "body": "busy"}],
    },
    "granularity=week": {"args": {"granularity": "week"}},
    "bare string fields": {"args": {"fields": "total_tokens"}},
    "non-string group_by": {"args": {"group_by": [1, 2]}},
    "not a date": {"args": {"from_date": "not-a-date"}},
}


def _run(python: str, sdk: str, server: LocalServer) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(DRIVER), sdk, server.url],
        input=json.dumps(list(CASES.values())),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "tests" / "release",
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclass(frozen=True)
class Sides:
    """Each side's outcomes by case, and which SDK it really ran."""

    ours: dict[str, Any]
    theirs: dict[str, Any]
    our_sdk: dict[str, str]
    their_sdk: dict[str, str]


@cache
def _sides(official: str, server_url: str) -> Sides:
    server = LocalServer(server_url.removesuffix("/v2"))
    ours, theirs = _run(sys.executable, "opperai_usage", server), _run(official, "opperai", server)
    return Sides(
        dict(zip(CASES, ours["outcomes"], strict=True)),
        dict(zip(CASES, theirs["outcomes"], strict=True)),
        ours["sdk"],
        theirs["sdk"],
    )


def _official_python() -> str:
    official = os.environ.get("OFFICIAL_PYTHON")
    if not official:
        pytest.fail("set OFFICIAL_PYTHON to a python with opperai==1.7.2 (nox -s tests does)")
    return official


@pytest.fixture(scope="module")
def sides(server: LocalServer) -> Sides:
    return _sides(_official_python(), server.url)


@pytest.fixture(scope="module")
def outcomes(sides: Sides) -> tuple[dict[str, Any], dict[str, Any]]:
    return sides.ours, sides.theirs


def test_the_official_side_is_the_pinned_official_sdk(sides: Sides) -> None:
    """Parity must not compare this client with itself: the other side is `opperai` at the
    version nox pins (`OFFICIAL_SDK`), imported from the official venv."""
    pinned = os.environ.get("OFFICIAL_SDK", "")
    assert pinned.startswith("opperai=="), "set OFFICIAL_SDK (nox -s tests does)"
    theirs = sides.their_sdk
    assert (theirs["module"], theirs["distribution"]) == ("opperai", "opperai")
    assert f"opperai=={theirs['version']}" == pinned
    venv = Path(_official_python()).absolute().parent.parent  # not resolved: bin/python links out
    assert Path(theirs["file"]).is_relative_to(venv)
    assert sides.our_sdk["module"] == "opperai_usage"
    assert not Path(sides.our_sdk["file"]).is_relative_to(venv)


@pytest.mark.parametrize("case", list(CASES))
def test_same_query_items_and_errors_as_the_official_sdk(
    outcomes: tuple[dict[str, Any], dict[str, Any]], case: str
) -> None:
    ours, theirs = dict(outcomes[0][case]), dict(outcomes[1][case])
    # A deliberate difference: `str()` of our errors ends with the server's request id (each
    # answer has its own), so that logs carry it.
    request_id, theirs_id = ours.pop("request_id", None), theirs.pop("request_id", None)
    if request_id is not None:
        assert theirs_id is not None
        suffix = f" (request id {request_id})"
        assert ours["message"].endswith(suffix)
        ours["message"] = ours["message"].removesuffix(suffix)
    if theirs.get("error") == "ResponseValidationError":
        # Same class; the cause's wording is pydantic's there and says more here.
        assert (ours["error"], ours["status"], ours["query"], ours["attempts"]) == (
            "ResponseValidationError",
            theirs["status"],
            theirs["query"],
            theirs["attempts"],
        )
    else:
        assert ours == theirs


def test_the_cases_cover_results_and_every_error_class(
    outcomes: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    seen = {outcome.get("error", "items") for outcome in outcomes[1].values()}
    assert seen == {
        "items", "BadRequestError", "UnauthorizedError", "NotFoundError",
        "RequestValidationError", "APIError", "ResponseValidationError", "ValueError",
    }  # fmt: skip
    assert outcomes[1]["seed example"]["items"], "the seed example must compare real items"
