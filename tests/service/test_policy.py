"""The service's pure rules, tested directly."""

from jupyterhub_civis.service import policy


def test_owner_is_a_hub_user_only():
    assert policy.owner_of_caller({"kind": "user", "name": "alice"}) == "alice"
    assert policy.owner_of_caller({"name": "alice"}) == "alice"  # user is the Hub's default kind
    assert policy.owner_of_caller({"kind": "service", "name": "alice"}) is None
    assert policy.owner_of_caller({"kind": "user", "name": ""}) is None
    assert policy.owner_of_caller(None) is None


def test_may_read_only_own():
    assert policy.may_read("alice", "alice")
    assert not policy.may_read("alice", "bob")
    assert not policy.may_read("alice", None)
    assert not policy.may_read(None, None)


def test_sql_excerpt():
    assert policy.sql_excerpt("  select 1 ") == "select 1"
    long = policy.sql_excerpt("x" * 10000)
    assert len(long) == policy.SQL_EXCERPT_CHARS and long.endswith("…")


def test_stale_uploads():
    assert policy.stale_uploads([("a", 0), ("b", 95)], now=100, stale_after=10) == ["a"]


def test_declare_service_least_privilege_and_idempotent():
    from traitlets.config import Config

    from jupyterhub_civis.service.hubconfig import declare_service

    c = Config()
    c.JupyterHub.services = [{"name": "other", "api_token": "x"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    for port in (1111, 2222):  # a second call replaces the first
        declare_service(c, url=f"http://127.0.0.1:{port}", data_dir="/d")
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["other", "civis"]
    civis = c.JupyterHub.services[1]
    assert civis["url"] == "http://127.0.0.1:2222" and "api_token" not in civis
    assert civis["command"][1:] == ["-m", "jupyterhub_civis.cli", "service"]
    assert civis["environment"]["CIVIS_SERVICE_DATA_DIR"] == "/d"
    # no role gives the service itself any scope
    assert not any("civis" in r.get("services", []) for r in c.JupyterHub.load_roles)
    (user_role,) = c.JupyterHub.load_roles
    assert user_role["scopes"] == ["self", "read:groups", "access:services!service=civis"]
    assert c.Spawner.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        "access:services!service=civis",
    ]
    assert c.Spawner.environment["CIVIS_SERVICE_URL"] == "http://127.0.0.1:2222/services/civis/"


def test_declare_service_reaches_spawner_sections_that_hide_spawner_settings():
    from traitlets.config import Config

    from jupyterhub_civis.service.hubconfig import declare_service

    c = Config()
    c.KubeSpawner.environment = {"CHART_VAR": "x"}  # what z2jh does with singleuser.extraEnv
    c.KubeSpawner.cpu_limit = 1  # a section without the traits stays as it is
    declare_service(c, url="http://hub:10101", handoff_socket="/run/civis.sock")
    for section in (c.Spawner, c.KubeSpawner):
        assert section.environment["CIVIS_SERVICE_URL"] == "http://hub:10101/services/civis/"
        assert section.environment["CIVIS_SERVICE_HANDOFF_SOCKET"] == "/run/civis.sock"
    assert c.KubeSpawner.environment["CHART_VAR"] == "x"
    assert "server_token_scopes" not in c.KubeSpawner
    declare_service(c, url="http://hub:10101")  # declared again without the socket
    assert "CIVIS_SERVICE_HANDOFF_SOCKET" not in c.KubeSpawner.environment


def test_service_cli_help_lists_traits(capsys):
    import pytest

    from jupyterhub_civis.cli import main

    with pytest.raises(SystemExit):
        main(["service", "--help-all"])
    out = capsys.readouterr().out
    for trait in ("db_url", "blob_url", "max_total_bytes", "max_age", "upload_stale_after"):
        assert f"--CivisService.{trait}" in out
