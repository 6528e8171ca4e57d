"""`update-spec`: openapi.yaml is what the pipeline makes of the upstream description (the
FastAPI fixture) and the overlay, byte for byte; what it keeps, what it writes and when it
writes nothing; the overlay's semantics; the nox session end to end, generated/ included."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.toolrun import (
    BAD_SOURCES,
    UPSTREAM,
    bad_source,
    nox,
    sandbox,
    serving_folder,
    tool,
    upstream,
    write_json,
)
from tools.extract import extract
from tools.overlay import apply
from tools.sources import InputError, read
from tools.update_spec import OVERLAY, build

SPEC = ROOT / "openapi.yaml"
ENDPOINT = Path("generated/opperai_usage_generated/api/analytics/usage_analytics_usage_get.py")


def _op(document: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = document["paths"]["/analytics/usage"]["get"]
    return op


def _with_limit(document: dict[str, Any]) -> dict[str, Any]:
    """A non-breaking change: a new optional query parameter."""
    schema = {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Limit"}
    _op(document)["parameters"].append(
        {"name": "limit", "in": "query", "required": False, "schema": schema}
    )
    return document


def _without_minute(document: dict[str, Any]) -> dict[str, Any]:
    """A breaking change: an enum value the client sends is gone."""
    document["components"]["schemas"]["Granularity"]["enum"].remove("minute")
    return document


# -- openapi.yaml is the pipeline's output


def test_the_fixture_document_is_what_the_fastapi_app_serves() -> None:
    from tests.tools.opper_upstream import served  # FastAPI, imported where it is needed

    assert served() == UPSTREAM.read_bytes(), (
        "tests/tools/opper_upstream.json is stale: python tests/tools/opper_upstream.py > "
        "tests/tools/opper_upstream.json, then "
        "nox -s update-spec -- tests/tools/opper_upstream.json"
    )


#: The lines of `info.x-upstream` (where openapi.yaml was imported from, and its sha256).
_SOURCE_RECORD = re.compile(r"^  x-upstream:\n(?:    .*\n)+", re.MULTILINE)


def test_importing_the_fixture_reproduces_openapi_yaml_byte_for_byte() -> None:
    """Byte for byte but the source record: when openapi.yaml was imported from Opper's own
    URL, the stand-in must give the same document, so it is kept in step with upstream."""
    text, warnings = build(read(str(UPSTREAM), root=ROOT), ROOT / OVERLAY)
    assert warnings == []
    committed = SPEC.read_text()
    (recorded,) = _SOURCE_RECORD.findall(committed)
    assert _SOURCE_RECORD.sub(recorded, text) == committed, (
        "openapi.yaml is not what update-spec makes of the fixture"
    )


def test_openapi_yaml_records_its_source() -> None:
    record = yaml.safe_load(SPEC.read_text())["info"]["x-upstream"]
    assert set(record) == {"source", "sha256"}
    assert re.fullmatch(r"[0-9a-f]{64}", record["sha256"])
    if record["source"] == "tests/tools/opper_upstream.json":  # else a URL, not here to read again
        assert record["sha256"] == hashlib.sha256(UPSTREAM.read_bytes()).hexdigest()


def test_result_items_keep_any_json_value_as_the_api_declares() -> None:
    """pydantic's extra="allow" upstream is `additionalProperties: true`; the overlay must not
    narrow what the API may answer."""
    item = yaml.safe_load(SPEC.read_text())["components"]["schemas"]["GetUsageResultItem"]
    assert upstream()["components"]["schemas"]["GetUsageResultItem"]["additionalProperties"]
    assert item["additionalProperties"] is True


def test_an_up_to_date_spec_is_left_alone(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    before = (root / "openapi.yaml").stat().st_mtime_ns
    run = tool("update_spec", "tests/tools/opper_upstream.json", cwd=root)
    assert run.code == 0, run.stderr
    assert run.stdout == "openapi.yaml -> tests/tools/opper_upstream.json: no changes\n"
    assert run.stderr == "update-spec: openapi.yaml is up to date\n"
    assert (root / "openapi.yaml").stat().st_mtime_ns == before


# -- what is kept


def test_only_the_operation_and_what_it_references_are_kept(tmp_path: Path) -> None:
    document = upstream()
    schemas = document["components"]["schemas"]
    schemas["GetUsageResultItem"]["properties"]["breakdown"] = {
        "$ref": "#/components/schemas/Split"
    }
    schemas["Split"] = {
        "type": "object",
        "properties": {"unit": {"$ref": "#/components/schemas/Unit"}},
    }
    schemas["Unit"] = {"type": "string", "enum": ["usd"]}
    schemas["Orphan"] = {
        "type": "object",
        "properties": {"unit": {"$ref": "#/components/schemas/Unit"}},
    }
    kept = extract(document, "fixture")
    assert list(kept["paths"]) == ["/analytics/usage"]
    assert list(kept["paths"]["/analytics/usage"]) == ["get"]
    assert sorted(kept["components"]["schemas"]) == [
        "BadRequestError",
        "GetUsageResultItem",
        "Granularity",
        "NotFoundError",
        "RequestValidationError",
        "Split",
        "UnauthorizedError",
        "Unit",
    ]
    assert kept["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer"}
    }
    assert kept["servers"] == [{"url": "https://api.opper.ai/v2"}]
    assert kept["tags"] == [{"name": "analytics", "description": "Usage analytics"}]
    assert kept["info"] == document["info"]


def test_a_dangling_reference_is_an_input_error() -> None:
    document = upstream()
    _op(document)["responses"]["200"]["content"]["application/json"]["schema"]["items"] = {
        "$ref": "#/components/schemas/Gone"
    }
    with pytest.raises(InputError, match=r"^fixture: #/components/schemas/Gone refers to nothing$"):
        extract(document, "fixture")


# -- the overlay


def test_overlay_update_merges_objects_and_appends_to_arrays() -> None:
    document: dict[str, Any] = {"a": {"b": {"c": 1, "d": [1]}, "e": 2}, "list": [1]}
    overlay = {
        "overlay": "1.0.0",
        "info": {"title": "t", "version": "1"},
        "actions": [
            {"target": "$.a", "update": {"b": {"c": 3, "d": [9]}, "f": 4}},
            {"target": "$.list", "update": {"x": 1}},
        ],
    }
    assert apply(document, overlay, "o.yaml") == []
    assert document == {"a": {"b": {"c": 3, "d": [9]}, "e": 2, "f": 4}, "list": [1, {"x": 1}]}


def test_overlay_remove_takes_out_every_selected_node() -> None:
    document: dict[str, Any] = {"items": [{"n": i, "drop": i % 2 == 1} for i in range(12)], "k": 1}
    overlay = {
        "overlay": "1.0.0",
        "actions": [
            {"target": "$.items[?@.drop == true]", "remove": True},
            {"target": "$.k", "remove": True, "update": {"ignored": True}},
        ],
    }
    assert apply(document, overlay, "o.yaml") == []
    assert document == {"items": [{"n": i, "drop": False} for i in range(0, 12, 2)]}


def test_overlay_action_that_selects_nothing_is_a_warning() -> None:
    overlay = {"overlay": "1.0.0", "actions": [{"target": "$.paths['/gone']", "update": {}}]}
    assert apply({"paths": {}}, overlay, "o.yaml") == [
        "o.yaml: action 1 ($.paths['/gone']) selects nothing: has the upstream description changed?"
    ]


@pytest.mark.parametrize(
    ("overlay", "says"),
    [
        ({"actions": []}, "is not an OpenAPI Overlay 1.0 document"),
        ({"overlay": "1.0.0", "actions": [{"update": {}}]}, "each with a `target`"),
        ({"overlay": "1.0.0", "actions": [{"target": "$.a[", "update": {}}]}, "action 1 ($.a[)"),
        (
            {"overlay": "1.0.0", "actions": [{"target": "$.a.b", "update": {}}]},
            "objects and arrays",
        ),
    ],
)
def test_a_bad_overlay_is_an_input_error(overlay: dict[str, Any], says: str) -> None:
    with pytest.raises(InputError) as raised:
        apply({"a": {"b": 1}}, overlay, "o.yaml")
    assert says in str(raised.value)


# -- the command line


def test_a_non_breaking_change_is_reported_and_written(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    source = write_json(root / "new.json", _with_limit(upstream()))
    run = tool("update_spec", "new.json", cwd=root)
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("non-breaking  new optional query parameter `limit`")
    assert run.stderr == "update-spec: wrote openapi.yaml\n"
    written = yaml.safe_load((root / "openapi.yaml").read_text())
    limit = [p for p in _op(written)["parameters"] if p["name"] == "limit"]
    assert len(limit) == 1
    assert (limit[0]["style"], limit[0]["explode"]) == ("form", True)  # from the overlay
    assert written["info"]["x-upstream"] == {
        "source": "new.json",
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
    }


def test_a_breaking_change_writes_nothing_unless_accepted(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    write_json(root / "new.json", _without_minute(upstream()))
    before = (root / "openapi.yaml").read_bytes()
    refused = tool("update_spec", "new.json", cwd=root)
    assert refused.code == 1
    assert (
        "breaking      query parameter `granularity`: enum value 'minute' removed" in refused.stdout
    )
    assert refused.stderr == (
        "update-spec: 1 breaking change: nothing written. "
        "Review them; run again with --accept-breaking to take them.\n"
    )
    assert (root / "openapi.yaml").read_bytes() == before
    accepted = tool("update_spec", "new.json", "--accept-breaking", cwd=root)
    assert accepted.code == 0, accepted.stderr
    written = yaml.safe_load((root / "openapi.yaml").read_text())
    assert "minute" not in written["components"]["schemas"]["Granularity"]["enum"]


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    """Whatever the hash seed (set and dict orders would show here)."""
    outputs = []
    for seed in ("1", "2"):
        root = sandbox(tmp_path / seed)
        write_json(root / "new.json", _with_limit(upstream()))
        run = tool("update_spec", "new.json", cwd=root, env={"PYTHONHASHSEED": seed})
        assert run.code == 0, run.stderr
        outputs.append((root / "openapi.yaml").read_bytes())
    assert outputs[0] == outputs[1]


def test_yaml_and_json_sources_give_the_same_document(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    (root / "new.yaml").write_text(yaml.safe_dump(_with_limit(upstream())))
    write_json(root / "new.json", _with_limit(upstream()))
    written = []
    for name in ("new.yaml", "new.json"):
        run = tool("update_spec", name, "--output", f"{name}.out", cwd=root)
        assert run.code == 0, run.stderr
        document = yaml.safe_load((root / f"{name}.out").read_text())
        del document["info"]["x-upstream"]
        written.append(document)
    assert written[0] == written[1]


def test_overlay_warnings_go_to_stderr(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    document = upstream()
    _op(document)["parameters"] = [
        p for p in _op(document)["parameters"] if p["name"] != "group_by"
    ]
    write_json(root / "new.json", document)
    run = tool("update_spec", "new.json", "--accept-breaking", cwd=root)
    assert run.code == 0, run.stderr
    assert (
        "update-spec: warning: openapi-overlay.yaml: action 10 "
        "($.paths['/analytics/usage'].get.parameters[?@.name == 'group_by']) selects nothing"
    ) in run.stderr


def test_an_overlay_that_makes_an_invalid_document_writes_nothing(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    overlay = yaml.safe_load((root / "openapi-overlay.yaml").read_text())
    overlay["actions"].append(
        {"target": "$.paths['/analytics/usage'].get", "update": {"responses": 5}}
    )
    (root / "openapi-overlay.yaml").write_text(yaml.safe_dump(overlay))
    before = (root / "openapi.yaml").read_bytes()
    run = tool("update_spec", "tests/tools/opper_upstream.json", cwd=root)
    assert run.code == 2
    assert run.stderr.startswith("update-spec: the result is not a valid OpenAPI document: ")
    assert run.stderr.count("\n") == 1, run.stderr
    assert (root / "openapi.yaml").read_bytes() == before


def test_a_url_source_is_recorded_as_its_url(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    write_json(tmp_path / "served" / "openapi.json", _with_limit(upstream()))
    with serving_folder(tmp_path / "served") as base:
        run = tool("update_spec", f"{base}/openapi.json", cwd=root)
    assert run.code == 0, run.stderr
    written = yaml.safe_load((root / "openapi.yaml").read_text())
    assert written["info"]["x-upstream"]["source"] == f"{base}/openapi.json"


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, case: str) -> None:
    root = sandbox(tmp_path)
    source, says = bad_source(tmp_path, case)
    before = (root / "openapi.yaml").read_bytes()
    run = tool("update_spec", source, "--accept-breaking", cwd=root)
    assert run.code == 2
    assert run.stdout == ""
    assert run.stderr.startswith("update-spec: ")
    assert says in run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert (root / "openapi.yaml").read_bytes() == before
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


# -- the nox session, generated/ included


def test_nox_session_updates_the_spec_and_regenerates(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    write_json(root / "new.json", _with_limit(upstream()))
    run = nox("update-spec", "new.json", root=root)
    assert run.code == 0, run.stderr
    assert "new optional query parameter `limit`" in run.stdout
    written = _op(yaml.safe_load((root / "openapi.yaml").read_text()))
    assert "limit" in [p["name"] for p in written["parameters"]]
    endpoint = (root / ENDPOINT).read_text()
    assert "limit: int | None | Unset = UNSET" in endpoint
    assert 'params["limit"] = json_limit' in endpoint
    assert (ROOT / ENDPOINT).read_text() != endpoint  # the repository's own is untouched


def test_nox_session_writes_nothing_on_breaking_or_bad_input(tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    write_json(root / "new.json", _without_minute(upstream()))
    spec, endpoint = (root / "openapi.yaml").read_bytes(), (root / ENDPOINT).read_bytes()
    breaking = nox("update-spec", "new.json", root=root)
    assert breaking.code == 1
    assert "enum value 'minute' removed" in breaking.stdout
    bad = nox("update-spec", "absent.json", root=root)
    assert bad.code == 2
    assert "update-spec: cannot read absent.json: No such file or directory" in bad.stderr
    assert (root / "openapi.yaml").read_bytes() == spec
    assert (root / ENDPOINT).read_bytes() == endpoint
