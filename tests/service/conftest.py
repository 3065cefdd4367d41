"""Fixtures for the civis service: a real JupyterHub running the service, a real
PostgreSQL database, moto's S3 server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from civis_service_support import (
    PG,
    ServiceHub,
    ServiceProcess,
    service_config,
    wait_service,
)
from civis_test_support import HubRun, free_port, wait_for


@pytest.fixture(scope="session")
def service_hub(tmp_path_factory):
    """A real hub with the civis service as a managed service (SQLite + local folder)."""
    state = tmp_path_factory.mktemp("svc-hub")
    port = free_port()
    data = state / "civis-data"
    config = (
        service_config(port, [f"--data-dir={data}", "--CivisService.cleanup_interval=1"])
        + "c.Authenticator.admin_users = {'civis-admin'}\n"
        # the explicit results-admin scope, given to one auditor only
        + "c.JupyterHub.load_roles.append({'name': 'civis-results-auditor',"
        " 'users': ['civis-auditor'],"
        " 'scopes': ['custom:civis:admin', 'access:services!service=civis']})\n"
    )
    with HubRun(state, config) as hub:
        sh = ServiceHub(hub, port)
        sh.data_dir = data
        wait_service(sh.base)
        yield sh


# ---------------------------------------------------------------- PostgreSQL, S3


@pytest.fixture(scope="session")
def pg_url():
    yield from _database()


@pytest.fixture
def fresh_pg_url():
    """A PostgreSQL database of its own, for tests that look at global totals."""
    yield from _database()


def _database():
    import sqlalchemy as sa

    name = "civis_svc_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG + name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """moto's S3 server as a real HTTP S3 endpoint, with one bucket."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        wait_for(
            lambda: requests.get(endpoint, timeout=2).status_code < 500,
            timeout=60,
            message="moto S3",
        )
        bucket = "civis-" + uuid.uuid4().hex[:8]
        r = requests.put(f"{endpoint}/{bucket}", timeout=10)
        assert r.status_code == 200, r.text
        yield {
            "endpoint": endpoint,
            "bucket": bucket,
            "env": env,
            "options": {"endpoint_url": endpoint, "key": "testing", "secret": "testing"},
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.fixture(scope="session")
def external_hub(tmp_path_factory):
    """A real hub that knows the civis service as an external service (replicas run outside)."""
    state = tmp_path_factory.mktemp("ext-hub")
    port = free_port()
    # JupyterHub waits up to 30 s for an external service at start-up: stand in for
    # the replicas' load balancer (which a cluster has) until the hub is up
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    placeholder = http.server.ThreadingHTTPServer(("127.0.0.1", port), Ok)
    threading.Thread(target=placeholder.serve_forever, daemon=True).start()
    run = HubRun(state, service_config(port, [], managed=False))
    try:
        hub = run.start()
    finally:
        placeholder.shutdown()
        placeholder.server_close()
    hub.service_port = port
    hub.state = state
    try:
        yield hub
    finally:
        run.stop()


@pytest.fixture
def replicas(external_hub, pg_url, moto_s3, tmp_path):
    """Factory: service processes sharing one PostgreSQL database and one s3:// prefix."""
    started = []
    blob_url = f"s3://{moto_s3['bucket']}/results-{uuid.uuid4().hex[:6]}"
    db = pg_url

    def make(port=None, extra=(), db_url=None, blobs=None):
        port = port or free_port()
        args = [
            f"--db-url={db_url or db}",
            f"--blob-url={blobs or blob_url}",
            f"--data-dir={tmp_path / 'data'}",
            *extra,
        ]
        env = {
            **moto_s3["env"],
            "CIVIS_SERVICE_BLOB_OPTIONS": json.dumps({"endpoint_url": moto_s3["endpoint"]}),
        }
        p = ServiceProcess(
            external_hub.url + "/hub/api", port, args, env, tmp_path / f"svc-{port}.log"
        )
        started.append(p)
        return p

    make.blob_url = blob_url
    make.db_url = db
    yield make
    for p in started:
        p.kill(signal.SIGTERM)
