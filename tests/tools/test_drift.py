"""tools/drift.py, what `nox -s drift` reports: each file added by hand, missing or changed in
generated/, by name, with a unified diff of the changed ones; nothing when the trees match."""

from __future__ import annotations

from pathlib import Path

from tools import drift


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_identical_trees_do_not_drift(tmp_path: Path) -> None:
    files = {"__init__.py": "", "models/item.py": "x = 1\n"}
    ours, fresh = _tree(tmp_path / "ours", files), _tree(tmp_path / "fresh", files)
    (ours / "models" / "__pycache__").mkdir()
    (ours / "models" / "__pycache__" / "item.cpython-311.pyc").write_bytes(b"\0")
    found = drift.compare(ours, fresh)
    assert not found
    assert found.problems("generated/x") == []
    assert drift.diff(ours, fresh, found, "generated/x") == ""


def test_added_missing_and_changed_files_are_each_named(tmp_path: Path) -> None:
    ours = _tree(
        tmp_path / "ours",
        {"__init__.py": "", "mine.py": "by hand\n", "models/item.py": "x = 1\ny = 2\n"},
    )
    fresh = _tree(
        tmp_path / "fresh",
        {"__init__.py": "", "models/item.py": "x = 1\ny = 3\n", "models/new.py": ""},
    )
    found = drift.compare(ours, fresh)
    assert found
    assert (found.added, found.missing, found.changed) == (
        ["mine.py"],
        ["models/new.py"],
        ["models/item.py"],
    )
    assert found.problems("generated/pkg") == [
        "generated/pkg/mine.py: added by hand (the generator does not write it)",
        "generated/pkg/models/new.py: missing (the generator writes it)",
        "generated/pkg/models/item.py: differs from the generator's output",
    ]


def test_the_diff_goes_from_the_checked_in_file_to_the_fresh_one(tmp_path: Path) -> None:
    ours = _tree(tmp_path / "ours", {"item.py": "x = 1\ny = 2\n"})
    fresh = _tree(tmp_path / "fresh", {"item.py": "x = 1\ny = 3\n"})
    text = drift.diff(ours, fresh, drift.compare(ours, fresh), "generated/pkg")
    assert text.splitlines() == [
        "--- generated/pkg/item.py",
        "+++ generated/pkg/item.py (fresh)",
        "@@ -1,2 +1,2 @@",
        " x = 1",
        "-y = 2",
        "+y = 3",
    ]


def test_a_change_of_bytes_alone_is_drift(tmp_path: Path) -> None:
    """Line endings, for one: the generator's output is compared byte for byte."""
    ours = _tree(tmp_path / "ours", {"item.py": "x = 1\n"})
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "item.py").write_bytes(b"x = 1\r\n")
    assert drift.compare(ours, fresh).changed == ["item.py"]
