"""A Kubernetes API emulator over real HTTP, and a kubelet that runs pods as local processes.

- ``ApiServer``: kmock 0.8's ``KubernetesEmulator`` served by ``kmock.Server``
  in a background thread. A small subclass fills what a real API server fills
  on create (``metadata.namespace/uid/creationTimestamp/resourceVersion``, pod
  ``status.phase: Pending``): stock KubeSpawner's reflectors need them and
  kmock stores bodies as sent. kmock ignores label/field selectors and merges
  lists by replacing them; nothing here relies on either.
- ``Kubelet``: a thread that watches the emulator's pods over HTTP like a
  kubelet, posts the events a node would (Scheduled, Pulling, Pulled, Created,
  Started), runs the ``notebook`` container's command and args with its env as
  a local process (no Docker engine on these machines: the image is recorded,
  not run) on a loopback IP of its own (the pod IP; ``0.0.0.0`` in
  ``JUPYTERHUB_SERVICE_URL`` means the pod's own address, as in a pod's network
  namespace), waits until it listens, then patches the pod to Running/Ready
  with complete ``containerStatuses`` (including an ``imageID``). It kills the
  process when the pod is deleted.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import itertools
import os
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import kmock
import requests
from civis_test_support import wait_for

RESOURCES = ("v1/pods", "v1/events", "v1/persistentvolumeclaims", "v1/secrets", "v1/services")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Emulator(kmock.KubernetesEmulator):
    _versions = itertools.count(1)

    async def _handle(self, request):
        if request.resource is not None and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            metadata["resourceVersion"] = str(next(self._versions))
            if request.action == kmock.action.CREATE:
                if request.namespace:
                    metadata["namespace"] = request.namespace
                metadata.setdefault("uid", str(uuid.uuid4()))
                metadata.setdefault("creationTimestamp", _now())
                if request.resource.plural == "pods":
                    request.data.setdefault("status", {"phase": "Pending"})
        return await super()._handle(request)


class ApiServer:
    """The emulator on a real port, in its own thread and event loop."""

    def __init__(self):
        self.emulator = None
        self.url = None
        self._ready = threading.Event()
        self._stop = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            for resource in RESOURCES:
                emulator.resources[resource] = {}
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def start(self) -> ApiServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Kubernetes API emulator did not start")
        return self

    def stop(self):
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: emulator\n"
            f"clusters: [{{name: emulator, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: hub, user: {token: hub-token}}]\n"
            f"contexts: [{{name: emulator, context: {{cluster: emulator, user: hub, namespace: {namespace}}}}}]\n"
        )
        return path

    # ----- reading what the hub made (over HTTP, like kubectl) -----

    def list(self, plural: str, namespace: str) -> list[dict]:
        r = requests.get(f"{self.url}/api/v1/namespaces/{namespace}/{plural}", timeout=10)
        r.raise_for_status()
        return r.json()["items"]

    def names(self, plural: str, namespace: str) -> list[str]:
        return sorted(item["metadata"]["name"] for item in self.list(plural, namespace))


def image_id(image: str) -> str:
    """What a container runtime reports: the repository and a content digest (the one
    asked for, for an image pulled by digest)."""
    repository, _, digest = image.partition("@")
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository.rsplit(":", 1)[0]
    digest = digest or f"sha256:{hashlib.sha256(image.encode()).hexdigest()}"
    return f"docker-pullable://{repository}@{digest}"


class Kubelet:
    """Runs every pod of ``namespace`` as a local process; see the module docstring."""

    def __init__(self, api: ApiServer, namespace: str, root: Path, node: str = "node-1"):
        self.api, self.namespace, self.root, self.node = api, namespace, root, node
        self.processes: dict[str, subprocess.Popen] = {}
        self.pod_ips: dict[str, str] = {}
        self._ips = (f"127.0.1.{n}" for n in itertools.count(2))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[str] = []

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        for name in list(self.processes):
            self._kill(name)

    def _url(self, name: str, plural: str = "pods") -> str:
        return f"{self.api.url}/api/v1/namespaces/{self.namespace}/{plural}" + (f"/{name}" if name else "")

    def _run(self):
        while not self._stop.wait(0.1):
            try:
                pods = {p["metadata"]["name"]: p for p in self.api.list("pods", self.namespace)}
            except requests.RequestException:
                continue
            for name in list(self.processes):
                if name not in pods:
                    self._kill(name)
            for name, pod in pods.items():
                if name not in self.processes and (pod.get("status") or {}).get("phase") == "Pending":
                    try:
                        self._run_pod(pod)
                    except Exception as e:  # reported by the test, which then fails
                        self.errors.append(f"{name}: {e!r}")

    def _event(self, pod: dict, reason: str, message: str, kind: str = "Normal"):
        name = pod["metadata"]["name"]
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": self.namespace,
                               "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": _now(), "lastTimestamp": _now(), "count": 1,
        }
        requests.post(self._url("", "events"), json=body, timeout=10).raise_for_status()

    def _patch(self, name: str, body: dict):
        requests.patch(self._url(name), json=body, timeout=10,
                       headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()

    def _run_pod(self, pod: dict):
        name = pod["metadata"]["name"]
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        image = container["image"]
        ip = self.pod_ips.setdefault(name, next(self._ips))
        self._event(pod, "Scheduled", f"Successfully assigned {self.namespace}/{name} to {self.node}")
        self._patch(name, {"spec": {"nodeName": self.node}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}]}})
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        self._event(pod, "Pulled", f'Successfully pulled image "{image}" in 1.25s (1.25s including waiting)')
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        env["JUPYTERHUB_SERVICE_URL"] = env.get("JUPYTERHUB_SERVICE_URL", "").replace("0.0.0.0", ip)
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(workdir), PATH=os.environ["PATH"], KUBELET_POD=name, KUBELET_IMAGE=image)
        self._event(pod, "Created", "Created container notebook")
        log = (workdir / "container.log").open("ab")
        self.processes[name] = process = subprocess.Popen(
            argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._event(pod, "Started", "Started container notebook")
        port = int(container["ports"][0]["containerPort"])

        def listening():
            if process.poll() is not None:
                raise RuntimeError(f"container exited with {process.returncode}: "
                                   f"{(workdir / 'container.log').read_text()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex((ip, port)) == 0

        wait_for(listening, timeout=90, interval=0.1, message=f"pod {name} to listen on {ip}:{port}")
        started = _now()
        self._patch(name, {"status": {
            "phase": "Running", "podIP": ip, "hostIP": "127.0.0.1", "startTime": started,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
            ],
            "containerStatuses": [{
                "name": "notebook", "image": image, "imageID": image_id(image), "ready": True,
                "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}},
            }],
        }})

    def _kill(self, name: str):
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
