"""Papermill-style notebook parameters, typed from the cell's literal defaults (pure).

A notebook declares parameters in a code cell tagged ``parameters`` whose
statements are plain assignments of literals::

    region = "west"          # str
    top_n = 10               # int
    threshold = 0.5          # float
    include_returns = False  # bool
    start = datetime.date(2026, 1, 1)   # date (also ``date(2026, 1, 1)``)

``parameter_types`` reads that cell (with ``ast``; nothing is executed) and
``validate`` checks given values against a pydantic model built from it
(``extra="forbid"``, strict types; a date is given as ``"YYYY-MM-DD"``). The
values are injected as a new cell right after the parameters cell, tagged
``injected-parameters``, made of ``repr`` literals only — never of anything
a caller wrote — and ``inject`` re-parses it to prove that.
"""

from __future__ import annotations

import ast
import datetime
import math
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, ValidationError, create_model

from jupyterhub_civis.errors import InvalidInput, from_validation_error

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
MAX_PARAMETERS = 100
MAX_STRING_CHARS = 10_000
INT64 = 1 << 63

#: the pydantic type of each kind of default
_TYPES: dict[type, Any] = {
    bool: bool,
    int: Annotated[int, Field(strict=True, ge=-INT64, lt=INT64)],
    float: Annotated[float, Field(allow_inf_nan=False)],
    str: Annotated[str, StringConstraints(max_length=MAX_STRING_CHARS, strict=True)],
    datetime.date: Annotated[datetime.date, Field(strict=False)],
}


def _is_date_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or node.keywords or len(node.args) != 3:
        return False
    func = node.func
    named = (isinstance(func, ast.Name) and func.id == "date") or (
        isinstance(func, ast.Attribute)
        and func.attr == "date"
        and isinstance(func.value, ast.Name)
        and func.value.id == "datetime"
    )
    return named and all(
        isinstance(a, ast.Constant) and type(a.value) is int for a in node.args
    )


def _literal(node: ast.expr):
    """The default's value for a literal we can type, else ``None``."""
    if _is_date_call(node):
        try:
            return datetime.date(*(a.value for a in node.args))
        except ValueError:
            return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand)
        return -inner if type(inner) in (int, float) else None
    if isinstance(node, ast.Constant) and type(node.value) in (bool, int, float, str):
        return node.value
    return None


def check_notebook(nb, field: str = "body.notebook") -> None:
    """``InvalidInput`` unless ``nb`` is a valid nbformat 4 notebook."""
    import nbformat

    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise InvalidInput(field, "must be a notebook (nbformat 4 JSON) with 'cells'")
    try:
        nbformat.validate(nbformat.from_dict(nb), version=4)
    except Exception as e:
        raise InvalidInput(field, f"is not a valid nbformat 4 notebook: {str(e)[:300]}") from None


def _tags(cell: dict) -> list:
    return (cell.get("metadata") or {}).get("tags") or []


def parameters_cell(nb: dict) -> int | None:
    """Index of the first code cell tagged ``parameters``."""
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in _tags(cell):
            return i
    return None


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parameter_defaults(nb: dict) -> dict[str, Any]:
    """``name -> default`` of the parameters cell (empty without one). Assignments whose
    value is not a typed literal are not parameters; code in that cell is left alone."""
    index = parameters_cell(nb)
    if index is None:
        return {}
    try:
        tree = ast.parse(_source(nb["cells"][index]))
    except SyntaxError:
        return {}
    defaults = {}
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets = [stmt.target]
        value = stmt.value if targets else None
        for target in targets:
            if isinstance(target, ast.Name) and not target.id.startswith("_"):
                literal = _literal(value)
                if literal is not None:
                    defaults[target.id] = literal
    return defaults


def parameter_types(nb: dict) -> dict[str, type]:
    return {name: type(value) for name, value in parameter_defaults(nb).items()}


def validate(nb: dict, values: Any) -> dict[str, Any]:
    """``values`` (decoded JSON) checked against the notebook's parameters: a dict of
    typed values, or ``InvalidInput`` naming the offending field (``parameters.top_n``)."""
    if values is None or values == {}:
        return {}
    if not isinstance(values, dict):
        raise InvalidInput("parameters", "must be an object of parameter names to values")
    defaults = parameter_defaults(nb)
    if not defaults:
        raise InvalidInput(
            "parameters", "this notebook has no cell tagged 'parameters' with literal defaults"
        )
    if len(values) > MAX_PARAMETERS:
        raise InvalidInput("parameters", f"at most {MAX_PARAMETERS} values")
    fields = {name: (_TYPES[type(value)], value) for name, value in defaults.items()}
    model = create_model(
        "Parameters", __config__=ConfigDict(extra="forbid", strict=True), **fields
    )
    try:
        checked = model.model_validate(values)
    except ValidationError as e:
        raise from_validation_error(e, "parameters") from None
    given = set(values)
    return {name: getattr(checked, name) for name in defaults if name in given}


def _literal_source(value: Any) -> str:
    if type(value) is datetime.date:
        return f"datetime.date({value.year}, {value.month}, {value.day})"
    if type(value) is float and not math.isfinite(value):
        raise InvalidInput("parameters", "numbers must be finite")
    return repr(value)


def injected_source(values: dict[str, Any]) -> str:
    """The injected cell's code: ``import datetime`` when needed, then ``name = literal``."""
    lines = ["# Parameters (injected)"]
    if any(type(v) is datetime.date for v in values.values()):
        lines.append("import datetime")
    lines += [f"{name} = {_literal_source(value)}" for name, value in values.items()]
    source = "\n".join(lines) + "\n"
    _prove_literals(source)
    return source


def _prove_literals(source: str) -> None:
    """The injected code is assignments of literals (and ``import datetime``), nothing else."""
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Import) and [a.name for a in stmt.names] == ["datetime"]:
            continue
        ok = (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and _literal(stmt.value) is not None
        )
        if not ok:
            raise InvalidInput("parameters", "values must be plain literals")


def inject(nb: dict, values: dict[str, Any]) -> dict:
    """A copy of ``nb`` with a cell of ``values`` after its parameters cell (none: ``nb``)."""
    if not values:
        return nb
    index = parameters_cell(nb)
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "injected-parameters",
        "metadata": {"tags": [INJECTED_TAG]},
        "outputs": [],
        "source": injected_source(values),
    }
    cells = [c for c in nb["cells"] if INJECTED_TAG not in _tags(c)]
    cells.insert(index + 1, cell)
    return {**nb, "cells": cells}


def describe(nb: dict) -> list[dict]:
    """The parameters as a form lists them: name, type name and default (JSON-able)."""
    return [
        {
            "name": name,
            "type": "date" if type(value) is datetime.date else type(value).__name__,
            "default": value.isoformat() if type(value) is datetime.date else value,
        }
        for name, value in parameter_defaults(nb).items()
    ]
