"""Declare the civis service in a ``jupyterhub_config.py`` with least privilege.

Used by the bundle's ready-made configs::

    from jupyterhub_civis.service.hubconfig import declare_service
    declare_service(c, url="http://127.0.0.1:10101")

What it grants:

- the service itself: **no** Hub API scopes (it only asks the Hub who a
  caller's token belongs to, which needs the caller's token, not privileges);
- every user: ``access:services!service=civis`` (the ``user`` role), so a user's
  own tokens and browser can reach the service — only their own results;
- every server's ``$JUPYTERHUB_API_TOKEN``: the same access, on top of the
  default server token scopes, so the query-cache extension can store results,
  and ``read:users:groups!user`` (the user's own groups), so per-group quotas
  apply to what servers store;
- the hub's pages: the Services menu says "My queries" (``hub_templates/page.html``
  added to ``JupyterHub.template_paths``; an operator's own ``page.html`` listed
  earlier wins);
- every server's environment: ``$CIVIS_SERVICE_URL`` (the service's URL with its
  prefix), the default base URL of ``ServiceStore``, and with ``handoff_socket``
  ``$CIVIS_SERVICE_HANDOFF_SOCKET``.

``custom:civis:admin`` is declared but granted to nobody — not even hub admins.
Give it explicitly, e.g. ``{"name": "results-auditor", "users": ["ops"],
"scopes": ["custom:civis:admin", "access:services!service=civis"]}``.

Calling it again (e.g. after a later config file replaced ``services``) is safe.
"""

from __future__ import annotations

import os
import sys

from jupyterhub_civis import envvars

#: JupyterHub templates of the bundle (kept in sync with ``pages.HUB_TEMPLATES``; this
#: module is imported by hub config files and stays free of the service's imports)
HUB_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub_templates")

#: the service's further pages, after "My queries" in the hub's Services menu
SERVICE_PAGES = [["Shared by me", "shares/mine"], ["Shared with me", "shares/with-me"]]
#: what the service's browser login (its OAuth tokens) may carry for the user — the
#: viewer's own delegated scopes, never a role of the service's (docs/sharing.md):
#: the user's own groups (a share's group audience is checked against them) and the
#: user's own servers ("Open a copy" starts or reuses the viewer's named server)
OAUTH_SCOPES = ["read:users:groups!user", "servers!user"]

#: issue and revoke share codes of one's own servers (JupyterHub >= 5): live shares
LIVE_SHARE_SCOPE = "shares!user"
#: a server's own token may issue share codes of that server only: JupyterLab's
#: Share… › Live asks the service with it (the hub expands ``!server`` per server)
SERVER_LIVE_SHARE_SCOPE = "shares!server"

SERVER_TOKEN_DEFAULT = ["users:activity!user", "access:servers!server"]
#: lets the service see the user's groups in a server token's identity (per-group quotas)
READ_OWN_GROUPS = "read:users:groups!user"


def _get(section, name):
    return section[name] if name in section else None


def _spawner_sections(c, trait: str) -> list:
    names = ["Spawner"] + [
        n for n in c if n != "Spawner" and n.endswith("Spawner") and trait in c[n]
    ]
    return [c[n] for n in names]


