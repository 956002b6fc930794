"""The client's one error: an answer that is not a success, with the API's envelope."""

from typing import Any

import httpx


class ApiError(Exception):
    """The API answered with an error (``{"error": {"code", "message", "details"}}``)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{status} {code}: {message}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> "ApiError":
        try:
            error = response.json()["error"]
            return cls(response.status_code, str(error["code"]), str(error["message"]),
                       error.get("details"))
        except (ValueError, KeyError, TypeError):
            return cls(response.status_code, "http_error", response.text[:500] or
                       response.reason_phrase)

    @property
    def retryable(self) -> bool:
        """True for answers worth trying again later (rate limited, unavailable)."""
        return self.status in (429, 502, 503, 504)
