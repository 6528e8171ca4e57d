"""Every error `get_usage` raises on purpose, in one flat hierarchy.

- `OpperError`: the API answered, and the answer is an error (`status_code`, `headers`, `body`,
  `raw_response`, `request_id`; `str(error)` ends with the request id when there is one).
  - `BadRequestError`, `UnauthorizedError`, `NotFoundError`, `RequestValidationError`: the error
    responses `openapi.yaml` documents, with the decoded body in `.data` (`type`, `message`,
    `detail`).
  - `APIError`: any other 4XX/5XX (or an unexpected status), whatever its content type.
  - `ResponseValidationError`: a body that does not fit the schema; `.cause` says why.
  - `ResponseTooLargeError`: a body larger, decoded, than `max_response_bytes`; not read.
- `InvalidArgumentError` (a `ValueError`): an argument was rejected before any request was sent.
- Network failures are httpx's own exceptions (`httpx.RequestError` and its subclasses), their
  request's credentials redacted.

Every error pickles and copies with everything a user reads from it (for multiprocessing, task
queues and error trackers), and never with the API key: where a server or a proxy quoted the
request's credentials back (in any spelling `_redact` knows), an error holds the answer with
them replaced by `<redacted>` (`without_secrets`): message, body, headers, data, raw response.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, ClassVar, Generic, TypeVar, cast

import attrs
import httpx

from ._generated.models import (
    BadRequestError as _BadRequestError,
)
from ._generated.models import (
    NotFoundError as _NotFoundError,
)
from ._generated.models import (
    RequestValidationError as _RequestValidationError,
)
from ._generated.models import (
    UnauthorizedError as _UnauthorizedError,
)
from ._generated.types import UNSET
from ._redact import redact
from ._validation import InvalidArgumentError

__all__ = [
    "APIError",
    "BadRequestError",
    "BadRequestErrorData",
    "InvalidArgumentError",
    "NotFoundError",
    "NotFoundErrorData",
    "OpperError",
    "RequestValidationError",
    "RequestValidationErrorData",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "UnauthorizedError",
    "UnauthorizedErrorData",
]

MAX_MESSAGE_LEN = 10_000
#: How much of a body that is not a valid answer `ResponseValidationError`'s message quotes.
MAX_QUOTED_BODY_LEN = 500
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def redacted_request(request: httpx.Request) -> httpx.Request:
    """A copy of `request` whose credentials (`Authorization` and the like) read `<redacted>`."""
    headers = [
        (name, "<redacted>" if name.lower() in _SECRET_HEADERS else value)
        for name, value in request.headers.multi_items()
    ]
    return httpx.Request(request.method, request.url, headers=headers)


def credentials(request: httpx.Request) -> set[str]:
    """What `request` carries that is secret: each credential header's value; for an
    `Authorization` with a scheme, the credentials alone (so that an echo reads
    `Bearer <redacted>`, which says what was there)."""
    found: set[str] = set()
    for name, value in request.headers.multi_items():
        name = name.lower()
        if name in _SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            with_scheme = name.endswith("authorization") and scheme and rest.strip()
            found.add(rest if with_scheme else value)
    return found  # an empty one too: `redact` looks for none shorter than 4 characters


def secrets_sent(response: httpx.Response) -> list[str]:
    """The credentials sent for `response`: by its request, by those redirected to it, and
    by the redirect it did not follow. What the server sent back is searched for them."""
    # Only answers httpx received get here, and httpx sets each one's request.
    requests = [*(earlier.request for earlier in response.history), response.request]
    if response.next_request is not None:
        requests.append(response.next_request)
    return sorted(set().union(*map(credentials, requests)))


def without_secrets(response: httpx.Response, secrets: list[str]) -> httpx.Response:
    """`response` itself when it quotes none of `secrets`; otherwise a copy in which each
    spelling of them reads `<redacted>`, in its headers, its body (when read) and the
    answers it was redirected from. Errors keep the copy, so that a key a server echoed
    back is in none of them."""
    if not secrets:
        return response
    history = [without_secrets(earlier, secrets) for earlier in response.history]
    pairs = response.headers.multi_items()
    headers = [(name, redact(value, secrets)) for name, value in pairs]
    # "": a body not read (its stand-in is only compared with itself redacted: MUTANTS.md).
    text = response.text if hasattr(response, "_content") else ""  # pragma: no mutate
    clean = redact(text, secrets)
    # Responses compare by identity: the same list when no earlier answer needed a copy.
    if clean == text and headers == pairs and history == response.history:
        return response
    copied = copy.copy(response)
    copied.history = history
    copied.headers = httpx.Headers(headers, encoding=response.headers.encoding)
    if clean != text:
        # As `read()` keeps a body; `text` then reads the same, and no copy holds the key.
        encoding = response.encoding or "utf-8"  # pragma: no mutate (as httpx decoded it)
        copied._content = clean.encode(encoding, errors="replace")
        copied._text = clean
    return copied


def _redacted(response: httpx.Response) -> httpx.Response:
    """A copy of `response` with no credentials in any request it refers to (its own, the
    redirect it did not follow, those of the redirects it did), for pickling."""
    clone = copy.copy(response)
    with contextlib.suppress(RuntimeError):  # a response built by hand has no request
        clone.request = redacted_request(response.request)
    if response.next_request is not None:
        clone.next_request = redacted_request(response.next_request)
    clone.history = [_redacted(earlier) for earlier in response.history]
    return clone


def _rebuild(cls: type[OpperError], state: dict[str, Any]) -> OpperError:
    error = cls.__new__(cls)
    Exception.__init__(error, state["message"])
    error.__dict__.update(state)
    return error


class OpperError(Exception):
    """The API answered with an error (or with something that is not a valid answer)."""

    message: str
    status_code: int
    body: str
    headers: httpx.Headers
    raw_response: httpx.Response

    def __init__(self, message: str, raw_response: httpx.Response, body: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = raw_response.status_code
        self.body = body if body is not None else raw_response.text
        self.headers = raw_response.headers
        self.raw_response = raw_response

    @property
    def request_id(self) -> str | None:
        """The server's `x-request-id`, to quote when asking Opper about this call."""
        request_id: str | None = self.headers.get("x-request-id")
        return request_id

    def __str__(self) -> str:
        request_id = self.request_id
        return f"{self.message} (request id {request_id})" if request_id else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles (for multiprocessing, task queues, error trackers) never carry the API key.
        state = {**self.__dict__, "raw_response": _redacted(self.raw_response)}
        return _rebuild, (type(self), state)


