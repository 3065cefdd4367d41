"""The one error type for untrusted input, shared by every package of the bundle.

Handlers turn ``InvalidInput`` into an HTTP 400 whose message starts with the
offending field (``packages[1]: not a valid requirement …``), so a person can
act on it. Validation itself uses pydantic models with ``extra="forbid"``;
``from_validation_error`` maps pydantic's first error onto that field-first
form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ValidationError


class InvalidInput(ValueError):
    """Bad input. ``field`` names the offending field; ``message`` says what to do."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def field_path(location: Sequence[str | int], root: str = "") -> str:
    """``("packages", 1)`` → ``packages[1]``; an empty location names ``root``."""
    path = root
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or root or "input"


def from_validation_error(
    error: ValidationError,
    root: str = "",
    describe: Callable[[dict], str | None] | None = None,
) -> InvalidInput:
    """The first error of ``error`` as an ``InvalidInput`` naming its field.

    ``describe`` may rewrite an error's message (it gets pydantic's error dict
    and returns a message, or None to keep pydantic's own). Messages raised by
    a validator as ``ValueError("…")`` arrive without pydantic's "Value error, "
    prefix.
    """
    first = error.errors(include_url=False)[0]
    location = [part for part in first["loc"] if not str(part).startswith("function-")]
    message = (describe(first) if describe else None) or first["msg"]
    if first["type"] == "extra_forbidden":
        message = "is not a recognised option"
    elif first["type"] == "value_error" and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return InvalidInput(field_path(location, root), message)


def parse_model(model: type[BaseModel], raw: str | bytes | dict, root: str, dict_root: str = ""):
    """``raw`` (JSON text, or already-decoded values such as query arguments) as ``model``;
    otherwise ``InvalidInput`` naming the offending field, under ``root`` for JSON and
    ``dict_root`` for decoded values. JSON is decoded by pydantic's parser, which refuses
    deep nesting instead of overflowing the stack."""
    try:
        if isinstance(raw, dict):
            return model.model_validate(raw)
        return model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        if e.errors(include_url=False)[0]["type"].startswith("json_"):
            raise InvalidInput(root, "is not valid JSON (or nests too deeply)") from None
        raise from_validation_error(e, dict_root if isinstance(raw, dict) else root) from None
