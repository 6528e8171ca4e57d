"""Contains all the data models used in inputs/outputs"""

from .bad_request_error import BadRequestError
from .error import Error
from .get_usage_result_item import GetUsageResultItem
from .granularity import Granularity
from .not_found_error import NotFoundError
from .request_validation_error import RequestValidationError
from .unauthorized_error import UnauthorizedError

__all__ = (
    "BadRequestError",
    "Error",
    "GetUsageResultItem",
    "Granularity",
    "NotFoundError",
    "RequestValidationError",
    "UnauthorizedError",
)
