"""The schema base every fedrec config section derives from, and how its errors read.

Configs are pydantic v2 models, validated once at the edge (the CLI or ``fedrec.run``): unknown keys
are refused (``extra="forbid"``), and ints, floats and bools are strict, so ``rounds: 2.5``,
``rounds: true``, ``client.batched: 'false'`` or ``seed: abc`` are errors instead of silent
coercions. Lists become tuples (configs are frozen and hashable) but a bare string or number is
never taken for a list (``data.features: item`` is an error, not ``('i', 't', 'e', 'm')``).

``config_error`` turns a pydantic ``ValidationError`` into the project's one-line ``ConfigError``
naming the dotted field (``client.lr``, ``tiers[1].share``) and what was expected.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from data_pipeline.errors import ConfigError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


# Lists in YAML, tuples in the frozen model; the elements stay strict.
IntTuple = Annotated[tuple[StrictInt, ...], Field(strict=False)]
PositiveIntTuple = Annotated[tuple[Annotated[StrictInt, Field(gt=0)], ...], Field(strict=False)]
StrTuple = Annotated[tuple[StrictStr, ...], Field(strict=False)]


def _dotted(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if i and part == loc[i - 1]:
            continue  # a wrapper model's single field named like its parent (``tiers.tiers[0]``)
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap") or "[" in str(part):
            continue  # validator frames pydantic inserts into the location
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The keys allowed at ``loc`` (for 'unknown key' messages), walking nested models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in _by_alias(current):
            return None
        annotation = _by_alias(current)[part].annotation
        current = _model_in(annotation)
        if current is None:
            return None
    return sorted(_by_alias(current)) if hasattr(current, "model_fields") else None


def _by_alias(model: type[BaseModel]) -> dict:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigError:
    """The first validation error as a ConfigError naming the field (``prefix`` + dotted path)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = prefix + _dotted(loc)
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return ConfigError(field, "unknown key" + (f"; expected one of {allowed}" if allowed else ""))
    if err["type"] == "missing":
        return ConfigError(field, "required")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if err["type"] != "value_error" and "input" in err:
        message += f", got {_show(err['input'])}"
    return ConfigError(field, message[0].lower() + message[1:])


def validate(model: type[BaseModel], doc: Any, prefix: str = "", context: dict | None = None):
    """``model`` from plain data (YAML/JSON types) or a ConfigError naming the bad field."""
    if not isinstance(doc, dict):
        raise ConfigError(prefix.rstrip(".") or "<root>", f"expected a mapping, got {_show(doc)}")
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as exc:
        raise config_error(exc, model, prefix) from None