def _described(raw_response: httpx.Response, body: str | None, limit: int) -> str:
    """`Status 502 Content-Type text/html. Body: ...`, as the official SDK words an API error."""
    shown = body or raw_response.text or '""'
    text = f"Status {raw_response.status_code}"
    content_type = raw_response.headers.get("content-type", '""')  # pragma: no mutate
    if content_type != "application/json":
        quoted = f'"{content_type}"' if " " in content_type else content_type
        text += f" Content-Type {quoted}"
    if len(shown) > limit:
        shown = f"{shown[:limit]}...and {len(shown) - limit} more chars"
    return f"{text}. Body: {shown}"


class APIError(OpperError):
    """Any other error status, whatever the body (an HTML page from a proxy, plain text, JSON)."""

    def __init__(
        self,
        message: str,
        raw_response: httpx.Response,
        body: str | None = None,
    ) -> None:
        text = f"{message}: " if message else ""
        text += _described(raw_response, body, MAX_MESSAGE_LEN)
        super().__init__(text.strip(), raw_response, body)


class ResponseValidationError(OpperError):
    """A 2XX answer (or a documented error answer) whose body does not fit `openapi.yaml`: not
    JSON (a captive portal's page, say), or JSON of another shape. The message names what did
    not fit, then the status, the content type and the start of the body."""

    def __init__(
        self,
        message: str,
        raw_response: httpx.Response,
        cause: Exception,
        body: str | None = None,
    ) -> None:
        described = _described(raw_response, body, MAX_QUOTED_BODY_LEN)
        super().__init__(f"{message}: {cause}. {described}", raw_response, body)
        self.__cause__ = cause
        self._cause = cause  # `__cause__` is not pickled, and multiprocessing replaces it

    @property
    def cause(self) -> Exception:
        """What did not fit: the decoder's or the schema check's own exception."""
        return self._cause


