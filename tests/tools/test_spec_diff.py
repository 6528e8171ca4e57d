"""`spec-diff`: every classification rule, each driven by one change to the upstream fixture
(the whole FastAPI description, as Opper publishes it), through the command line; its formats,
its inputs (paths, URLs, git:REF) and its exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.net import closed_port_url
from tests.support.toolrun import (
    BAD_SOURCES,
    UPSTREAM,
    bad_source,
    git,
    nox,
    pointer,
    serving_folder,
    tool,
    upstream,
    write_json,
)

Document = dict[str, Any]
OPERATION = ("paths", "/analytics/usage", "get")


def _op(document: Document) -> Document:
    op: Document = document["paths"]["/analytics/usage"]["get"]
    return op


def _parameter(document: Document, name: str) -> Document:
    found: list[Document] = [p for p in _op(document)["parameters"] if p["name"] == name]
    (parameter,) = found
    return parameter


def _schema(document: Document, name: str) -> Document:
    schema: Document = document["components"]["schemas"][name]
    return schema


def _item_field(document: Document, name: str) -> Document:
    field: Document = _schema(document, "GetUsageResultItem")["properties"][name]
    return field


def _remove_parameter(name: str) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        _op(document)["parameters"].remove(_parameter(document, name))

    return change


def _rename_group_by(document: Document) -> None:
    _parameter(document, "group_by")["name"] = "groups"


def _require_fields(document: Document) -> None:
    _parameter(document, "fields")["required"] = True


def _limit_field_names(document: Document) -> None:
    _parameter(document, "fields")["schema"]["anyOf"][0]["items"]["maxLength"] = 64


def _dates_only(document: Document) -> None:
    _parameter(document, "from_date")["schema"]["anyOf"][0]["format"] = "date"


def _drop_minute(document: Document) -> None:
    _schema(document, "Granularity")["enum"].remove("minute")


def _fields_not_exploded(document: Document) -> None:
    _parameter(document, "fields")["explode"] = False


def _pipe_delimited_group_by(document: Document) -> None:
    _parameter(document, "group_by")["style"] = "pipeDelimited"


def _drop_cost(document: Document) -> None:
    item = _schema(document, "GetUsageResultItem")
    del item["properties"]["cost"]
    item["required"].remove("cost")


def _cost_as_number(document: Document) -> None:
    _item_field(document, "cost")["type"] = "number"


def _nullable_cost(document: Document) -> None:
    field = _item_field(document, "cost")
    field["anyOf"] = [{"type": field.pop("type")}, {"type": "null"}]


def _optional_cost(document: Document) -> None:
    _schema(document, "GetUsageResultItem")["required"].remove("cost")


def _drop_404(document: Document) -> None:
    del _op(document)["responses"]["404"]


def _error_message_as_object(document: Document) -> None:
    _schema(document, "BadRequestError")["properties"]["message"]["type"] = "object"


def _json_to_html(document: Document) -> None:
    responses = _op(document)["responses"]
    responses["200"]["content"] = {"text/html": responses["200"]["content"]["application/json"]}


def _server_v3(document: Document) -> None:
    document["servers"][0]["url"] = "https://api.opper.ai/v3"


def _no_security(document: Document) -> None:
    _op(document)["security"] = []


def _api_key_header(document: Document) -> None:
    document["components"]["securitySchemes"]["HTTPBearer"] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }


def _add_limit(required: bool) -> Callable[[Document], None]:
    def change(document: Document) -> None:
        schema = {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Limit"}
        _op(document)["parameters"].append(
            {"name": "limit", "in": "query", "required": required, "schema": schema}
        )

    return change


def _add_week(document: Document) -> None:
    _schema(document, "Granularity")["enum"].append("week")


def _add_currency(document: Document) -> None:
    _schema(document, "GetUsageResultItem")["properties"]["currency"] = {
        "type": "string",
        "title": "Currency",
    }


def _add_429(document: Document) -> None:
    _op(document)["responses"]["429"] = {
        "description": "Too Many Requests",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NotFoundError"}}},
    }


def _unlimit_field_names(document: Document) -> None:
    _parameter(document, "fields")["schema"]["anyOf"][0]["items"].pop("maxLength")


def _decimal_cost_pattern(document: Document) -> None:
    _item_field(document, "cost")["pattern"] = "^[0-9]+[.][0-9]+$"


def _extras_as_scalars(document: Document) -> None:
    _schema(document, "GetUsageResultItem")["additionalProperties"] = {
        "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]
    }


def _describe_fields(document: Document) -> None:
    _parameter(document, "fields")["description"] = "Keys of event_metadata to sum"


def _example_group_by(document: Document) -> None:
    _parameter(document, "group_by")["example"] = ["model"]


def _retitle_item(document: Document) -> None:
    _schema(document, "GetUsageResultItem")["title"] = "UsageBucket"


def _summarize(document: Document) -> None:
    _op(document)["summary"] = "Usage analytics"


def _unknown_keyword(document: Document) -> None:
    _item_field(document, "cost")["contentEncoding"] = "base64"


Change = Callable[[Document], None]
#: (id, change to the old side, change to the new side, class, what the message says)
RULES: list[tuple[str, Change | None, Change | None, str, list[str]]] = [
    # breaking
    ("parameter removed", None, _remove_parameter("granularity"), "breaking",
     ["query parameter `granularity` removed"]),
    ("parameter renamed", None, _rename_group_by, "breaking",
     ["query parameter `group_by` removed (renamed to `groups`?)"]),
    ("parameter now required", None, _require_fields, "breaking",
     ["query parameter `fields` is now required"]),
    ("new required parameter", None, _add_limit(required=True), "breaking",
     ["new required query parameter `limit`"]),
    ("request bound added", None, _limit_field_names, "breaking",
     ["query parameter `fields`: `[]` maxLength changed from None to 64"]),
    ("request type narrowed", None, _dates_only, "breaking",
     ["query parameter `from_date` format changed from 'date-time' to 'date'"]),
    ("request enum value removed", None, _drop_minute, "breaking",
     ["query parameter `granularity`: enum value 'minute' removed"]),
    ("explode changed", None, _fields_not_exploded, "breaking",
     ["query parameter `fields`: serialization changed from style=form, explode=true to "
      "style=form, explode=false"]),
    ("style changed", None, _pipe_delimited_group_by, "breaking",
     ["query parameter `group_by`: serialization changed", "to style=pipeDelimited"]),
    ("response field removed", None, _drop_cost, "breaking",
     ["response 200 body: field `[].cost` removed"]),
    ("response field retyped", None, _cost_as_number, "breaking",
     ["response 200 body: `[].cost` type changed from string to number"]),
    ("response field made nullable", None, _nullable_cost, "breaking",
     ["response 200 body: `[].cost` may now be null"]),
    ("response field made optional", None, _optional_cost, "breaking",
     ["response 200 body: field `[].cost` is no longer required: it may be absent"]),
    ("response extra keys widened", _extras_as_scalars, None, "breaking",
     ["response 200 body: `[].<other keys>` may now be any JSON value "
      "(was number, string or null)"]),
    ("documented status removed", None, _drop_404, "breaking",
     ["documented status 404 removed"]),
    ("status schema changed incompatibly", None, _error_message_as_object, "breaking",
     ["response 400 body: `message` type changed from string to object"]),
    ("content type removed", None, _json_to_html, "breaking",
     ["response 200: content type application/json removed"]),
    ("server changed", None, _server_v3, "breaking",
     ["server changed from https://api.opper.ai/v2 to https://api.opper.ai/v3"]),
    ("security removed", None, _no_security, "breaking",
     ["security changed from HTTPBearer to none"]),
    ("security scheme changed", None, _api_key_header, "breaking",
     ["security scheme `HTTPBearer` changed from", "'type': 'apiKey'"]),
    ("a change no rule knows", None, _unknown_keyword, "breaking",
     ["`[].cost` keyword `contentEncoding` changed", "treated as breaking"]),
    # non-breaking
    ("new optional parameter", None, _add_limit(required=False), "non-breaking",
     ["new optional query parameter `limit`"]),
    ("new request enum value", None, _add_week, "non-breaking",
     ["query parameter `granularity`: new enum value 'week'"]),
    ("new response field", None, _add_currency, "non-breaking",
     ["response 200 body: new field `[].currency`"]),
    ("new status", None, _add_429, "non-breaking", ["new documented status 429"]),
    ("request type widened", _limit_field_names, None, "non-breaking",
     ["query parameter `fields`: `[]` maxLength changed from 64 to None"]),
    ("response type narrowed", None, _decimal_cost_pattern, "non-breaking",
     ["response 200 body: `[].cost` pattern changed from None to '^[0-9]+[.][0-9]+$'"]),
    ("response extra keys narrowed", None, _extras_as_scalars, "non-breaking",
     ["`[].<other keys>` is now number, string or null (was any JSON value)"]),
    # annotations
    ("description changed", None, _describe_fields, "annotation",
     ["query parameter `fields`: description changed"]),
    ("example added", None, _example_group_by, "annotation",
     ["query parameter `group_by`: example added"]),
    ("title changed", None, _retitle_item, "annotation",
     ["response 200 body: `[]` title changed"]),
    ("summary changed", None, _summarize, "annotation", ["GET /analytics/usage: summary changed"]),
]  # fmt: skip


def _diff(tmp_path: Path, old: Document, new: Document, *options: str) -> Any:
    run = tool(
        "spec_diff",
        str(write_json(tmp_path / "old.json", old)),
        str(write_json(tmp_path / "new.json", new)),
        *options,
    )
    assert run.code in (0, 1), run.stderr
    assert run.stderr == ""
    return run


@pytest.mark.parametrize(
    ("before", "after", "kind", "words"),
    [rule[1:] for rule in RULES],
    ids=[rule[0] for rule in RULES],
)
def test_each_rule_classifies_its_change(
    tmp_path: Path, before: Change | None, after: Change | None, kind: str, words: list[str]
) -> None:
    old, new = upstream(), upstream()
    for change, document in ((before, old), (after, new)):
        if change is not None:
            change(document)
    run = _diff(tmp_path, old, new, "--format", "json")
    changes = json.loads(run.stdout)
    matching = [c for c in changes if all(word in c["message"] for word in words)]
    assert len(matching) == 1, f"not one change says {words}: {changes}"
    (change,) = matching
    assert change["type"] == kind, changes
    assert change["change"] in ("added", "removed", "changed")
    side = old if change["change"] == "removed" else new
    pointer(side, change["path"])  # a JSON pointer to what changed
    breaking = [c for c in changes if c["type"] == "breaking"]
    assert run.code == (1 if breaking else 0)
    if kind != "breaking":
        assert not breaking, f"a {kind} change is also reported as breaking: {breaking}"


def test_no_change_no_report(tmp_path: Path) -> None:
    run = _diff(tmp_path, upstream(), upstream(), "--format", "json")
    assert (run.code, json.loads(run.stdout)) == (0, [])


def test_only_the_operation_is_compared(tmp_path: Path) -> None:
    new = upstream()
    del new["paths"]["/models"]
    new["components"]["schemas"]["CallRequest"]["properties"]["name"]["type"] = "integer"
    new["info"]["x-upstream"] = {"source": "elsewhere", "sha256": "0" * 64}
    run = _diff(tmp_path, upstream(), new, "--format", "json")
    assert (run.code, json.loads(run.stdout)) == (0, [])


def test_openapi_yaml_differs_from_upstream_by_the_overlay_only() -> None:
    """openapi.yaml (an extract, with the overlay) against the whole upstream description:
    only what the overlay adds shows; what would break, going back, is what it adds to
    requests (LocalDateTime), the `default` answer and the items' `count`."""
    run = tool("spec_diff", "openapi.yaml", "tests/tools/opper_upstream.json", "--format", "json")
    changes = json.loads(run.stdout)
    breaking = {c["message"] for c in changes if c["type"] == "breaking"}
    assert breaking == {
        "query parameter `from_date` no longer accepts string (LocalDateTime)",
        "query parameter `to_date` no longer accepts string (LocalDateTime)",
        "documented status default removed",
        "response 200 body: field `[].count` removed",
    }
    assert run.code == 1


