"""Kubernetes ``Status`` error bodies and the exception that carries them to the HTTP layer."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API failure rendered as a ``kind: Status`` body with a real Kubernetes ``reason``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The ``Status`` object the apiserver would send."""
        return status_body("Failure", self.message, self.reason, self.code, self.details)


def status_body(
    status: str,
    message: str = "",
    reason: str = "",
    code: int = 200,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a ``v1.Status`` dict; empty fields are left out like the Go encoder does."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _qualified(resource: str, group: str) -> str:
    # Real messages name the resource as "deployments.apps", core resources bare ("pods").
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    """404 NotFound for one named object."""
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists on create."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, group: str, name: str) -> ApiError:
    """409 Conflict on a stale resourceVersion."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest (malformed selector, body that does not parse, mismatched namespace...)."""
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, field: str, message: str) -> ApiError:
    """422 Invalid with one field cause, as validation failures look on a real apiserver."""
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {field}: {message}',
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415 for a PATCH content type the resource does not accept."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)} (got {content_type!r})",
    )


def method_not_allowed(message: str) -> ApiError:
    """405 for a verb the resource does not support."""
    return ApiError(405, "MethodNotAllowed", message)
