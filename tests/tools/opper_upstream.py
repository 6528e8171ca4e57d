"""A stand-in for Opper's published API description, made the way Opper makes it: a FastAPI
app whose `app.openapi()` is the document served at https://api.opper.ai/v2/openapi.json.

`GET /analytics/usage` is declared as the official SDK 1.x, generated from that document,
shows it: five optional query parameters, a list of `GetUsageResultItem` (a pydantic model with
`extra="allow"`: any other key, of any JSON value), four error models and bearer auth. The
other operations and models stand for the rest of the API, which `nox -s update-spec` leaves
out. Tests change this document (tests/tools/test_spec_diff.py) to drive every classification rule.

`python tests/tools/opper_upstream.py > tests/tools/opper_upstream.json` writes the document
as FastAPI serves it; openapi.yaml is made from that file, and
tests/tools/test_update_spec.py holds the three in step. FastAPI and pydantic are test-only
dependencies, pinned in noxfile.py.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

Bearer = Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]


class Granularity(str, Enum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


class GetUsageResultItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    time_bucket: datetime = Field(description="The start time of the time bucket")
    cost: str = Field(description="The cost in USD for the time bucket")


class BadRequestError(BaseModel):
    type: str = Field("BadRequestError", description="The type of error")
    message: str = Field("The request is invalid", description="The error message")
    detail: Any = Field(description="The detail of the error")


class UnauthorizedError(BaseModel):
    type: str = Field("UnauthorizedError", description="The type of error")
    message: str = Field("The request is unauthorized", description="The error message")
    detail: Any = Field(description="The detail of the error")


class NotFoundError(BaseModel):
    type: str = Field("NotFoundError", description="The type of error")
    message: str = Field("The resource was not found", description="The error message")
    detail: Any = Field(description="The detail of the error")


class RequestValidationError(BaseModel):
    type: str = Field("RequestValidationError", description="The type of error")
    message: str = Field("The request is invalid", description="The error message")
    detail: Any = Field(description="Where the error occurred and the error message")


# -- the rest of the API, left out on import


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class CallRequest(BaseModel):
    name: str = Field(description="The name of the function")
    instructions: str | None = None
    input: Any = None
    tags: dict[str, str] | None = None


class CallResponse(BaseModel):
    span_id: str
    message: str | None = None
    usage: Usage | None = None


class Model(BaseModel):
    name: str
    hosting_provider: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": BadRequestError, "description": "Bad Request"},
    401: {"model": UnauthorizedError, "description": "Unauthorized"},
    404: {"model": NotFoundError, "description": "Not Found"},
    422: {"model": RequestValidationError, "description": "Validation Error"},
}

app = FastAPI(
    title="Opper API",
    version="2.0.0",
    servers=[{"url": "https://api.opper.ai/v2"}],
    openapi_tags=[
        {"name": "analytics", "description": "Usage analytics"},
        {"name": "functions", "description": "Calling functions"},
    ],
)


@app.get(
    "/analytics/usage",
    tags=["analytics"],
    response_model=list[GetUsageResultItem],
    responses=ERRORS,
)
def usage(
    _: Bearer,
    from_date: Annotated[
        datetime | None,
        Query(
            description="Start date for the time range (inclusive). If not provided, defaults "
            "to the first day of the current month."
        ),
    ] = None,
    to_date: Annotated[
        datetime | None,
        Query(
            description="End date for the time range (exclusive). If not provided, defaults to "
            "the last day of the current month."
        ),
    ] = None,
    granularity: Annotated[
        Granularity | None,
        Query(description="Time granularity for grouping (minute, hour, day, month, year)"),
    ] = None,
    fields: Annotated[
        list[str] | None, Query(description="Fields from event_metadata to include and sum")
    ] = None,
    group_by: Annotated[list[str] | None, Query(description="Fields from tags to group by")] = None,
) -> Any:
    raise NotImplementedError  # only the description is used


@app.post("/call", tags=["functions"], response_model=CallResponse, responses=ERRORS)
def call(_: Bearer, request: CallRequest) -> Any:
    raise NotImplementedError


@app.get("/models", tags=["functions"], response_model=list[Model], responses=ERRORS)
def models(_: Bearer, offset: int = 0, limit: int = 100) -> Any:
    raise NotImplementedError


def served() -> bytes:
    """The document as FastAPI serves it (its JSONResponse's encoding)."""
    return json.dumps(
        app.openapi(), ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


if __name__ == "__main__":
    sys.stdout.buffer.write(served())
