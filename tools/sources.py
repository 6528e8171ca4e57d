"""Reading an API description from a URL, a file or `git:REF` (the `openapi.yaml` committed
at REF), as JSON or YAML.

Every failure is an `InputError` whose message is one line: the commands print it and exit 2.
A description may come from anywhere, so what could exhaust the tools is refused before it
does: a download has one deadline and a size limit, YAML aliases are not expanded, and no
document may nest deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

#: Where Opper publishes the description its FastAPI app makes.
DEFAULT_SOURCE = "https://api.opper.ai/v2/openapi.json"
#: The file `git:REF` reads at REF.
SPEC_FILE = "openapi.yaml"
#: The whole download (connecting, redirects, every byte) within this, and no more than
#: MAX_BYTES of it; read when called, so a test can shorten them.
TIMEOUT_S = 30.0
MAX_BYTES = 32 * 1024 * 1024
#: Real descriptions nest a dozen levels; the tools walk documents recursively, and Python's
#: stack holds some hundreds of levels.
MAX_DEPTH = 100


class InputError(Exception):
    """An input that cannot be read, or is not the API description it should be."""


@dataclass(frozen=True)
class Source:
    """One description as read: where from (as recorded), its bytes and its parsed content."""

    label: str
    content: bytes
    document: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


class _Refused(yaml.YAMLError):
    """YAML that is well formed but not read: an alias, or nesting beyond MAX_DEPTH."""


class _Loader(yaml.SafeLoader):
    """YAML as JSON sees it: a date-time stays a string (PyYAML would make it a datetime).

    Aliases are refused: a few lines of them expand to billions of nodes ("billion laughs"),
    and JSON, which an API description is, has none. Nesting is counted as it is composed,
    which PyYAML does recursively."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else "?"
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"has a YAML alias (*{event.anchor}, line {line}): aliases are not read")
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep (line {line})")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse(content: bytes, label: str) -> Any:
    """JSON, else YAML; mapping keys become strings (`200:` in YAML is the status "200")."""
    try:
        loaded = json.loads(content)
    except RecursionError:  # json's decoder recurses: far deeper than MAX_DEPTH
        raise InputError(f"{label} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        try:
            loaded = yaml.load(content, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except _Refused as error:
            raise InputError(f"{label} {error}") from None
        except (yaml.YAMLError, ValueError) as error:  # ValueError: an integer of 5,000 digits
            problem = str(error).splitlines()[0]
            raise InputError(f"{label} is neither JSON nor YAML: {problem}") from None
    _check_depth(loaded, label)
    return _string_keys(loaded)


def _check_depth(document: Any, label: str) -> None:
    """An InputError if `document` nests deeper than MAX_DEPTH (walked without recursion)."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise InputError(f"{label} is nested more than {MAX_DEPTH} levels deep")
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def read(source: str, root: Path | None = None) -> Source:
    """The description at `source`: an http(s) URL, `git:REF`, or a file path.

    `root` (default: the current directory) is the repository: `git:REF` is read from it, and a
    file inside it is recorded by its path from there, so the record does not depend on where
    the checkout lives.
    """
    root = root or Path.cwd()
    if source.startswith(("http://", "https://")):
        label, content = source, _fetch(source)
    elif source.startswith("git:"):
        label, content = source, _git_show(source.removeprefix("git:"), root)
    else:
        label, content = _label(Path(source), root), _read_file(Path(source))
    document = parse(content, label)
    version = document.get("openapi") if isinstance(document, dict) else None
    if not (isinstance(version, str) and version.startswith("3.")):
        raise InputError(f"{label} is not an OpenAPI 3 document (it has no `openapi: 3.x` field)")
    return Source(label, content, document)


def _fetch(url: str) -> bytes:
    """The body at `url`, all of it within TIMEOUT_S: httpx's timeouts are per read, so a
    server sending a byte a second would never end; a cancelled task ends at the deadline."""
    timeout_s = TIMEOUT_S
    try:
        return asyncio.run(asyncio.wait_for(_download(url, timeout_s, MAX_BYTES), timeout_s))
    except asyncio.TimeoutError:
        raise InputError(f"cannot read {url}: not downloaded within {timeout_s:g} s") from None
    except httpx.HTTPError as error:
        raise InputError(f"cannot read {url}: {type(error).__name__}: {error}") from None


async def _download(url: str, timeout_s: float, max_bytes: int) -> bytes:
    too_large = f"cannot read {url}: larger than {max_bytes:,} bytes"
    async with (
        httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client,
        client.stream("GET", url) as answer,
    ):
        if answer.status_code != 200:
            raise InputError(f"cannot read {url}: HTTP {answer.status_code}")
        declared = answer.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise InputError(too_large)
        chunks, size = [], 0
        async for chunk in answer.aiter_bytes():  # decoded: a gzip bomb is counted as inflated
            size += len(chunk)
            if size > max_bytes:
                raise InputError(too_large)
            chunks.append(chunk)
    return b"".join(chunks)


def _git_show(ref: str, root: Path) -> bytes:
    if not ref or ref.startswith("-"):
        raise InputError(f"git:{ref} names no commit")
    try:
        shown = subprocess.run(
            ["git", "show", f"{ref}:{SPEC_FILE}"],
            cwd=root,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InputError(f"cannot read git:{ref}: {error}") from None
    if shown.returncode:
        problem = shown.stderr.decode(errors="replace").strip().splitlines() or ["git failed"]
        raise InputError(f"cannot read git:{ref}: {problem[0]}")
    return shown.stdout


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            content = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if len(content) > MAX_BYTES:
        raise InputError(f"cannot read {path}: larger than {MAX_BYTES:,} bytes")
    return content


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())
