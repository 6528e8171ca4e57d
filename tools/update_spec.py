"""`nox -s update-spec -- [SOURCE] [--accept-breaking]`: openapi.yaml from Opper's published
API description.

SOURCE (default: Opper's URL) is a URL or a file, JSON or YAML, holding a whole description.
Kept: `GET /analytics/usage`, everything it references, the servers and its security scheme.
Then openapi-overlay.yaml (OpenAPI Overlay 1.0) adds this project's adjustments, and the result
is written as YAML, byte for byte the same for the same input, with the source and its sha256
in `info.x-upstream`. The change report against the current openapi.yaml is printed first.

Exit 0 when written (or already up to date: then nothing is written), 1 on a breaking change without
--accept-breaking (nothing written), 2 when the input cannot be read (one line on stderr,
nothing written). nox then regenerates generated/ from the new file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tools import classify, report
from tools.extract import extract
from tools.overlay import apply
from tools.sources import DEFAULT_SOURCE, InputError, Source, parse, read

SPEC = Path("openapi.yaml")
OVERLAY = Path("openapi-overlay.yaml")
HEADER = """\
# Written by `nox -s update-spec` from Opper's API description (info.x-upstream) and
# openapi-overlay.yaml: change the overlay, not this file. CONTRIBUTING.md: "When the API changes".
"""


def build(source: Source, overlay_path: Path = OVERLAY) -> tuple[str, list[str]]:
    """openapi.yaml's text for `source`, and the overlay's warnings."""
    document = extract(source.document, source.label)
    try:
        overlay = parse(overlay_path.read_bytes(), str(overlay_path))
    except OSError as error:
        raise InputError(f"cannot read {overlay_path}: {error.strerror or error}") from None
    warnings = apply(document, overlay, str(overlay_path))
    info = document.setdefault("info", {})
    info[classify.OWN_RECORD] = {"source": source.label, "sha256": source.sha256}
    try:
        validate(document)
    except OpenAPIValidationError as error:
        problem = str(error).splitlines()[0]
        raise InputError(f"the result is not a valid OpenAPI document: {problem}") from None
    return HEADER + dump(document), warnings


def dump(document: dict[str, Any]) -> str:
    """Deterministic YAML: keys in the document's order, block style, long text folded into
    lines of about 100 characters, non-ASCII text as itself. Read back, it is `document`."""
    text = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=88,
        default_flow_style=False,
    )
    if parse(text.encode(), "the result") != document:
        raise InputError("the result does not read back as what was written (a YAML quirk)")
    return text


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, and long or multi-line text as block scalars, as
    people write YAML. Never an alias: tools/sources.py refuses to read them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else ">" if len(value) > 80 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s update-spec --",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("source", metavar="SOURCE", nargs="?", default=DEFAULT_SOURCE)
    parser.add_argument(
        "--accept-breaking", action="store_true", help="write even when a change breaks users"
    )
    parser.add_argument(
        "--output", type=Path, default=SPEC, help="where to write (default: %(default)s)"
    )
    arguments = parser.parse_args(argv)
    try:
        source = read(arguments.source)
        text, warnings = build(source)
        changes = _changes(text)
    except InputError as error:
        print(f"update-spec: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"update-spec: warning: {warning}", file=sys.stderr)
    current = SPEC.read_text() if SPEC.exists() else None
    sys.stdout.write(report.render(changes, "text", str(SPEC), source.label))
    breaking = sum(change.type == "breaking" for change in changes)
    if breaking and not arguments.accept_breaking:
        print(
            f"update-spec: {breaking} breaking change{'s' * (breaking > 1)}: nothing written. "
            "Review them; run again with --accept-breaking to take them.",
            file=sys.stderr,
        )
        return 1
    if text == current:
        print(f"update-spec: {SPEC} is up to date", file=sys.stderr)
        return 0
    _write(arguments.output, text)
    print(f"update-spec: wrote {arguments.output}", file=sys.stderr)
    return 0


def _changes(text: str) -> list[classify.Change]:
    """The changes from the current openapi.yaml to `text` (none when there is no file yet)."""
    if not SPEC.exists():
        return []
    current = parse(SPEC.read_bytes(), str(SPEC))
    return classify.compare(extract(current, str(SPEC)), parse(text.encode(), "the result"))


def _write(path: Path, text: str) -> None:
    """All or nothing: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(temporary, 0o644)  # mkstemp makes it private; this is a repository file
    Path(temporary).replace(path)


if __name__ == "__main__":
    sys.exit(main())
