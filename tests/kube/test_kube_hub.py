"""End to end without a cluster: a real JupyterHub process running CivisKubeSpawner
(stock KubeSpawner 7.1 underneath) against a Kubernetes API emulator over real HTTP.

- API: kmock 0.8's KubernetesEmulator on a real port, reached by the hub through a
  kubeconfig; a small subclass fills what a real API server fills on create
  (see kube_cluster.py). kmock ignores label/field selectors and replaces lists
  on patch; the test relies on neither.
- Nodes: a kubelet fixture that runs each pod's ``notebook`` container as a LOCAL
  PROCESS with the pod's command, args and env (no Docker engine here, so the
  image itself is not run: the image name is recorded and reported as running,
  with a synthetic imageID), on a loopback IP of its own, and patches the pod to
  Running/Ready. Everything else — the hub, the proxy, the single-user servers,
  the kernels — is real.
"""

import contextlib
import re
from importlib.resources import files

import civis_test_support
import nbformat
import pytest
import requests
from civis_service_support import logged_in_page
from civis_test_support import TEST_TOKEN, HubServer, run_code, start_hub, stop_hub, wait_for
from kube_cluster import ApiServer, Kubelet, image_id

pytestmark = pytest.mark.hub

NAMESPACE = "civis-e2e"
IMAGES = {"python": "quay.io/jupyter/base-notebook:2025-01-06",
          "scipy": "registry.example.com/team/scipy:latest"}


def hub_config(kubeconfig_dir) -> str:
    catalog = [
        {"name": "python", "display_name": "Python", "image": IMAGES["python"], "default": True},
        {"name": "scipy", "display_name": "SciPy", "image": IMAGES["scipy"],
         "resources": {"mem_limit": "2G"}},
    ]
    return f"""
import os, sys
c.JupyterHub.spawner_class = "civis-kube"
c.JupyterHub.cleanup_servers = False  # pods outlive the hub, as on z2jh
c.JupyterHub.load_roles.append({{"name": "civis-tests-kube", "services": ["civis-tests"],
                                 "scopes": ["admin:server_state", "read:metrics"]}})
c.KubeSpawner.namespace = {NAMESPACE!r}
c.KubeSpawner.extra_labels = {{"hub.jupyter.org/network-access-hub": "true"}}
c.KubeSpawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
if os.geteuid() == 0:
    c.KubeSpawner.args = ["--ServerApp.allow_root=True"]
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.k8s_api_request_timeout = 10
c.CivisKubeSpawner.storage_policy = "per-server"
c.CivisSpawner.environments = {catalog!r}
"""


@contextlib.contextmanager
def kube_hub(state, config):
    """A hub started on ``state`` with ``config``; its log printed if the test fails."""
    hub = start_hub(state, config)
    try:
        yield hub
    except BaseException:
        print(hub.log()[-6000:])
        raise
    finally:
        stop_hub(hub)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube")
    api = ApiServer().start()
    kubelet = Kubelet(api, NAMESPACE, root / "nodes").start()
    yield api, kubelet, root
    kubelet.stop()
    api.stop()


