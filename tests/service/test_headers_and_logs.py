"""Every response of the service carries the security headers, and no token reaches
its log — through a real hub, with the managed service's own log."""

import re
import uuid

import pytest
import requests
from civis_test_support import login, wait_for

pytestmark = pytest.mark.hub


def assert_safe_headers(r, *, cache=True):
    where = f"{r.request.method} {r.url} -> {r.status_code}"
    csp = r.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "default-src" in csp and "unsafe-inline" not in csp, where
    assert r.headers.get("X-Content-Type-Options") == "nosniff", where
    assert r.headers.get("Referrer-Policy") == "no-referrer", where
    assert r.headers.get("X-Frame-Options") == "DENY", where
    if cache:
        assert r.headers.get("Cache-Control") == "no-store", where


def test_security_headers_on_every_response(service_hub):
    user, token = service_hub.new_user("headers")
    c = service_hub.client(token)
    rid = c.put_ok()["id"]
    base = service_hub.base
    direct = f"http://127.0.0.1:{service_hub.service_port}"
    responses = [
        c.request("GET", "api/results"),  # JSON
        c.get(rid),  # a result's bytes
        c.request("GET", f"api/results/{rid}/info"),
        c.get(uuid.uuid4().hex),  # 404
        c.request("GET", "api/results", token=None),  # 403
        c.request("GET", "api/nothing-here"),  # unknown API path
        c.request("POST", "api/results", headers={"X-Civis-Result": "{"}),  # 400
        requests.get(base + "health", timeout=30),
        requests.get(base + "metrics", timeout=30),
        requests.get(direct + "/health", timeout=30),
        requests.get(direct + "/no/such/route", timeout=30),  # tornado's default 404
        requests.get(base + "oauth_callback", timeout=30),  # 400: no code
        requests.get(base, allow_redirects=False, timeout=30),  # redirect to the hub's login
    ]
    for r in responses:
        assert_safe_headers(r)
    assert {r.status_code for r in responses} >= {200, 302, 400, 403, 404}

    # pages, their errors and their static files
    session = login(service_hub.hub, user)
    page = session.get(base, timeout=30)
    assert page.status_code == 200 and "My queries" in page.text
    assert_safe_headers(page)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp and "form-action 'self'" in csp
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    missing = session.post(
        f"{base}results/{uuid.uuid4().hex}/delete", data={"_xsrf": xsrf}, timeout=30
    )
    assert missing.status_code == 404 and "<nav" in missing.text  # an error page
    assert_safe_headers(missing)
    css = session.get(base + "static/civis.css", timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert_safe_headers(css, cache=False)


def test_no_token_in_the_log(service_hub):
    _, token = service_hub.new_user("logs")
    marker = uuid.uuid4().hex
    c = service_hub.client(None)
    # tokens in URLs are refused (403, 404, 405 ...) and must not be logged with the URL
    c.request("GET", "api/results", params={"token": token, "m": marker})
    c.request("GET", f"api/results/{uuid.uuid4().hex}", params={"token": token})
    c.request("DELETE", f"api/results/{marker}", params={"token": token})
    c.request("GET", f"results/{marker}/delete", params={"token": token})
    wait_for(lambda: marker in service_hub.hub.log(), timeout=30, message="the requests logged")
    assert token not in service_hub.hub.log()
