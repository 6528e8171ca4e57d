import datetime
from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.bad_request_error import BadRequestError
from ...models.error import Error
from ...models.get_usage_result_item import GetUsageResultItem
from ...models.granularity import Granularity
from ...models.not_found_error import NotFoundError
from ...models.request_validation_error import RequestValidationError
from ...models.unauthorized_error import UnauthorizedError
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    from_date: datetime.datetime | None | str | Unset = UNSET,
    to_date: datetime.datetime | None | str | Unset = UNSET,
    granularity: Granularity | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    group_by: list[str] | None | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_from_date: None | str | Unset
    if isinstance(from_date, Unset):
        json_from_date = UNSET
    elif isinstance(from_date, datetime.datetime):
        json_from_date = from_date.isoformat()
    else:
        json_from_date = from_date
    params["from_date"] = json_from_date

    json_to_date: None | str | Unset
    if isinstance(to_date, Unset):
        json_to_date = UNSET
    elif isinstance(to_date, datetime.datetime):
        json_to_date = to_date.isoformat()
    else:
        json_to_date = to_date
    params["to_date"] = json_to_date

    json_granularity: None | str | Unset
    if isinstance(granularity, Unset):
        json_granularity = UNSET
    elif isinstance(granularity, Granularity):
        json_granularity = granularity.value
    else:
        json_granularity = granularity
    params["granularity"] = json_granularity

    json_fields: list[str] | None | Unset
    if isinstance(fields, Unset):
        json_fields = UNSET
    elif isinstance(fields, list):
        json_fields = fields

    else:
        json_fields = fields
    params["fields"] = json_fields

    json_group_by: list[str] | None | Unset
    if isinstance(group_by, Unset):
        json_group_by = UNSET
    elif isinstance(group_by, list):
        json_group_by = group_by

    else:
        json_group_by = group_by
    params["group_by"] = json_group_by

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/analytics/usage",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> (
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
):
    if response.status_code == 200:
        response_200 = []
        _response_200 = response.json()
        for response_200_item_data in _response_200:
            response_200_item = GetUsageResultItem.from_dict(response_200_item_data)

            response_200.append(response_200_item)

        return response_200

    if response.status_code == 400:
        response_400 = BadRequestError.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = UnauthorizedError.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = NotFoundError.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = RequestValidationError.from_dict(response.json())

        return response_422

    response_default = Error.from_dict(response.json())

    return response_default


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    from_date: datetime.datetime | None | str | Unset = UNSET,
    to_date: datetime.datetime | None | str | Unset = UNSET,
    granularity: Granularity | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    group_by: list[str] | None | Unset = UNSET,
) -> Response[
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
]:
    """Usage

     Usage over a time range: one item per time bucket and group, with the cost and the sum of every
    requested field.

    Args:
        from_date (datetime.datetime | None | str | Unset): Start date for the time range
            (inclusive). If not provided, defaults to the first day of the current month.
        to_date (datetime.datetime | None | str | Unset): End date for the time range (exclusive).
            If not provided, defaults to the last day of the current month.
        granularity (Granularity | None | Unset): Time granularity for grouping (minute, hour,
            day, month, year)
        fields (list[str] | None | Unset): Fields from event_metadata to include and sum
        group_by (list[str] | None | Unset): Fields from tags to group by

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BadRequestError | Error | NotFoundError | RequestValidationError | UnauthorizedError | list[GetUsageResultItem]]
    """

    kwargs = _get_kwargs(
        from_date=from_date,
        to_date=to_date,
        granularity=granularity,
        fields=fields,
        group_by=group_by,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    from_date: datetime.datetime | None | str | Unset = UNSET,
    to_date: datetime.datetime | None | str | Unset = UNSET,
    granularity: Granularity | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    group_by: list[str] | None | Unset = UNSET,
) -> (
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
    | None
):
    """Usage

     Usage over a time range: one item per time bucket and group, with the cost and the sum of every
    requested field.

    Args:
        from_date (datetime.datetime | None | str | Unset): Start date for the time range
            (inclusive). If not provided, defaults to the first day of the current month.
        to_date (datetime.datetime | None | str | Unset): End date for the time range (exclusive).
            If not provided, defaults to the last day of the current month.
        granularity (Granularity | None | Unset): Time granularity for grouping (minute, hour,
            day, month, year)
        fields (list[str] | None | Unset): Fields from event_metadata to include and sum
        group_by (list[str] | None | Unset): Fields from tags to group by

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BadRequestError | Error | NotFoundError | RequestValidationError | UnauthorizedError | list[GetUsageResultItem]
    """

    return sync_detailed(
        client=client,
        from_date=from_date,
        to_date=to_date,
        granularity=granularity,
        fields=fields,
        group_by=group_by,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    from_date: datetime.datetime | None | str | Unset = UNSET,
    to_date: datetime.datetime | None | str | Unset = UNSET,
    granularity: Granularity | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    group_by: list[str] | None | Unset = UNSET,
) -> Response[
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
]:
    """Usage

     Usage over a time range: one item per time bucket and group, with the cost and the sum of every
    requested field.

    Args:
        from_date (datetime.datetime | None | str | Unset): Start date for the time range
            (inclusive). If not provided, defaults to the first day of the current month.
        to_date (datetime.datetime | None | str | Unset): End date for the time range (exclusive).
            If not provided, defaults to the last day of the current month.
        granularity (Granularity | None | Unset): Time granularity for grouping (minute, hour,
            day, month, year)
        fields (list[str] | None | Unset): Fields from event_metadata to include and sum
        group_by (list[str] | None | Unset): Fields from tags to group by

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BadRequestError | Error | NotFoundError | RequestValidationError | UnauthorizedError | list[GetUsageResultItem]]
    """

    kwargs = _get_kwargs(
        from_date=from_date,
        to_date=to_date,
        granularity=granularity,
        fields=fields,
        group_by=group_by,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    from_date: datetime.datetime | None | str | Unset = UNSET,
    to_date: datetime.datetime | None | str | Unset = UNSET,
    granularity: Granularity | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    group_by: list[str] | None | Unset = UNSET,
) -> (
    BadRequestError
    | Error
    | NotFoundError
    | RequestValidationError
    | UnauthorizedError
    | list[GetUsageResultItem]
    | None
):
    """Usage

     Usage over a time range: one item per time bucket and group, with the cost and the sum of every
    requested field.

    Args:
        from_date (datetime.datetime | None | str | Unset): Start date for the time range
            (inclusive). If not provided, defaults to the first day of the current month.
        to_date (datetime.datetime | None | str | Unset): End date for the time range (exclusive).
            If not provided, defaults to the last day of the current month.
        granularity (Granularity | None | Unset): Time granularity for grouping (minute, hour,
            day, month, year)
        fields (list[str] | None | Unset): Fields from event_metadata to include and sum
        group_by (list[str] | None | Unset): Fields from tags to group by

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BadRequestError | Error | NotFoundError | RequestValidationError | UnauthorizedError | list[GetUsageResultItem]
    """

    return (
        await asyncio_detailed(
            client=client,
            from_date=from_date,
            to_date=to_date,
            granularity=granularity,
            fields=fields,
            group_by=group_by,
        )
    ).parsed
