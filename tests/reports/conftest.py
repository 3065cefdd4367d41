"""Fixtures for report links: a real hub with the civis service (and its report-runner
role), a real PostgreSQL warehouse, a user's running server."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from civis_service_support import wait_service
from civis_test_support import HubRun, HubServer, free_port
from report_support import PG_ADMIN, Warehouse, report_hub_config


@pytest.fixture(scope="session")
def warehouse():
    dbname = f"civis_reports_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'create database "{dbname}"')
    try:
        yield Warehouse(dbname)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'drop database if exists "{dbname}" with (force)')


@pytest.fixture(scope="session")
def report_hub(tmp_path_factory, warehouse):
    """One hub for the session: the civis service as a managed service with its
    report-runner role; servers query the PostgreSQL warehouse as ``default``."""
    state = tmp_path_factory.mktemp("report-hub")
    port = free_port()
    args = [
        f"--data-dir={state / 'civis-data'}",
        "--CivisService.cleanup_interval=5",
        "--Reports.lease_seconds=3",
        "--Reports.schedule_interval=0.5",
        "--Reports.poll_seconds=1",
    ]
    run = HubRun(state, report_hub_config(port, args), env={"CIVIS_DEMO_WAREHOUSE_URL": warehouse.url})
    with run as hub:
        hub.service = f"http://127.0.0.1:{port}/services/civis/"
        hub.service_db = state / "civis-data" / "civis-service.sqlite"
        wait_service(hub.service)
        yield hub


@pytest.fixture(scope="session")
def owner_server(report_hub):
    """A user with a running named server "work" and that user's API token."""
    user = report_hub.create_user("owner")
    report_hub.start_and_wait(user, "work", {"environment": "python"})
    token = report_hub.user_token(user)
    return user, HubServer(report_hub, user, "work"), token
