"""A kubelet for the Kubernetes emulator that runs each pod's ``notebook`` container in
the real Docker engine, from the pod's own image (tests/kube's Kubelet runs local
processes instead). Init containers are recorded, never run: a test asserts there are none."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kube"))

from civis_test_support import wait_for  # noqa: E402
from kube_cluster import Kubelet, _now  # noqa: E402


class DockerKubelet(Kubelet):
    def __init__(self, api, namespace, root, client, node: str = "docker-node"):
        super().__init__(api, namespace, root, node)
        self.client = client
        self.init_containers: dict[str, list] = {}

    def _run_pod(self, pod: dict):
        name = pod["metadata"]["name"]
        self.init_containers[name] = pod["spec"].get("initContainers") or []
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        image = container["image"]
        self._event(pod, "Scheduled", f"Successfully assigned {self.namespace}/{name} to {self.node}")
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        repository, _, reference = image.partition("@")
        if not self.client.images(name=repository) or not any(
            image in (i.get("RepoDigests") or []) for i in self.client.images(name=repository)
        ):
            self.client.pull(repository, reference or None)
        self._event(pod, "Pulled", f'Successfully pulled image "{image}"')
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        created = self.client.create_container(
            image, command=argv or None, environment=env, user="1000",
            labels={"civis-test-kubelet": name},
            host_config=self.client.create_host_config(cap_drop=["ALL"]),
        )
        self.processes[name] = created["Id"]
        self.client.start(created["Id"])
        self._event(pod, "Started", "Started container notebook")
        ip = self.client.inspect_container(created["Id"])["NetworkSettings"]["IPAddress"]
        port = int(container["ports"][0]["containerPort"])

        def listening():
            state = self.client.inspect_container(created["Id"])["State"]
            if not state["Running"]:
                logs = self.client.logs(created["Id"]).decode(errors="replace")
                raise RuntimeError(f"container exited with {state['ExitCode']}: {logs[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex((ip, port)) == 0

        wait_for(listening, timeout=120, interval=0.1, message=f"pod {name} to listen on {ip}:{port}")
        digests = self.client.inspect_image(image).get("RepoDigests") or [image]
        started = _now()
        self._patch(name, {"status": {
            "phase": "Running", "podIP": ip, "hostIP": "127.0.0.1", "startTime": started,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": started}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [{
                "name": "notebook", "image": image, "imageID": f"docker-pullable://{digests[0]}",
                "ready": True, "restartCount": 0, "started": True,
                "state": {"running": {"startedAt": started}},
            }],
        }})

    def _kill(self, name: str):
        cid = self.processes.pop(name)
        try:
            self.client.remove_container(cid, force=True)
        except Exception:  # already gone
            pass
