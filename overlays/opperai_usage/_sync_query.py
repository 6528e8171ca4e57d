"""What a synced table holds, checked without dlt: `usage_source` checks it, and the command
line checks it before importing dlt, so that bad usage is refused at once (importing dlt takes
about a second)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._columns import columns_for
from .models import Granularity

if TYPE_CHECKING:
    from ._client import Opper

_UTC = dt.timezone.utc


def check_sync_query(
    opper: Opper,
    granularity: Granularity | str,
    group_by: Sequence[str],
    fields: Sequence[str],
    window: int,
    concurrency: int,
) -> None:
    """Raise `InvalidArgumentError` for what `iter_usage` would refuse, or a key that is both a
    tag and a field; nothing is sent (the windows are only planned)."""
    columns_for((), fields, group_by)
    opper.analytics.iter_usage(
        from_date=dt.datetime(2000, 1, 1, tzinfo=_UTC),
        to_date=dt.datetime(2000, 1, 2, tzinfo=_UTC),
        granularity=granularity,
        group_by=group_by,
        fields=fields,
        window=window,
        concurrency=concurrency,
    ).close()
