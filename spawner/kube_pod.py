"""What the Kubernetes backend adds to KubeSpawner's pod: the pod-info volume, the
install-on-start init container, the spawn-phase histogram and the image record."""

from __future__ import annotations

import shlex

from kubernetes_asyncio.client import models as k8s
from prometheus_client import Histogram

from jupyterhub_civis.protocol import IMAGE_DIGEST_ANNOTATION
from jupyterhub_civis.spawner.kube_policy import (
    digest_reference,
    image_id_from_pod,
    phase_durations,
)

#: Annotation keys on every pod this spawner makes.
ANNOTATION_ENVIRONMENT = "jupyterhub-civis/environment"
ANNOTATION_IMAGE_ID = "jupyterhub-civis/image-id"
ANNOTATION_IMAGE_DIGEST = IMAGE_DIGEST_ANNOTATION

PACKAGES_INIT_CONTAINER = "civis-packages"
PODINFO_VOLUME = "civis-podinfo"
PACKAGES_VOLUME = "civis-packages"

SPAWN_PHASE_SECONDS = Histogram(
    "civis_spawn_phase_duration_seconds",
    "Seconds each phase of starting a server took on Kubernetes, per catalog environment. "
    "Phases: environment (choosing/preparing the environment on the hub), scheduling "
    "(pod created to assigned to a node), image_pull (the kubelet's pull time; 0 when "
    "the image was on the node), container_start (scheduled to container running), "
    "total (start requested to server running).",
    ["environment", "phase"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, float("inf")),
)


def add_podinfo_volume(pod, notebook, mount_path: str) -> None:
    """The pod's own annotations and labels, read-only at ``mount_path`` (downward API)."""
    pod.spec.volumes = list(pod.spec.volumes or []) + [
        k8s.V1Volume(
            name=PODINFO_VOLUME,
            downward_api=k8s.V1DownwardAPIVolumeSource(
                items=[
                    k8s.V1DownwardAPIVolumeFile(
                        path="annotations",
                        field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.annotations"),
                    ),
                    k8s.V1DownwardAPIVolumeFile(
                        path="labels",
                        field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.labels"),
                    ),
                ]
            ),
        )
    ]
    notebook.volume_mounts = list(notebook.volume_mounts or []) + [
        k8s.V1VolumeMount(name=PODINFO_VOLUME, mount_path=mount_path, read_only=True)
    ]


def add_packages_init_container(pod, notebook, packages, target: str, packages_dir: str) -> None:
    """An init container that pip-installs ``packages`` into ``target`` (once per folder)."""
    mounts = list(notebook.volume_mounts or [])
    covered = any(
        target == m.mount_path or target.startswith(m.mount_path.rstrip("/") + "/")
        for m in mounts
        if m.name != PODINFO_VOLUME
    )
    if not covered:
        pod.spec.volumes = list(pod.spec.volumes or []) + [
            k8s.V1Volume(name=PACKAGES_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource())
        ]
        mount = k8s.V1VolumeMount(name=PACKAGES_VOLUME, mount_path=packages_dir)
        notebook.volume_mounts = mounts + [mount]
        mounts = mounts + [mount]
    requirements = " ".join(shlex.quote(p) for p in packages)
    tmp = shlex.quote(target + ".partial")
    script = (
        "set -e\n"
        f"if [ -f {shlex.quote(target)}/.complete ]; then echo 'packages already installed'; exit 0; fi\n"
        f"rm -rf {tmp} && mkdir -p {tmp}\n"
        f"python3 -m pip install --no-cache-dir --disable-pip-version-check --target {tmp} -- {requirements}\n"
        f"touch {tmp}/.complete && rm -rf {shlex.quote(target)} && mv {tmp} {shlex.quote(target)}\n"
    )
    init = k8s.V1Container(
        name=PACKAGES_INIT_CONTAINER,
        image=notebook.image,
        image_pull_policy=notebook.image_pull_policy,
        command=["sh", "-c", script],
        volume_mounts=[m for m in mounts if m.name != PODINFO_VOLUME],
        security_context=notebook.security_context,
        resources=notebook.resources,
        env=[e for e in (notebook.env or []) if e.name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT")],
    )
    pod.spec.init_containers = list(pod.spec.init_containers or []) + [init]


def observe_phases(spawner, pod, total_seconds: float) -> None:
    """Log a started server's phase durations and add them to the histogram."""
    environment = (spawner.environment_record or {}).get("name") or "unknown"
    durations = phase_durations(pod or {}, spawner.events)
    if spawner._environment_seconds is not None:
        durations["environment"] = spawner._environment_seconds
    durations["total"] = total_seconds
    for phase, seconds in durations.items():
        SPAWN_PHASE_SECONDS.labels(environment=environment, phase=phase).observe(seconds)
    spawner.log.info(
        "%s started in %.1f s (%s)", spawner._log_name, total_seconds,
        ", ".join(f"{k} {v:.1f} s" for k, v in sorted(durations.items())),
    )


def image_record(environment_record: dict, image: str, pod) -> tuple[dict, dict]:
    """``(record, annotations)``: the environment record with the image id and digest the
    pod runs, and the annotations saying so (both unchanged/empty before the pull)."""
    record = dict(environment_record or {})
    image_id = image_id_from_pod(pod)
    if not image_id:
        return record, {}
    digest = digest_reference(record.get("image") or image, image_id)
    record["image_id"] = image_id
    annotations = {ANNOTATION_IMAGE_ID: image_id}
    if digest:
        record["image_digest"] = digest
        annotations[ANNOTATION_IMAGE_DIGEST] = digest
    return record, annotations
