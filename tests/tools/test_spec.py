"""openapi.yaml is a valid OpenAPI 3.1 document, and its examples fit its own schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.support.spec import operation, resolve, spec


def test_spec_is_valid_openapi() -> None:
    from openapi_spec_validator import validate  # a slow import, for this test only

    validate(spec())


def _schema(node: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema for `node` with the components it refers to."""
    return {**node, "components": spec()["components"]}


@pytest.mark.parametrize("status", sorted(operation()["responses"]))
def test_response_examples_fit_their_schemas(status: str) -> None:
    content = operation()["responses"][status]["content"]["application/json"]
    jsonschema.validate(content["example"], _schema(content["schema"]))


@pytest.mark.parametrize("parameter", operation()["parameters"], ids=lambda p: p["name"])
def test_parameter_examples_fit_their_schemas(parameter: dict[str, Any]) -> None:
    jsonschema.validate(parameter["example"], _schema(parameter["schema"]))
    assert parameter["in"] == "query"
    assert parameter["required"] is False
    assert (parameter["style"], parameter["explode"]) == ("form", True)


def test_error_schemas_carry_type_message_detail() -> None:
    for status, response in operation()["responses"].items():
        if status.startswith("2"):
            continue
        schema = resolve(response["content"]["application/json"]["schema"])
        assert {"type", "message", "detail"} <= schema["properties"].keys(), status
