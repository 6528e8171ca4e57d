"""Reading an API description from a URL, a file or `git:REF` (the `openapi.yaml` committed
at REF), as JSON or YAML.

Every failure is an `InputError` whose message is one line: the commands print it and exit 2.
"""

from __future__ import annotations

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
TIMEOUT_S = 30.0


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


class _Loader(yaml.SafeLoader):
    """YAML as JSON sees it: a date-time stays a string (PyYAML would make it a datetime)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse(content: bytes, label: str) -> Any:
    """JSON, else YAML; mapping keys become strings (`200:` in YAML is the status "200")."""
    try:
        loaded = json.loads(content)
    except ValueError:
        try:
            loaded = yaml.load(content, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as error:
            problem = str(error).splitlines()[0]
            raise InputError(f"{label} is neither JSON nor YAML: {problem}") from None
    return _string_keys(loaded)


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
    try:
        answer = httpx.get(url, timeout=TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as error:
        raise InputError(f"cannot read {url}: {type(error).__name__}: {error}") from None
    if answer.status_code != 200:
        raise InputError(f"cannot read {url}: HTTP {answer.status_code}")
    return answer.content


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
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())