def test_two_named_servers_two_pods_through_restart(cluster, monkeypatch):
    api, kubelet, root = cluster
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(root / "kubeconfig.yaml", NAMESPACE)))
    ports = [civis_test_support.free_port() for _ in range(4)]  # start_hub takes four
    # the restarted hub must listen where the running servers expect it
    fixed_ports = iter(ports * 2)
    monkeypatch.setattr(civis_test_support, "free_port", lambda: next(fixed_ports))
    state = root / "hub"
    hub = start_hub(state, hub_config(root))
    try:
        user = hub.create_user("kube")
        progress = {}
        for server, environment in (("a", "python"), ("b", "scipy")):
            r, progress[server] = hub.start_and_follow(user, server, {"environment": environment})
            assert r.status_code in (201, 202), r.text
            hub.wait_ready(user, server, timeout=120)
        assert not kubelet.errors, kubelet.errors

        # two pods, each with its environment's image and the chart-style label
        pods = {p["metadata"]["annotations"]["hub.jupyter.org/servername"]: p
                for p in api.list("pods", NAMESPACE)}
        assert sorted(pods) == ["a", "b"]
        for server, environment in (("a", "python"), ("b", "scipy")):
            pod = pods[server]
            container = pod["spec"]["containers"][0]
            assert container["image"] == IMAGES[environment]
            assert container.get("imagePullPolicy") == ("IfNotPresent" if environment == "python" else None)
            assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
            assert pod["metadata"]["annotations"]["jupyterhub-civis/environment"] == environment
            # the running image's digest, on the pod (downward API) and in the server's state
            digest = image_id(IMAGES[environment]).split("//", 1)[1]
            assert pod["metadata"]["annotations"]["jupyterhub-civis/image-digest"] == digest
            saved = hub.api("GET", f"/users/{user}").json()["servers"][server]["state"]
            assert saved["civis"]["environment"]["image_digest"] == digest
        assert api.names("persistentvolumeclaims", NAMESPACE) == [f"claim-{user}--a", f"claim-{user}--b"]

        # requests through the hub's proxy reach each pod's server and kernel
        for server, environment in (("a", "python"), ("b", "scipy")):
            out = run_code(hub, user, server, "import os; print(os.environ['CIVIS_ENVIRONMENT'], "
                                              "os.environ['KUBELET_IMAGE'], os.environ['JUPYTERHUB_SERVER_NAME'])")
            assert out.split() == [environment, IMAGES[environment], server]

        # the progress page: environment steps, then pod events as sentences
        messages = [e.get("message", "") for e in progress["b"]]
        text = "\n".join(messages)
        assert "Resolving environment SciPy" in text
        assert f"Using image {IMAGES['scipy']} (a mutable tag" in text
        assert "Scheduled on node node-1" in text
        assert f"Pulling image {IMAGES['scipy']}" in text
        assert f"Pulled image {IMAGES['scipy']} in 1.2 s" in text
        assert "Container started; waiting for the server to answer" in text
        assert messages.index("Scheduled on node node-1") > [
            i for i, m in enumerate(messages) if m.startswith("Using image")][0]
        assert progress["b"][-1].get("ready") is True

        # spawn-phase durations per environment on the hub's Prometheus endpoint
        metrics = hub.session.get(f"{hub.url}/hub/metrics", timeout=30,
                                  headers={"Authorization": f"token {TEST_TOKEN}"}).text
        for environment in ("python", "scipy"):
            for phase in ("environment", "image_pull", "scheduling", "container_start", "total"):
                assert re.search(
                    rf'civis_spawn_phase_duration_seconds_count\{{environment="{environment}",phase="{phase}"\}} 1\.0',
                    metrics), (environment, phase)
        assert 'civis_spawn_phase_duration_seconds_sum{environment="scipy",phase="image_pull"} 1.25' in metrics

        # a hub restart keeps both servers running (state reloads from the database)
        stop_hub(hub)
        log_before_restart = len(hub.log())
        assert sorted(kubelet.processes) == sorted(p["metadata"]["name"] for p in pods.values())
        hub = start_hub(state, hub_config(root))
        for server in ("a", "b"):
            model = hub.server(user, server)
            assert model["ready"], model
        assert "Attempting to create pod" not in hub.log()[log_before_restart:]  # nothing restarted
        out = run_code(hub, user, "b", "import os; print(os.environ['CIVIS_ENVIRONMENT'])")
        assert out.strip() == "scipy"

        # stop deletes the pod (the claim stays); removing the server deletes its claim
        hub.stop(user, "a")
        assert [p["metadata"]["annotations"]["hub.jupyter.org/servername"]
                for p in api.list("pods", NAMESPACE)] == ["b"]
        wait_for(lambda: len(kubelet.processes) == 1, timeout=30, message="a's process to end")
        assert api.names("persistentvolumeclaims", NAMESPACE) == [f"claim-{user}--a", f"claim-{user}--b"]
        hub.stop(user, "a", remove=True)
        wait_for(lambda: api.names("persistentvolumeclaims", NAMESPACE) == [f"claim-{user}--b"],
                 timeout=30, message="a's claim to be deleted")
        hub.stop(user, "b", remove=True)
        assert api.list("pods", NAMESPACE) == []
        wait_for(lambda: not api.list("persistentvolumeclaims", NAMESPACE), timeout=30,
                 message="b's claim to be deleted")
        wait_for(lambda: not kubelet.processes, timeout=30, message="every container process to end")
    except BaseException:
        print(hub.log()[-6000:])
        raise
    finally:
        stop_hub(hub)


