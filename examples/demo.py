"""The seed's example (the official SDK's page for `analytics.get_usage`), run unchanged but for
`server_url`, then printed as a table. `nox -s demo` points it at the local server."""

from __future__ import annotations

import os

from opperai_usage import Opper
from opperai_usage.models import GetUsageResultItem

COLUMNS = ["time_bucket", "model", "project.name", "completion_tokens", "total_tokens", "cost"]


def row(item: GetUsageResultItem) -> list[str]:
    values = {
        **item.additional_properties,
        "time_bucket": f"{item.time_bucket:%Y-%m-%d}",
        "cost": item.cost,
    }
    return ["-" if values.get(name) is None else str(values[name]) for name in COLUMNS]


def main() -> None:
    with Opper(
        http_bearer=os.getenv("OPPER_HTTP_BEARER", ""),
        server_url=os.getenv("OPPER_SERVER_URL"),
    ) as opper:
        res = opper.analytics.get_usage(
            fields=[
                "completion_tokens",
                "total_tokens",
            ],
            group_by=[
                "model",
                "project.name",
            ],
        )

    rows = [COLUMNS, *(row(item) for item in res)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for index, cells in enumerate(rows):
        print(
            "  ".join(
                cell.rjust(w) if index and i > 2 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    total = sum(float(item.cost) for item in res)
    print(f"\n{len(res)} items, this month so far; total cost ${total:.6f}")


if __name__ == "__main__":
    main()