class ResponseTooLargeError(OpperError):
    """An answer whose body, decoded, is larger than `max_response_bytes` (an argument of
    `Opper`): a gzip body of 1 MB may inflate to 1 GB. Reading stops at the limit, before
    holding more; the call is not retried (the server would send the same again). `limit`
    is the setting; `status_code`, `headers` and `request_id` are the answer's; `body` is
    empty, as nothing of it is kept."""

    limit: int

    def __init__(self, raw_response: httpx.Response, limit: int) -> None:
        encoding = raw_response.headers.get("content-encoding", "").strip()  # pragma: no mutate
        decoded = f", decoded from {encoding}," if encoding else ""
        message = (
            f"Status {raw_response.status_code}: the answer's body{decoded} is larger than "
            f"max_response_bytes ({limit:,} bytes), so it was not read; "
            "Opper(max_response_bytes=...) allows larger answers"
        )
        super().__init__(message, raw_response, body="")
        self.limit = limit


class _ErrorData:
    """What the typed errors' `.data` adds to the generated error models.

    `type` as the official SDK spells it (the generated field is `type_`), and the spec's
    defaults for `type` and `message` when the body leaves them out; so both are a string, or
    `None` when the body says null (as with the official SDK's `Optional[str]`).
    """

    __slots__ = ()
    type_: Any
    message: str | None

    @property
    def type(self) -> str | None:
        return cast("str | None", self.type_)

    def _fill_defaults(self) -> None:
        """The spec's defaults for what the body left out; `ValueError` for a value of another
        JSON type than the spec's (`"message": 5`), which does not fit it."""
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if not isinstance(field.default, str):
                continue
            if value is UNSET:
                setattr(self, field.name, field.default)
            elif value is not None and not isinstance(value, str):
                kind = type(value).__name__
                name = field.name.rstrip("_")  # pragma: no mutate
                raise ValueError(f"{name!r} must be a string, not {kind}")


# The generated models type `message` as `str | Unset`; `_fill_defaults` has replaced UNSET by
# the time a user reads it, so `_ErrorData`'s `str | None` is what it is (hence the ignores).


class BadRequestErrorData(_ErrorData, _BadRequestError):  # type: ignore[misc]
    __slots__ = ()


class UnauthorizedErrorData(_ErrorData, _UnauthorizedError):  # type: ignore[misc]
    __slots__ = ()


class NotFoundErrorData(_ErrorData, _NotFoundError):  # type: ignore[misc]
    __slots__ = ()


class RequestValidationErrorData(_ErrorData, _RequestValidationError):  # type: ignore[misc]
    __slots__ = ()


D = TypeVar("D", bound=_ErrorData)


class _DataError(OpperError, Generic[D]):
    """An error response that `openapi.yaml` documents, decoded into `data`."""

    data_model: ClassVar[type[Any]]
    data: D

    def __init__(self, data: D, raw_response: httpx.Response, body: str | None = None) -> None:
        data._fill_defaults()
        super().__init__(str(data.message) or body or raw_response.text, raw_response, body)
        self.data = data


class BadRequestError(_DataError[BadRequestErrorData]):
    data_model = BadRequestErrorData


class UnauthorizedError(_DataError[UnauthorizedErrorData]):
    data_model = UnauthorizedErrorData


class NotFoundError(_DataError[NotFoundErrorData]):
    data_model = NotFoundErrorData


class RequestValidationError(_DataError[RequestValidationErrorData]):
    data_model = RequestValidationErrorData


def typed_error_for(model: type[Any]) -> type[_DataError[Any]] | None:
    """The typed error whose `.data` extends the generated error model `model`, if any."""
    for cls in _DataError.__subclasses__():
        if issubclass(cls.data_model, model):
            return cls
    return None
