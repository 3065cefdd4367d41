"""Fixtures for the query cache: a real PostgreSQL database and real `jupyter server` processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests
from civis_test_support import PG_ADMIN, Postgres, free_port, wait_for  # noqa: F401 (re-exported to the tests here)

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="session")
def pg():
    dbname = f"civis_qc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{dbname}"')
    db = Postgres(dbname)
    try:
        yield db
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'alter database "{dbname}" with allow_connections true')
            c.execute(f'drop database if exists "{dbname}" with (force)')


class Server:
    """A real `jupyter server` process with the query cache extension."""

    def __init__(
        self,
        base: Path,
        *,
        connections: dict,
        query_cache: dict | None = None,
        env: dict | None = None,
        data_dir: Path | None = None,
        name: str = "server",
    ):
        self.base = base
        self.root = base / "root"
        self.runtime = base / "runtime"
        self.config_dir = base / "config"
        self.data_dir = data_dir or base / "data"
        for d in (self.root, self.runtime, self.config_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        qc = {"connections": connections, **(query_cache or {})}
        config = {
            "ServerApp": {
                "jpserver_extensions": {
                    "jupyterhub_civis.query_cache": True,
                    "jupyterhub_civis.notebook_environment": True,
                    "jupyterlab": False,
                    "jupyter_lsp": False,
                    "notebook_shim": False,
                },
                "ip": "127.0.0.1",
                "port": self.port,
                "port_retries": 0,
                "allow_root": True,
                "open_browser": False,
                "root_dir": str(self.root),
            },
            "IdentityProvider": {"token": self.token},
            "QueryCache": qc,
        }
        (self.config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.config_dir),
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
            "JUPYTER_DATA_DIR": str(self.data_dir),
            "JUPYTER_PLATFORM_DIRS": "0",
            **(env or {}),
        }
        for var in ("CIVIS_QUERY_CACHE_URL", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
            if var not in (env or {}):
                self.env.pop(var, None)
        self.log_path = base / f"{name}.log"
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--config",
                str(self.config_dir / "jupyter_server_config.json"),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(self.root),
        )

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                return requests.get(self.url + "api/status", headers=self.headers, timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, 60, message="jupyter server to answer")
        return self

    @property
    def headers(self):
        return {"Authorization": f"token {self.token}"}

    def api(self, method, path, **kw):
        return requests.request(method, self.url + path, headers=self.headers, timeout=120, **kw)

    def submit(self, **body):
        r = self.api("POST", "civis/queries", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def wait_final(self, status, timeout=60):
        deadline = time.monotonic() + timeout
        while status["state"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, status
            r = self.api("GET", f"civis/queries/{status['id']}?wait=5&version={status['version']}")
            status = r.json()
        return status

    def run(self, **body):
        return self.wait_final(self.submit(**body))

    def result(self, status):
        import pyarrow as pa

        r = self.api("GET", f"civis/queries/{status['id']}/result")
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
        return pa.ipc.open_stream(r.content).read_all()

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()


def pg_connections(pg: Postgres) -> dict:
    return {
        "default": pg.url,
        "down": "postgresql://postgres@127.0.0.1:9/nowhere",
        "secret": {
            "url": pg.url.replace("postgres@", "postgres:${CIVIS_QC_TEST_PASSWORD}@"),
            "settings": {"TimeZone": "UTC"},
        },
    }


@pytest.fixture(scope="session")
def server(pg, tmp_path_factory):
    """One server for the API tests: results over 5 MB are refused."""
    base = tmp_path_factory.mktemp("qc-server")
    pg.execute("create table items (id int primary key, name text, price numeric(10,2))")
    pg.execute("insert into items select g, 'item ' || g, g * 1.5 from generate_series(1, 1000) g")
    s = Server(
        base,
        connections=pg_connections(pg),
        query_cache={"store_dir": str(base / "store"), "max_result_bytes": 5_000_000},
        env={"CIVIS_QC_TEST_PASSWORD": "not-a-real-password"},
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