def test_emulator_answers_like_an_api_server(cluster):
    """The parts of the API the hub relies on, checked directly (fails fast if kmock changes)."""
    api, _, _ = cluster
    r = requests.post(f"{api.url}/api/v1/namespaces/probe/pods",
                      json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
                            "spec": {"containers": [{"name": "x", "image": "x:1"}]}}, timeout=10)
    created = r.json()
    assert created["metadata"]["namespace"] == "probe" and created["metadata"]["uid"]
    assert created["status"] == {"phase": "Pending"}
    requests.delete(f"{api.url}/api/v1/namespaces/probe/pods/probe", timeout=10).raise_for_status()
    assert api.names("pods", "probe") == []


PROFILES = '''
def civis_profiles(spawner):  # a callable profile_list, evaluated for each spawn
    return [
        {"display_name": "Here", "slug": "here", "kubespawner_override": {"cpu_limit": 1}},
        {"display_name": "Elsewhere", "slug": "elsewhere",
         "kubespawner_override": {"namespace": "civis-other", "cpu_limit": 1}},
    ]
c.KubeSpawner.profile_list = civis_profiles
c.KubeSpawner.image = "registry.example.com/team/chart-default:1"  # singleuser.image on z2jh
'''


def test_a_profile_list_profile_starts_its_pod_in_another_namespace(cluster, monkeypatch):
    api, _, root = cluster
    other = Kubelet(api, "civis-other", root / "other-nodes").start()
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(root / "kubeconfig.yaml", NAMESPACE)))
    try:
        with kube_hub(root / "profiles-hub", hub_config(root) + PROFILES) as hub:
            user = hub.create_user("profile")
            r = hub.start(user, "far", {"profile": "elsewhere"})
            assert r.status_code in (201, 202), r.text
            hub.wait_ready(user, "far", timeout=120)
            assert not other.errors, other.errors
            (pod,) = api.list("pods", "civis-other")
            assert pod["metadata"]["annotations"]["hub.jupyter.org/servername"] == "far"
            # no image in the profile: KubeSpawner's own (the chart's singleuser.image)
            assert pod["spec"]["containers"][0]["image"] == "registry.example.com/team/chart-default:1"
            assert "far" not in [p["metadata"]["annotations"]["hub.jupyter.org/servername"]
                                 for p in api.list("pods", NAMESPACE)]
            assert hub.server(user, "far")["user_options"] == {"profile": "elsewhere"}
            out = run_code(hub, user, "far", "import os; print(os.environ['JUPYTERHUB_SERVER_NAME'])")
            assert out.strip() == "far"
            hub.stop(user, "far", remove=True)
            assert api.list("pods", "civis-other") == []
            wait_for(lambda: not other.processes, timeout=30, message="the pod's process to end")
    finally:
        other.stop()


BUNDLE_CONFIG = str(files("jupyterhub_civis") / "jupyter-config")


