"""`from opperai_usage.utils import RetryConfig, BackoffStrategy`, as with the official SDK."""

from ._retries import DEFAULT_RETRY_CONFIG, BackoffStrategy, RetryConfig

__all__ = ["DEFAULT_RETRY_CONFIG", "BackoffStrategy", "RetryConfig"]
