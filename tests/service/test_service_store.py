"""``ServiceStore`` (the query cache's ``ResultStore`` on the service) against a real
hub and a real service process: one user's stores share results, others see none."""

import pyarrow as pa
import pytest

from jupyterhub_civis.query_cache.service_store import ServiceError, ServiceStore
from jupyterhub_civis.query_cache.store import ResultTooLarge

pytestmark = pytest.mark.hub


def batches(n=50_000, size=10_000):
    for start in range(0, n, size):
        yield pa.record_batch(
            {"i": pa.array(range(start, start + size)), "x": pa.array([1.5] * size)}
        )


SCHEMA = pa.schema([("i", pa.int64()), ("x", pa.float64())])


def test_service_store_roundtrip_and_isolation(external_hub, replicas, tmp_path):
    svc = replicas().start()
    user = external_hub.create_user("qc")
    # two "servers" of one user (two tokens), and another user
    a = ServiceStore(svc.base, external_hub.user_token(user), connection="wh")
    b = ServiceStore(svc.base, external_hub.user_token(user))
    other = ServiceStore(svc.base, external_hub.user_token(external_hub.create_user("qc2")))

    progress = []
    stored = a.put("key-1", SCHEMA, batches(), on_progress=lambda r, w: progress.append(r))
    assert stored.rows == 50_000 and progress[-1] == 50_000 and stored.path is None

    got = b.get(stored.result_id)  # stored from A, a hit in B
    assert got == stored
    assert b.latest("key-1") == stored
    table = b.open_reader(got).read_all()
    assert table.num_rows == 50_000 and table.column("i")[49_999].as_py() == 49_999

    b.pin(stored.result_id, "nb.ipynb")
    a.unpin(stored.result_id, "nb.ipynb")

    assert other.get(stored.result_id) is None and other.latest("key-1") is None
    with pytest.raises(ServiceError, match="404"):
        other.open_reader(stored)
    with pytest.raises(ServiceError, match="404"):
        other.pin(stored.result_id, "x")

    with pytest.raises(ResultTooLarge):
        a.put("key-2", SCHEMA, batches(), max_bytes=1000)
    assert a.latest("key-2") is None
