"""Inside a real JupyterHub (config/local + config/local/query_cache_demo.py): a
notebook's pins travel to a copy opened in another named server of the same user."""

from __future__ import annotations

import json
import uuid

import nbformat
import pytest
from civis_test_support import HubRun, HubServer

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def qc_hub(pg, tmp_path_factory):
    # config/local loads query_cache_demo.py itself
    env = {"CIVIS_DEMO_WAREHOUSE_URL": pg.url}
    with HubRun(tmp_path_factory.mktemp("qc-hub"), env=env) as hub:
        yield hub


def test_copy_in_another_named_server_reruns_with_pinned_results(qc_hub, pg):
    hub = qc_hub
    user = hub.create_user("qc")
    hub.start_and_wait(user, "a", {"environment": "python"})
    hub.start_and_wait(user, "b", {"environment": "python"})
    a, b = HubServer(hub, user, "a"), HubServer(hub, user, "b")

    table = f"hub_pins_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} (id int, v text)")
    pg.execute(f"insert into {table} values (1, 'first'), (2, 'second')")
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"deliverable": "analysis"}
    r = a.api("PUT", "api/contents/analysis.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text

    code = (
        "from jupyterhub_civis.query_cache import query\n"
        f"print(query('select id, v from {table} order by id').to_json(orient='records'))"
    )
    rows = json.loads(a.run_in_notebook("analysis.ipynb", code))
    assert rows == [{"id": 1, "v": "first"}, {"id": 2, "v": "second"}]

    # save (the pre-save hooks run), then copy the notebook into the other server
    model = a.api("GET", "api/contents/analysis.ipynb").json()
    saved = a.api(
        "PUT", "api/contents/analysis.ipynb", json={"type": "notebook", "content": model["content"]}
    )
    assert saved.status_code == 200, saved.text
    content = a.api("GET", "api/contents/analysis.ipynb").json()["content"]
    civis = content["metadata"]["jupyterhub_civis"]
    assert civis["environment"]["name"] == "python"
    (pin,) = civis["queries"].values()
    assert pin["rows"] == 2
    r = b.api("PUT", "api/contents/copy.ipynb", json={"type": "notebook", "content": content})
    assert r.status_code == 201, r.text

    pg.execute(f"update {table} set v = 'changed'")
    pg.set_reachable(False)
    try:
        assert json.loads(b.run_in_notebook("copy.ipynb", code)) == rows
        latest = b.api("GET", "civis/queries").json()["queries"][0]
        assert latest["cache"] == "hit" and latest["result_id"] == pin["result_id"]
        assert latest["notebook"] == "copy.ipynb"
    finally:
        pg.set_reachable(True)
