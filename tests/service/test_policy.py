"""The service's pure rules, tested directly."""

import pytest

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
        "read:users:groups!user",
    ]
    assert c.JupyterHub.template_paths[-1].endswith("service/hub_templates")
    assert civis["info"] == {
        "display_name": "My queries",
        "pages": [["Shared by me", "shares/mine"], ["Shared with me", "shares/with-me"]],
    }
    assert c.Spawner.environment["CIVIS_SERVICE_URL"] == "http://127.0.0.1:2222/services/civis/"


def test_declare_service_live_shares_grants_the_server_its_own_share_codes_only():
    from traitlets.config import Config

    from jupyterhub_civis.service.hubconfig import declare_service

    c = Config()
    declare_service(c, url="http://127.0.0.1:1111", live_shares=True)
    (user_role,) = c.JupyterHub.load_roles
    assert "shares!user" in user_role["scopes"]
    # JupyterLab's Share… › Live asks with the server's token: this server's codes only
    assert "shares!server" in c.Spawner.server_token_scopes
    assert "shares!user" not in c.Spawner.server_token_scopes
    assert "shares!user" in c.JupyterHub.services[0]["oauth_client_allowed_scopes"]


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


def test_user_budget_and_group_overrides():
    gib = 1 << 30
    assert policy.user_budget([], 10 * gib, {}) == 10 * gib
    assert policy.user_budget(["x"], 0, {}) is None  # 0: no limit
    groups = {"analysts": 50 * gib, "interns": gib, "ops": 0}
    assert policy.user_budget(["interns"], 10 * gib, groups) == gib  # may lower too
    assert policy.user_budget(["interns", "analysts"], 10 * gib, groups) == 50 * gib
    assert policy.user_budget(["analysts", "ops"], 10 * gib, groups) is None


def test_upload_refusals_name_the_limit():
    assert policy.upload_refusal(10, max_result_bytes=100, budget=None) is None
    too_big = policy.upload_refusal(9 << 30, max_result_bytes=8 << 30, budget=None)
    assert "at most 8.0 GiB" in too_big and "max_result_bytes" in too_big
    over = policy.upload_refusal(3 << 20, max_result_bytes=8 << 30, budget=1 << 20)
    assert "larger than your quota of 1.0 MiB" in over
    full = policy.quota_refusal(used=900, pinned=800, needed=500, budget=1000)
    assert "900 B of your quota of 1000 B" in full and "800 B of it pinned" in full
    assert "My queries" in full


def test_eviction_takes_from_the_largest_user_first():
    from jupyterhub_civis.retention import Candidate, choose_evictions

    def c(rid, owner, access, size=10, pinned=False):
        return Candidate(rid, size, access, access, pinned, owner)

    entries = [
        c("a1", "alice", 1),  # alice: the oldest results of all ...
        c("a2", "alice", 2),
        c("b1", "bob", 3),  # ... bob holds the most bytes
        c("b2", "bob", 4),
        c("b3", "bob", 5),
        c("b4", "bob", 6, pinned=True),
    ]
    # 60 bytes, budget 40: bob's two least recently used go, not alice's older ones
    assert choose_evictions(entries, max_bytes=40, max_age=None, now=10) == ["b1", "b2"]
    # budget 20: bob down to 20 (one pinned), then the largest is a tie broken by LRU
    assert choose_evictions(entries, max_bytes=20, max_age=None, now=10) == [
        "b1",
        "b2",
        "a1",
        "b3",
    ]


def test_a_handoff_socket_every_local_user_may_use_is_refused():
    from traitlets import TraitError

    from jupyterhub_civis.service.app import CivisService

    assert CivisService(handoff_socket_mode=0o660).handoff_socket_mode == 0o660
    for bad in (0o666, 0o602, 0o777):
        with pytest.raises(TraitError, match="every local user"):
            CivisService(handoff_socket_mode=bad)
