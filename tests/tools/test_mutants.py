"""tools/mutants.py, what `nox -s mutants` runs: the staged copy mutates the core (the
package's top-level modules but those left out) against tests/core; mutmut's results are read
into a score per module and a list of the survivors tests/MUTANTS.md does not explain; the
order check fails when a test fails in mutmut's order with nothing mutated."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT
from tools import mutants

CORE = [
    "_analytics",
    "_client",
    "_connections",
    "_credentials",
    "_deadline",
    "_decode",
    "_iterate",
    "_query",
    "_redact",
    "_retries",
    "_transport",
    "_validation",
    "_windows",
    "errors",
]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mutants.stage(ROOT, tmp_path_factory.mktemp("mutants") / "run")


def test_the_core_is_mutated_and_nothing_else(staged: Path) -> None:
    assert mutants.mutated(staged) == [f"opperai_usage.{module}" for module in CORE]


def test_the_tests_are_those_of_tests_core(staged: Path) -> None:
    settings = mutants.config(staged)
    assert settings["pytest_add_cli_args_test_selection"] == ["tests/core"]
    args = settings["pytest_add_cli_args"]
    assert "not prism" in args[args.index("-m") + 1]


def test_the_staged_copy_is_laid_out_as_mutmut_expects(staged: Path) -> None:
    package = staged / "src" / "opperai_usage"
    assert (package / "_client.py").is_file()
    generated = package / "_generated"
    assert generated.is_dir()
    assert not generated.is_symlink()  # resolved: mutmut copies files, not links
    assert (staged / "tests" / "core" / "test_client.py").is_file()
    assert (staged / "openapi.yaml").read_bytes() == (ROOT / "openapi.yaml").read_bytes()
    assert not list(staged.rglob("__pycache__"))


def test_every_deselected_test_exists(staged: Path) -> None:
    """A test moved or renamed would otherwise run, and fail, under every mutant."""
    args = mutants.config(staged)["pytest_add_cli_args"]
    deselected = [args[i + 1] for i, arg in enumerate(args) if arg == "--deselect"]
    assert deselected
    for node in deselected:
        path, name = node.split("::")
        assert path.startswith("tests/core/")
        assert f"def {name}(" in (ROOT / path).read_text(), node


LISTING = """\
    opperai_usage._retries.x_retry_after_seconds__mutmut_1: killed
    opperai_usage._retries.x_retry_after_seconds__mutmut_4: survived
    opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3: survived
    opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_9: timeout
    opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_1: no tests
    opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_2: caught by type check
    opperai_usage._client.x_f__mutmut_1: not checked
"""


def test_the_results_are_read_per_mutant() -> None:
    assert mutants.statuses("Generating mutants\n" + LISTING) == {
        "opperai_usage._retries.x_retry_after_seconds__mutmut_1": "killed",
        "opperai_usage._retries.x_retry_after_seconds__mutmut_4": "survived",
        "opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3": "survived",
        "opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_9": "timeout",
        "opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_1": "no tests",
        "opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_2": "caught by type check",
        "opperai_usage._client.x_f__mutmut_1": "not checked",
    }


def test_the_explained_names_are_read_from_the_text() -> None:
    text = (
        "- `opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3`,\n"
        "  `opperai_usage._retries.x_retry_after_seconds__mutmut_4`: why.\n"
    )
    assert mutants.explained(text) == {
        "opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3",
        "opperai_usage._retries.x_retry_after_seconds__mutmut_4",
    }


def test_the_report_gives_the_score_and_the_unexplained_survivors() -> None:
    found = mutants.statuses(LISTING)
    known = {"opperai_usage._retries.x_retry_after_seconds__mutmut_4"}
    lines = mutants.report(found, known, minutes=3.4)
    assert lines[0].split() == ["module", "mutants", "mypy", "tests", "survived", "other"]
    assert lines[1].split() == ["_deadline", "2", "1", "0", "0", "1"]
    assert lines[2].split() == ["_retries", "4", "0", "2", "2", "0"]
    assert "_client" not in "\n".join(lines)  # not checked: not part of this run
    # mypy's rejections, kills and timeouts count; "not checked" is not tried; "no tests" is
    # tried, not killed; the tests' share leaves out what mypy rejected
    assert lines[3] == (
        "3 of 6 mutants killed (50.0 %) in 3 min: 1 by mypy, 2 by the tests (40.0 % of the 5 "
        "mypy let through); 1 survivors explained in tests/MUTANTS.md, 2 not"
    )
    assert lines[4:] == [
        "  not explained: opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_1 (no tests; "
        "`mutmut show opperai_usage._deadline.xǁDeadlineBackendǁsleep__mutmut_1`)",
        "  not explained: opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3 (survived; "
        "`mutmut show opperai_usage._retries.xǁRetryPolicyǁ__init____mutmut_3`)",
    ]


def _staged_with(tmp_path: Path, test: str) -> Path:
    """A folder as mutmut leaves it: its config, the tests and the mutated src/ in mutants/."""
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [tool.mutmut]
            pytest_add_cli_args_test_selection = ["tests"]
            pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly"]
            """)
    )
    (tmp_path / "mutants" / "src" / "staged_marker").mkdir(parents=True)
    (tmp_path / "mutants" / "src" / "staged_marker" / "__init__.py").write_text("")
    (tmp_path / "mutants" / "tests").mkdir()
    (tmp_path / "mutants" / "tests" / "test_it.py").write_text(textwrap.dedent(test))
    return tmp_path


def test_the_order_check_runs_the_staged_code_with_nothing_mutated(tmp_path: Path) -> None:
    folder = _staged_with(
        tmp_path,
        """\
        import os

        import staged_marker  # from mutants/src, as mutmut's workers import the package


        def test_it():
            name = os.environ["MUTANT_UNDER_TEST"]
            assert "__mutmut_" in name and not name.startswith("opperai_usage._")
        """,
    )
    assert mutants.in_mutmuts_order(folder)


def test_the_order_check_fails_when_a_test_fails(tmp_path: Path) -> None:
    folder = _staged_with(tmp_path, "def test_it():\n    assert False\n")
    assert not mutants.in_mutmuts_order(folder)