def shared_notebook(hub, owner, environment: dict) -> str:
    """A snapshot share (for everyone) of a notebook saved with ``environment`` recorded."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupyterhub_civis"] = {"environment": environment}
    r = hub.session.post(f"{hub.url}/services/civis/api/shares", timeout=60,
                         headers={"Authorization": f"token {hub.user_token(owner)}"},
                         json={"notebook": nbformat.writes(nb), "audience": {"everyone": True}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.browser
def test_open_a_copy_pinned_to_the_image_digest_the_notebook_recorded(cluster, monkeypatch, browser):
    """"Open a copy" of a notebook saved on Kubernetes runs the very image it ran (by
    digest), when that is a build of the environment's image; any other digest is
    refused with the hub's reason, and the viewer opens the copy elsewhere."""
    api, kubelet, root = cluster
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(root / "kubeconfig.yaml", NAMESPACE)))
    # the bundle's server extensions, enabled as its wheel enables them in an image
    bundle = ("c.KubeSpawner.environment = {**c.Spawner.environment, "
              f"'JUPYTER_CONFIG_PATH': {BUNDLE_CONFIG!r}}}\n")
    with kube_hub(root / "copy-hub", hub_config(root) + bundle) as hub:
        owner, viewer = hub.create_user("kowner"), hub.create_user("kviewer")
        repository = IMAGES["python"].rsplit(":", 1)[0]
        pinned = f"{repository}@sha256:{'c' * 64}"
        recorded = {"name": "python", "id": "x", "image": IMAGES["python"], "packages": [],
                    "image_digest": pinned}
        sid = shared_notebook(hub, owner, recorded)
        page = logged_in_page(browser, hub, viewer)
        page.goto(f"{hub.url}/services/civis/s/{sid}")
        page.click("#open-copy button")
        page.wait_for_url(re.compile(r".*/lab/tree/shared/.*"), timeout=120_000)
        name = page.url.split(f"/user/{viewer}/", 1)[1].split("/", 1)[0]
        model = hub.server(viewer, name)
        assert model["user_options"] == {"environment": "python", "image_digest": pinned}
        (pod,) = [p for p in api.list("pods", NAMESPACE)
                  if p["metadata"]["annotations"]["hub.jupyter.org/servername"] == name]
        assert pod["spec"]["containers"][0]["image"] == pinned
        assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        # what runs, as the kubelet reports it, is what was asked for
        assert pod["metadata"]["annotations"]["jupyterhub-civis/image-digest"] == pinned
        out = HubServer(hub, viewer, name).run("import os; print(os.environ['KUBELET_IMAGE'])")
        assert out.strip() == pinned
        assert not kubelet.errors, kubelet.errors

        # a digest of an image this hub does not offer for the environment: the hub's
        # reason, no server left behind; the viewer picks an environment
        foreign = {**recorded, "image_digest": f"evil.example/x/base-notebook@sha256:{'d' * 64}"}
        sid = shared_notebook(hub, owner, foreign)
        page.goto(f"{hub.url}/services/civis/s/{sid}")
        page.click("#open-copy button")
        message = page.locator("#copy-message")
        message.wait_for()
        assert "image_digest:" in message.inner_text()
        assert "not an image this hub offers" in message.inner_text()
        assert "evil.example/x/base-notebook" in page.locator("#copy-refused").inner_text()
        assert list(hub.api("GET", f"/users/{viewer}").json()["servers"]) == [name]
        page.fill("#pick-environment input[name=environment]", "python")
        page.click("#pick-environment button")
        page.wait_for_url(re.compile(r".*/lab/tree/shared/.*"), timeout=120_000)
        other = page.url.split(f"/user/{viewer}/", 1)[1].split("/", 1)[0]
        assert other != name and hub.server(viewer, other)["user_options"] == {"environment": "python"}
        for server in (name, other):
            hub.stop(viewer, server, remove=True)
        wait_for(lambda: not kubelet.processes, timeout=60, message="every copy's process to end")
