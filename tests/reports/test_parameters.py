"""Papermill-style parameters (pure): typed from literal defaults, injected as literals."""

import datetime

import pytest

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.execution import parameters as p
from jupyterhub_civis.execution.handlers import may_execute


def nb(source, tags=("parameters",)):
    return {
        "cells": [
            {"cell_type": "markdown", "source": "# r", "metadata": {}},
            {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}, "outputs": []},
            {"cell_type": "code", "source": "print(x)", "metadata": {}, "outputs": []},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


SOURCE = (
    "import datetime\n"
    "x = 1\ny: float = -2.5\nname = 'a'\nflag = True\nday = datetime.date(2026, 1, 31)\n"
    "computed = x + 1\n_private = 3\nlisted = [1]\n"
)


def test_defaults_are_typed_from_literals_only():
    assert p.parameter_defaults(nb(SOURCE)) == {
        "x": 1, "y": -2.5, "name": "a", "flag": True, "day": datetime.date(2026, 1, 31)
    }
    assert p.describe(nb(SOURCE))[-1] == {"name": "day", "type": "date", "default": "2026-01-31"}
    assert p.parameter_defaults(nb(SOURCE, tags=())) == {}
    assert p.parameter_defaults(nb("x = (")) == {}


def test_values_are_validated_and_injected_after_the_parameters_cell():
    book = nb(SOURCE)
    values = p.validate(book, {"x": 5, "y": 3, "name": "b'\nimport os", "day": "2026-02-01"})
    assert values == {"x": 5, "y": 3.0, "name": "b'\nimport os", "day": datetime.date(2026, 2, 1)}
    injected = p.inject(book, values)
    cell = injected["cells"][2]
    assert cell["metadata"]["tags"] == ["injected-parameters"]
    namespace = {}
    exec(cell["source"], namespace)  # literals only: safe to evaluate here
    assert namespace["name"] == "b'\nimport os" and namespace["day"] == datetime.date(2026, 2, 1)
    assert len(p.inject(injected, values)["cells"]) == 4  # re-injecting replaces, never stacks
    assert p.inject(book, {}) is book


@pytest.mark.parametrize(
    "values, field",
    [
        ({"x": "1"}, "parameters.x"),
        ({"x": 1.5}, "parameters.x"),
        ({"x": True}, "parameters.x"),
        ({"x": 1 << 64}, "parameters.x"),
        ({"flag": 1}, "parameters.flag"),
        ({"name": 3}, "parameters.name"),
        ({"day": "yesterday"}, "parameters.day"),
        ({"y": float("nan")}, "parameters.y"),
        ({"computed": 1}, "parameters.computed"),
        ({"os.system('id')": 1}, "parameters.os.system('id')"),
        ([1], "parameters"),
    ],
)
def test_bad_values_name_their_field(values, field):
    with pytest.raises(InvalidInput) as e:
        p.validate(nb(SOURCE), values)
    assert e.value.field == field


def test_a_notebook_without_parameters_takes_none():
    assert p.validate(nb("x = 1", tags=()), {}) == {}
    with pytest.raises(InvalidInput):
        p.validate(nb("x = 1", tags=()), {"x": 2})


def test_only_owner_or_allowed_services_execute():
    assert may_execute(None, "ann", ["civis"])  # a plain jupyter server: its token is its owner
    assert may_execute({"kind": "user", "name": "ann"}, "ann", ["civis"])
    assert not may_execute({"kind": "user", "name": "bob"}, "ann", ["civis"])
    assert may_execute({"kind": "service", "name": "civis"}, "ann", ["civis"])
    assert not may_execute({"kind": "service", "name": "other"}, "ann", ["civis"])
