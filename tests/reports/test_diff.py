"""The compare page's per-cell output diff (pure)."""

from jupyterhub_civis.service.reports.diff import changed_cells


def nb(*cells):
    return {"cells": [{"cell_type": "markdown", "source": "# t"}] + [
        {"cell_type": "code", "source": src, "outputs": outs} for src, outs in cells]}


def stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_only_cells_whose_text_output_changed_are_listed():
    before = nb(("a", [stream("1")]), ("b", [{"output_type": "execute_result",
                                              "data": {"text/plain": ["x", "y"]}}]), ("c", []))
    after = nb(("a", [stream("2")]), ("b", [{"output_type": "display_data",
                                             "data": {"text/plain": "xy", "text/html": "<b>"}}]),
               ("c", [{"output_type": "error", "ename": "E", "evalue": "bad"}]), ("d", [stream("new")]))
    changes = changed_cells(before, after)
    assert [(c.cell, c.source, c.before, c.after) for c in changes] == [
        (1, "a", "1", "2"), (3, "c", "", "E: bad"), (4, "d", "", "new")]
    assert changed_cells(before, before) == []