def declare_service(
    c,
    *,
    url: str,
    name: str = "civis",
    args: list[str] | None = None,
    environment: dict | None = None,
    data_dir: str | None = None,
    api_token: str | None = None,
    handoff_socket: str | None = None,
    live_shares: bool = False,
) -> dict:
    """Declare the service and its least-privilege grants in hub config ``c``.

    ``url``: where the service listens (the proxy routes ``/services/<name>/`` there).
    ``args``: extra ``--CivisService.<trait>=…`` options; ``environment``: extra env.
    ``api_token``: declare an *external* service instead of a managed one — the
    hub starts nothing and the service processes (e.g. replicas of a Kubernetes
    Deployment behind one Service ``url``) run with this token; see docs/service.md.
    ``handoff_socket``: a Unix socket path for the same-host handoff (servers on the
    service's machine receive results as open files); only where the servers and
    the service share a machine and blobs are on its disk (local, Docker).
    ``live_shares``: let users share their running servers for pair work (JupyterHub
    ≥ 5 share codes): every user gets ``shares!user``, and the service may use it on
    their behalf; each server's own token gets ``shares!server`` (codes of that server
    only) for JupyterLab's Share… › Live (see docs/sharing.md).
    """
    access = f"access:services!service={name}"
    service = {
        "name": name,
        "url": url,
        "command": [sys.executable, "-m", "jupyterhub_civis.cli", "service", *(args or [])],
        "display": True,
        "info": {"display_name": "My queries", "pages": SERVICE_PAGES},
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [
            access,
            *OAUTH_SCOPES,
            *([LIVE_SHARE_SCOPE] if live_shares else []),
        ],
        "environment": {
            **({envvars.SERVICE_DATA_DIR: data_dir} if data_dir else {}),
            **({envvars.SERVICE_HANDOFF_SOCKET: handoff_socket} if handoff_socket else {}),
            **(environment or {}),
        },
    }
    if api_token:
        service.pop("command")
        service.pop("environment")
        service["api_token"] = api_token
    services = [s for s in (_get(c.JupyterHub, "services") or []) if s.get("name") != name]
    c.JupyterHub.services = [*services, service]

    roles = list(_get(c.JupyterHub, "load_roles") or [])
    user_role = next((r for r in roles if r.get("name") == "user"), None)
    if user_role is None:
        user_role = {"name": "user", "scopes": ["self"]}
        roles.append(user_role)
    for scope in (access, *([LIVE_SHARE_SCOPE] if live_shares else [])):
        if scope not in user_role.setdefault("scopes", ["self"]):
            user_role["scopes"].append(scope)
    c.JupyterHub.load_roles = roles

    # the hub's pages label the service "My queries" in their Services menu
    paths = list(_get(c.JupyterHub, "template_paths") or [])
    if HUB_TEMPLATES not in paths:
        c.JupyterHub.template_paths = [*paths, HUB_TEMPLATES]

    # the explicit admin scope: declared, granted to nobody (assign it in a role)
    custom = _get(c.JupyterHub, "custom_scopes")
    custom = dict(custom) if isinstance(custom, dict) else {}
    custom["custom:civis:admin"] = {
        "description": "Read, pin, unpin and delete every user's stored query results."
    }
    c.JupyterHub.custom_scopes = custom

    # Spawner settings go to c.Spawner and to every spawner class section that sets
    # the same trait itself (z2jh sets c.KubeSpawner.environment, which would
    # otherwise hide c.Spawner.environment).
    for section in _spawner_sections(c, "server_token_scopes"):
        scopes = _get(section, "server_token_scopes")
        scopes = list(scopes) if isinstance(scopes, list) else list(SERVER_TOKEN_DEFAULT)
        for scope in (access, READ_OWN_GROUPS, *([SERVER_LIVE_SHARE_SCOPE] if live_shares else [])):
            if scope not in scopes:
                scopes.append(scope)
        section.server_token_scopes = scopes

    # where servers (the query-cache extension, ServiceStore) reach the service
    for section in _spawner_sections(c, "environment"):
        env = _get(section, "environment")
        env = dict(env) if isinstance(env, dict) else {}
        env[envvars.SERVICE_URL] = url.rstrip("/") + f"/services/{name}/"
        if handoff_socket:
            env[envvars.SERVICE_HANDOFF_SOCKET] = handoff_socket
        else:  # a later declaration replaces an earlier one entirely
            env.pop(envvars.SERVICE_HANDOFF_SOCKET, None)
        section.environment = env
    return service


#: What the report runner needs from the Hub, and nothing else (docs/reports.md)
REPORT_RUNNER_SCOPES = [
    "servers",  # start and stop the report owner's named report server
    "access:servers",  # call that server's api/civis/execute as the civis service
    "read:users:name",  # check that a report's owner still exists before starting a server
]


def declare_reports(
    c, name: str = "civis", scopes: list[str] | None = None, proxy_url: str | None = None
) -> dict:
    """Give the civis service the Hub role its report runner needs (``REPORT_RUNNER_SCOPES``)
    and, for a managed service, where it reaches users' servers (``proxy_url``; default
    the hub's own ``ip``:``port``).

    Call it after ``declare_service``. An operator may narrow the scopes to the users
    who own reports, e.g. ``scopes=["servers!group=report-owners",
    "access:servers!group=report-owners", "read:users:name!group=report-owners"]``."""
    role = {"name": f"{name}-report-runner", "services": [name],
            "scopes": list(scopes or REPORT_RUNNER_SCOPES)}
    roles = [r for r in (_get(c.JupyterHub, "load_roles") or []) if r.get("name") != role["name"]]
    c.JupyterHub.load_roles = [*roles, role]
    if proxy_url is None:
        ip = _get(c.JupyterHub, "ip") or "127.0.0.1"
        proxy_url = f"http://{ip if ip not in ('', '0.0.0.0') else '127.0.0.1'}:{_get(c.JupyterHub, 'port') or 8000}"
    for service in _get(c.JupyterHub, "services") or []:
        if service.get("name") == name and "environment" in service:
            service["environment"][envvars.SERVICE_PROXY_URL] = proxy_url
    return role