def test_text_report_lists_each_change_and_counts_them(tmp_path: Path) -> None:
    new = upstream()
    _drop_minute(new)
    _add_currency(new)
    run = _diff(tmp_path, upstream(), new)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("breaking      query parameter `granularity`")
    assert "enum value 'minute' removed" in lines[0]
    assert lines[1].startswith("non-breaking  response 200 body: new field `[].currency`")
    assert lines[-1].endswith(": 1 breaking, 1 non-breaking, 0 annotations")


def test_markdown_report_is_a_changelog_entry(tmp_path: Path) -> None:
    new = upstream()
    _drop_minute(new)
    _add_currency(new)
    _describe_fields(new)
    run = _diff(tmp_path, upstream(), new, "--format", "markdown")
    text = run.stdout
    assert text.startswith("## API changes: `")
    assert "1 breaking, 1 non-breaking, 1 annotation.\n" in text
    removed = text.index("### Removed\n- **Breaking:** query parameter `granularity`")
    added = text.index("### Added\n- response 200 body: new field `[].currency`")
    assert added < removed  # Keep a Changelog's order: Added, Changed, Removed
    assert "<details><summary>Annotations" in text
    assert "- query parameter `fields`: description changed" in text


def test_git_refs(tmp_path: Path) -> None:
    """git:REF reads openapi.yaml as committed at REF, in the current directory's repository."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "openapi.yaml").write_bytes((ROOT / "openapi.yaml").read_bytes())
    git(repo, "add", "openapi.yaml")
    git(repo, "commit", "-q", "-m", "one")
    changed = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    _drop_minute(changed)
    (repo / "openapi.yaml").write_text(yaml.safe_dump(changed))
    git(repo, "commit", "-q", "-am", "two")
    run = tool("spec_diff", "git:HEAD~1", "git:HEAD", "--format", "json", cwd=repo)
    assert run.code == 1, run.stderr
    (change,) = json.loads(run.stdout)
    assert change["message"] == "query parameter `granularity`: enum value 'minute' removed"
    back = tool("spec_diff", "git:HEAD", "git:HEAD~1", cwd=repo)
    assert back.code == 0
    assert "new enum value 'minute'" in back.stdout
    missing = tool("spec_diff", "git:no-such-ref", "git:HEAD", cwd=repo)
    assert missing.code == 2
    assert missing.stderr.startswith("spec-diff: cannot read git:no-such-ref: ")


@pytest.mark.parametrize("case", BAD_SOURCES)
@pytest.mark.parametrize("side", ["old", "new"])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str, side: str) -> None:
    bad, says = bad_source(tmp_path, case)
    good = str(ROOT / "tests" / "tools" / "opper_upstream.json")
    run = tool("spec_diff", *((bad, good) if side == "old" else (good, bad)))
    assert run.code == 2
    assert run.stdout == ""
    assert run.stderr.startswith("spec-diff: ")
    assert says in run.stderr
    assert run.stderr.count("\n") == 1, run.stderr


def test_a_description_is_read_from_its_url(tmp_path: Path) -> None:
    write_json(tmp_path / "openapi.json", upstream())
    with serving_folder(tmp_path) as base:
        run = tool("spec_diff", f"{base}/openapi.json", str(UPSTREAM))
        missing = tool("spec_diff", f"{base}/absent.json", str(UPSTREAM))
    assert run.code == 0, run.stderr
    assert run.stdout == f"{base}/openapi.json -> tests/tools/opper_upstream.json: no changes\n"
    assert missing.code == 2
    assert missing.stderr == f"spec-diff: cannot read {base}/absent.json: HTTP 404\n"


def test_nox_session_end_to_end(tmp_path: Path) -> None:
    """`nox -s spec-diff` as CI calls it: its report on stdout, the tool's exit codes as
    nox's (0, 1, 2), git:REF read from the repository the noxfile is in."""
    new = upstream()
    _drop_minute(new)
    fixture = str(ROOT / "tests" / "tools" / "opper_upstream.json")
    changed = str(write_json(tmp_path / "new.json", new))
    breaking = nox("spec-diff", fixture, changed, "--format", "json")
    assert breaking.code == 1, breaking.stderr
    (change,) = json.loads(breaking.stdout)
    assert change["type"] == "breaking"
    same = nox("spec-diff", "git:HEAD", "git:HEAD")
    assert same.code == 0, same.stderr
    assert same.stdout == "git:HEAD -> git:HEAD: no changes\n"
    bad = nox("spec-diff", closed_port_url("/v2/openapi.json"), fixture)
    assert bad.code == 2
    assert bad.stdout == ""
    assert "spec-diff: cannot read http://127.0.0.1:" in bad.stderr
