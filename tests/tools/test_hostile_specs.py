"""The spec tools on hostile input: descriptions come from URLs, so a description (or the
server sending it) may be built to exhaust them, and `live-contract` may be answered by a
server that echoes the key. Each is refused with one line and exit 2 (a report, for
live-contract), never a traceback, a hang or the key in a CI log. Over real sockets."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.support.servers import serving
from tests.support.toolrun import UPSTREAM, Run, tool, upstream, write_json
from tools import sources
from tools.sources import MAX_DEPTH, InputError, parse, read

Document = dict[str, Any]
#: What a test's server does with a request: it answers through the handler, and ends when
#: the event is set (the test is over) or the client hangs up.
Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]

ITEM = "#/components/schemas/GetUsageResultItem"


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for every answer to end


@pytest.fixture
def answering() -> Iterator[Callable[[Answer], str]]:
    """Start a loopback server that answers every GET with `answer`; its base URL. All are
    told to stop, and stopped, when the test ends."""
    stop = threading.Event()
    with contextlib.ExitStack() as servers:

        def start(answer: Answer) -> str:
            class Handler(BaseHTTPRequestHandler):
                def do_GET(self) -> None:
                    with contextlib.suppress(OSError):  # the client hung up
                        answer(self, stop)

                def log_message(self, format: str, *args: Any) -> None:
                    pass

            server = servers.enter_context(serving(_Server(("127.0.0.1", 0), Handler)))
            return f"http://127.0.0.1:{server.server_port}"

        try:
            yield start
        finally:
            stop.set()  # before the servers close: their answers end first


def _one_line_exit_2(run: Run, says: str) -> None:
    assert run.code == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert says in run.stderr


def _both_tools(tmp_path: Path, source: Path) -> list[Run]:
    """spec-diff of `source` against the fixture, then update-spec of `source` (writing into
    tmp_path, never the repository's openapi.yaml)."""
    return [
        tool("spec_diff", str(UPSTREAM), str(source)),
        tool("update_spec", str(source), "--output", str(tmp_path / "openapi.yaml")),
    ]


# -- 1. YAML aliases


BILLION_LAUGHS = """\
openapi: 3.1.0
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Before: about 50 s of expanding, then MemoryError (with 3 GB)."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    for run in _both_tools(tmp_path, bomb):
        _one_line_exit_2(run, "bomb.yaml has a YAML alias (*a, line 3): aliases are not read")
    assert not (tmp_path / "openapi.yaml").exists()


def test_any_yaml_alias_is_refused_as_json_has_none() -> None:
    text = b"openapi: 3.1.0\ninfo: &info {title: t, version: '1'}\nx-copy: *info\n"
    with pytest.raises(InputError, match=r"^s.yaml has a YAML alias \(\*info, line 3\)"):
        parse(text, "s.yaml")


# -- 2. Nesting and $ref cycles


def _nested_json(levels: int) -> bytes:
    """An OpenAPI-looking object whose deepest array is `levels` levels down (it counts)."""
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return f'{{"openapi": "3.1.0", "x": {inner}}}'.encode()


def _nested_yaml(levels: int) -> bytes:
    """The same in block style: mappings inside mappings."""
    lines = ["openapi: 3.1.0"] + [f"{'  ' * i}x:" for i in range(levels)]
    return ("\n".join(lines) + " 1\n").encode()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.json", _nested_json(100_000)),
        ("deep.yaml", b"openapi: 3.1.0\nx: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ],
)
def test_a_document_nested_100000_levels_is_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    """Before: a RecursionError traceback (json's decoder, PyYAML's composer)."""
    source = tmp_path / name
    source.write_bytes(content)
    for run in _both_tools(tmp_path, source):
        _one_line_exit_2(run, f"{name} is nested more than {MAX_DEPTH} levels deep")


@pytest.mark.parametrize("make", [_nested_json, _nested_yaml])
def test_nesting_up_to_the_limit_is_read_and_beyond_it_refused(
    make: Callable[[int], bytes],
) -> None:
    assert parse(make(MAX_DEPTH), "ok")["openapi"] == "3.1.0"
    with pytest.raises(InputError, match=f"^deep is nested more than {MAX_DEPTH} levels deep"):
        parse(make(MAX_DEPTH + 1), "deep")


def _schemas(document: Document) -> Document:
    schemas: Document = document["components"]["schemas"]
    return schemas


def _self_ref(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"] = {"$ref": ITEM}


def _two_step_cycle(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"] = {"$ref": "#/components/schemas/Loop"}
    _schemas(document)["Loop"] = {"$ref": ITEM}


def _self_ref_beside_fields(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"]["$ref"] = ITEM


def _all_of_itself(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"] = {"allOf": [{"$ref": ITEM}]}


def _any_of_itself(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"]["anyOf"] = [{"$ref": ITEM}, {"type": "null"}]


def _whole_document(document: Document) -> None:
    _schemas(document)["GetUsageResultItem"]["properties"]["all"] = {"$ref": "#"}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_self_ref, f"$ref cycle at {ITEM} -> {ITEM} "),
        (_two_step_cycle, f"$ref cycle at {ITEM} -> #/components/schemas/Loop -> {ITEM} "),
        (_self_ref_beside_fields, f"$ref cycle at {ITEM} -> {ITEM} "),
        (_all_of_itself, f"$ref cycle at {ITEM}/allOf/0 -> {ITEM} "),
        (_any_of_itself, f"$ref cycle at {ITEM}/anyOf/0 -> {ITEM} "),
        (_whole_document, "only references to #/components/... are read, not #"),
    ],
    ids=["itself", "two steps", "itself beside fields", "allOf itself", "anyOf itself", "#"],
)
def test_a_ref_cycle_is_named_and_refused(
    tmp_path: Path, change: Callable[[Document], None], says: str
) -> None:
    """Before: update-spec ended in a RecursionError inside openapi-spec-validator; spec-diff
    too for allOf/anyOf, and for a plain cycle it reported the items as "any JSON value"."""
    document = upstream()
    change(document)
    source = write_json(tmp_path / "cycle.json", document)
    for run in _both_tools(tmp_path, source):
        _one_line_exit_2(run, f"cycle.json: {says}")
    assert not (tmp_path / "openapi.yaml").exists()


@pytest.mark.parametrize("where", ["URL", "file beside it"])
def test_an_external_ref_is_refused_and_nothing_is_fetched(tmp_path: Path, where: str) -> None:
    """A description from a URL may point anywhere: a `$ref` to another document (a URL on
    this machine that counts its requests, or a file next to the source) is refused by name,
    and nothing is read from it."""
    asked: list[str] = []

    class Counting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Counting)) as server:
        if where == "URL":
            ref = f"http://127.0.0.1:{server.server_port}/other.json#/Item"
        else:
            write_json(tmp_path / "other.json", {"Item": {"type": "object"}})
            ref = "other.json#/Item"
        document = upstream()
        _schemas(document)["GetUsageResultItem"]["properties"]["other"] = {"$ref": ref}
        source = write_json(tmp_path / "external.json", document)
        for run in _both_tools(tmp_path, source):
            _one_line_exit_2(run, f"only references to #/components/... are read, not {ref}")
    assert asked == []
    assert not (tmp_path / "openapi.yaml").exists()


def test_a_recursive_type_is_still_read(tmp_path: Path) -> None:
    """A tree (items that refer to the schema they are in) is a real type, not a cycle."""
    document = upstream()
    children = {"type": "array", "items": {"$ref": ITEM}}
    _schemas(document)["GetUsageResultItem"]["properties"]["children"] = children
    source = write_json(tmp_path / "tree.json", document)
    diff, update = _both_tools(tmp_path, source)
    assert diff.code == 0, diff.stderr
    assert "non-breaking  response 200 body: new field `[].children`" in diff.stdout
    assert update.code == 0, update.stderr
    assert (
        "$ref: '#/components/schemas/GetUsageResultItem'" in (tmp_path / "openapi.yaml").read_text()
    )


def test_references_nested_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    """500 schemas, each a field holding the next: before, spec-diff ended in a
    RecursionError (classify) and update-spec in one inside openapi-spec-validator."""
    document = upstream()
    links = 500
    _schemas(document)["GetUsageResultItem"]["properties"]["next"] = {
        "$ref": "#/components/schemas/Link0"
    }
    for number in range(links):
        last = number == links - 1
        field = {"type": "string"} if last else {"$ref": f"#/components/schemas/Link{number + 1}"}
        _schemas(document)[f"Link{number}"] = {"type": "object", "properties": {"next": field}}
    source = write_json(tmp_path / "chain.json", document)
    says = f"chain.json is nested more than {MAX_DEPTH} levels deep, counting through its $refs"
    _one_line_exit_2(tool("spec_diff", str(source), str(source)), says)
    _one_line_exit_2(
        tool("update_spec", str(source), "--output", str(tmp_path / "openapi.yaml")), says
    )


# -- 3. Downloads: one deadline, a size limit


def _dribble(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """A byte every 50 ms of a 100 kB body: each read is quick, the whole would take 83 min."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"{")
    while not stop.wait(0.05):
        handler.wfile.write(b" ")


@pytest.mark.timeout(30)
def test_a_dribbling_download_ends_at_its_deadline(
    answering: Callable[[Answer], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: httpx's timeout is per read, so the download went on (still running at 75 s
    with the real 30 s)."""
    monkeypatch.setattr(sources, "TIMEOUT_S", 1.0)
    url = answering(_dribble) + "/openapi.json"
    started = time.monotonic()
    with pytest.raises(InputError) as refused:
        read(url)
    took = time.monotonic() - started
    assert str(refused.value) == f"cannot read {url}: not downloaded within 1 s"
    assert 0.9 < took < 5, took


def _declares_a_terabyte(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**12))
    handler.end_headers()
    handler.wfile.write(b'{"openapi": "3.1.0", ')
    stop.wait()


def test_a_body_declared_too_large_is_refused_before_it_is_read(
    answering: Callable[[Answer], str],
) -> None:
    """Before: it read until its 30 s read timeout."""
    url = answering(_declares_a_terabyte) + "/openapi.json"
    run = tool("spec_diff", url, str(UPSTREAM))
    _one_line_exit_2(run, f"cannot read {url}: larger than {sources.MAX_BYTES:,} bytes")


def _endless(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """No Content-Length, and 10 kB every 10 ms for ever."""
    handler.send_response(200)
    handler.end_headers()
    while not stop.wait(0.01):
        handler.wfile.write(b" " * 10_000)


def _gzip_bomb(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """10 kB that inflate to 10 MB."""
    body = gzip.compress(b" " * 10_000_000)
    handler.send_response(200)
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("answer", [_endless, _gzip_bomb])
def test_a_body_larger_than_the_limit_is_refused_as_it_comes(
    answering: Callable[[Answer], str], monkeypatch: pytest.MonkeyPatch, answer: Answer
) -> None:
    """Counted as inflated. Before: the endless one was read until memory ran out."""
    monkeypatch.setattr(sources, "MAX_BYTES", 1_000_000)
    url = answering(answer) + "/openapi.json"
    with pytest.raises(InputError) as refused:
        read(url)
    assert str(refused.value) == f"cannot read {url}: larger than 1,000,000 bytes"


def test_a_file_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_BYTES", 1000)
    large = tmp_path / "large.json"
    large.write_bytes(b" " * 1001)
    with pytest.raises(InputError, match=r"large.json: larger than 1,000 bytes$"):
        read(str(large))


# -- 4. live-contract: the key never in its report

#: `"`, `\`, `/`, `+`, `&` and two spaces: each encoding below spells it differently.
KEY = 'opk_"live\\Q7wX9vT3mR8"  two  spaces/+&?'
#: In every spelling of KEY: if it is in the output, so is (some of) the key.
KEY_CORE = "Q7wX9vT3mR8"


def _echo(status: int, content_type: str, body: Callable[[str], str]) -> Answer:
    """A server answering with the request's Authorization header inside its body."""

    def answer(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        payload = body(handler.headers["Authorization"]).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return answer


def _error(message: str) -> str:
    return json.dumps({"type": "Echo", "message": message, "detail": None})


ECHOES = {
    "raw": _echo(500, "text/plain", lambda auth: f"denied: {auth}"),
    "JSON-escaped": _echo(500, "application/json", _error),
    "URL-encoded": _echo(500, "text/plain", lambda auth: f"next=/login?h={quote(auth, safe='')}"),
    "URL-encoded, + for space": _echo(500, "text/plain", lambda auth: f"h={quote_plus(auth)}"),
    "whitespace collapsed": _echo(500, "text/plain", lambda auth: " ".join(auth.split())),
    "folded over lines": _echo(500, "text/plain", lambda auth: auth.replace("  ", "\n\t")),
    "in a field the schema checks": _echo(
        200, "application/json", lambda auth: json.dumps([{"time_bucket": auth, "cost": "1"}])
    ),
    "in an item missing a field": _echo(
        200, "application/json", lambda auth: json.dumps([{"cost": "1", "note": auth}])
    ),
}


@pytest.mark.parametrize("form", ECHOES)
def test_live_contract_never_prints_the_key_a_server_echoes(
    answering: Callable[[Answer], str], form: str
) -> None:
    """Before: the body (or the schema error quoting it) went into the report, key and all."""
    url = answering(ECHOES[form]) + "/v2"
    run = tool("live_contract", "--server-url", url, env={"OPPER_API_KEY": KEY})
    assert KEY_CORE not in run.stdout + run.stderr
    assert run.code == 1, run.stdout + run.stderr
    assert "DRIFT" in run.stdout
    assert "<redacted>" in run.stdout  # the echo was shown, without the key
