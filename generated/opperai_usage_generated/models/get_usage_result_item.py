from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from dateutil.parser import isoparse

from ..types import UNSET, Unset

T = TypeVar("T", bound="GetUsageResultItem")


@_attrs_define
class GetUsageResultItem:
    """One time bucket (and group): the cost, one key per requested field holding its sum, and one key per group_by tag
    holding the tag's value (null when absent). Extra keys may hold any JSON value (Opper declares the item with
    extra="allow"): sums are numbers and tags are usually strings, but a tag may be a boolean, an object or an array.

    """

    time_bucket: datetime.datetime
    """ The start time of the time bucket """
    cost: str
    """ The cost in USD for the time bucket """
    count: int | Unset = UNSET
    """ The number of events in the time bucket (and group) """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        time_bucket = self.time_bucket.isoformat()

        cost = self.cost

        count = self.count

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "time_bucket": time_bucket,
                "cost": cost,
            }
        )
        if count is not UNSET:
            field_dict["count"] = count

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        time_bucket = isoparse(d.pop("time_bucket"))

        cost = d.pop("cost")

        count = d.pop("count", UNSET)

        get_usage_result_item = cls(
            time_bucket=time_bucket,
            cost=cost,
            count=count,
        )

        get_usage_result_item.additional_properties = d
        return get_usage_result_item

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
