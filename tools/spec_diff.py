"""`nox -s spec-diff -- OLD NEW [--format text|markdown|json]`: the changes to
`GET /analytics/usage` between two API descriptions, classified from this client's point of
view (tools/classify.py).

OLD and NEW are each a file, an http(s) URL or `git:REF` (the openapi.yaml committed at REF);
each may be a whole description or this project's extract. Exit 0 when nothing breaks, 1 when
something does, 2 when an input cannot be read (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools import classify, report
from tools.extract import extract
from tools.sources import InputError, read


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s spec-diff --",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("old", metavar="OLD", help="a path, a URL or git:REF")
    parser.add_argument("new", metavar="NEW", help="a path, a URL or git:REF")
    parser.add_argument("--format", choices=report.FORMATS, default="text")
    arguments = parser.parse_args(argv)
    try:
        old, new = read(arguments.old), read(arguments.new)
        changes = classify.compare(
            extract(old.document, old.label), extract(new.document, new.label)
        )
    except InputError as error:
        print(f"spec-diff: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(report.render(changes, arguments.format, old.label, new.label))
    return 1 if any(change.type == "breaking" for change in changes) else 0


if __name__ == "__main__":
    sys.exit(main())
