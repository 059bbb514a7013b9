"""The one error tree of the gateway: every class carries an HTTP status and a stable code.

    GatewayError                      500 internal_error
    ├── ConfigError                   (startup / reload; never sent to a client)
    ├── BadRequest                    400 bad_request
    ├── AuthenticationError           401 invalid_credentials   (logins)
    ├── InvalidToken                  401 invalid_token         (/validate and token use)
    │   └── reason: malformed | bad_signature | unknown_kid | expired | not_yet_valid |
    │               bad_claims | unknown_role | too_long | missing
    ├── Forbidden                     403 forbidden
    │   └── LoginMethodNotAllowed     403 login_method_not_allowed
    ├── NotFound                      404 not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── PayloadTooLarge               413 payload_too_large
    ├── TooManyAttempts               429 too_many_attempts     (logins only; never /validate)
    └── RevocationNotStored           503 revocation_not_stored (applied here, not yet durable)

Clients always see `{"error": code, "message": message}`; messages never hold secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: int = 500
    code: str = "internal_error"
    default_message: str = "internal error"
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only class defaults

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def to_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"
    default_message = "bad request"


class AuthenticationError(GatewayError):
    """A login failed. One wording for every cause, so users cannot be enumerated."""

    status = 401
    code = "invalid_credentials"
    default_message = "invalid username or password"


class InvalidToken(GatewayError):
    """A token was missing or did not verify; `reason` is for logs and metrics only."""

    status = 401
    code = "invalid_token"
    default_message = "the access token is missing, invalid or expired"
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}  # noqa: RUF012

    def __init__(self, reason: str = "malformed") -> None:
        super().__init__()
        self.reason = reason


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    default_message = "not allowed"


class LoginMethodNotAllowed(Forbidden):
    code = "login_method_not_allowed"
    default_message = "this account may not use this login method"


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    default_message = "not found"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    default_message = "method not allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    default_message = "request body too large"


class TooManyAttempts(GatewayError):
    """A login ban is in force; `retry_after` seconds until it ends."""

    status = 429
    code = "too_many_attempts"
    default_message = "too many failed logins; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class RevocationNotStored(GatewayError):
    status = 503
    code = "revocation_not_stored"
    default_message = ("the revocation applies on this instance but could not be stored; "
                       "it may not survive a restart or reach other instances yet")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration or credentials file."""

    file: str
    line: int | None
    key: str
    expected: str
    found: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: expected {self.expected}, found {self.found}"


class ConfigError(GatewayError):
    """A configuration, key or credentials file is unusable; lists every problem at once."""

    code = "config_error"

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [str(p) for p in problems]
        super().__init__("; ".join(self.problems) if self.problems else "invalid configuration")

    def __str__(self) -> str:
        return "\n".join(self.problems)
