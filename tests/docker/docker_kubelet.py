"""A kubelet for the Kubernetes emulator that runs each pod's ``notebook`` container in
the real Docker engine, from the pod's own image (tests/kube's Kubelet runs local
processes instead). Init containers run first, in order, each to completion; a pod's
emptyDir volumes are Docker volumes owned by the notebook user (what a kubelet's fsGroup
handling does), mounted where the pod's containers mount them."""

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
        volumes = self._volumes(pod)
        for init in self.init_containers[name]:
            self._run_to_completion(name, init, volumes)
        created = self._create(name, container, volumes)
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

    def _volumes(self, pod: dict) -> dict[str, str]:
        """Pod volume name -> Docker volume, for the pod's emptyDir volumes."""
        found = {}
        for volume in pod["spec"].get("volumes") or []:
            if "emptyDir" in volume:
                docker_name = f"kubelet-{pod['metadata']['uid'][:12]}-{volume['name']}"
                self.client.create_volume(docker_name, labels={"civis-test-kubelet": "1"})
                chown = self.client.create_container(
                    "civis-nb-root:bookworm", ["chown", "1000:1000", "/v"], user="0",
                    host_config=self.client.create_host_config(binds=[f"{docker_name}:/v"]))
                self.client.start(chown["Id"])
                self.client.wait(chown["Id"])
                self.client.remove_container(chown["Id"])
                found[volume["name"]] = docker_name
        return found

    def _create(self, name: str, container: dict, volumes: dict) -> dict:
        env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        binds = [f"{volumes[m['name']]}:{m['mountPath']}" for m in container.get("volumeMounts") or []
                 if m["name"] in volumes]
        return self.client.create_container(
            container["image"], command=argv or None, environment=env, user="1000",
            labels={"civis-test-kubelet": name},
            host_config=self.client.create_host_config(cap_drop=["ALL"], binds=binds, network_mode="host"
                                                       if container["name"] != "notebook" else None),
        )

    def _run_to_completion(self, name: str, container: dict, volumes: dict) -> None:
        created = self._create(name, container, volumes)
        try:
            self.client.start(created["Id"])
            code = self.client.wait(created["Id"])["StatusCode"]
            if code != 0:
                logs = self.client.logs(created["Id"]).decode(errors="replace")
                raise RuntimeError(f"init container {container['name']} exited {code}: {logs[-2000:]}")
        finally:
            self.client.remove_container(created["Id"], force=True)

    def _kill(self, name: str):
        cid = self.processes.pop(name)
        try:
            volumes = [m["Name"] for m in self.client.inspect_container(cid)["Mounts"] if m["Type"] == "volume"]
            self.client.remove_container(cid, force=True)
            for volume in volumes:
                self.client.remove_volume(volume, force=True)
        except Exception:  # already gone
            pass
