"""Kubernetes policy for ``CivisKubeSpawner``: pure functions, no kubernetes imports.

Everything the Kubernetes backend decides — pull policy, mutable-tag
warnings, merging per-environment pod settings into what the z2jh chart set,
the home-volume (storage) plan, plain-sentence progress messages and spawn
phase durations from pod events — lives here so it can be tested directly.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime

# ----- images ------------------------------------------------------------------------

#: Tags that are moved to new content by their publishers; a pod started twice
#: from them may run different software.
MUTABLE_TAGS = frozenset({"latest", "main", "master", "stable", "edge", "nightly", "dev", "develop"})

_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/path:tag@sha256:…`` → (repository, tag or None, digest or None)."""
    digest = None
    match = _DIGEST.search(image)
    if match:
        digest = match.group(0)[1:]
        image = image[: match.start()]
    repository, tag = image, None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = image.rsplit(":", 1)
    return repository, tag, digest


def is_pinned(image: str, mutable_tags=MUTABLE_TAGS) -> bool:
    """True for a digest reference or a tag not known to be mutable."""
    _, tag, digest = split_image(image)
    if digest:
        return True
    return tag is not None and tag not in mutable_tags


def pull_policy_for(image: str, configured: str | None, mutable_tags=MUTABLE_TAGS) -> str | None:
    """``IfNotPresent`` for pinned images (their content cannot change), else ``configured``.

    A pinned image already on the node is exactly the image asked for, so
    pulling it again only adds delay. For mutable tags the operator's policy
    (``KubeSpawner.image_pull_policy``, z2jh ``singleuser.image.pullPolicy``)
    is kept.
    """
    return "IfNotPresent" if is_pinned(image, mutable_tags) else configured


def mutable_image_warnings(images, mutable_tags=MUTABLE_TAGS) -> list[str]:
    """One warning per image in the catalog whose tag can move."""
    warnings = []
    for name, image in images:
        if image and not is_pinned(image, mutable_tags):
            _, tag, _ = split_image(image)
            warnings.append(
                f"environment {name!r} uses the mutable image {image!r} "
                f"(tag {tag or '<none>'!r}); servers started at different times may run "
                "different software and notebooks cannot pin it. Pin a version tag or a "
                "digest (image@sha256:…)."
            )
    return warnings


def image_id_from_pod(pod: dict, container: str = "notebook") -> str | None:
    """The running image's id (``docker-pullable://repo@sha256:…`` or similar) of ``container``."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return status.get("imageID") or None
    return None


def digest_reference(image: str, image_id: str | None) -> str | None:
    """``repo@sha256:…`` that pins exactly what runs, from the kubelet's imageID."""
    if not image_id:
        return None
    match = re.search(r"(sha256:[a-f0-9]{64})", image_id)
    if not match:
        return None
    repository, _, _ = split_image(image)
    return f"{repository}@{match.group(1)}"


# ----- per-environment pod settings (merged over what the chart set) --------------------

#: KubeSpawner traits a catalog environment may add to, and their kind.
#: Dicts are merged recursively, lists extended (without duplicates), scalars replaced.
POD_SETTING_KINDS = {
    "node_selector": dict,
    "tolerations": list,
    "extra_resource_limits": dict,
    "extra_resource_guarantees": dict,
    "extra_labels": dict,
    "extra_annotations": dict,
    "environment": dict,
    "node_affinity_required": list,
    "node_affinity_preferred": list,
    "extra_pod_config": dict,
    "extra_container_config": dict,
    "image_pull_secrets": list,
    "priority_class_name": str,
    "scheduler_name": str,
}


class PodSettingsError(ValueError):
    """``CivisKubeSpawner.environment_pod_settings`` is unusable; the message says why."""


def check_pod_settings(settings, environment_names) -> dict:
    """Validate the per-environment pod settings against the catalog's names."""
    if not isinstance(settings, dict):
        raise PodSettingsError("CivisKubeSpawner.environment_pod_settings must be a dict")
    for name, entry in settings.items():
        where = f"CivisKubeSpawner.environment_pod_settings[{name!r}]"
        if name not in environment_names:
            raise PodSettingsError(
                f"{where}: no catalog environment is called {name!r}; "
                f"catalog environments: {sorted(environment_names)}"
            )
        if not isinstance(entry, dict):
            raise PodSettingsError(f"{where} must be a dict of KubeSpawner settings")
        for key, value in entry.items():
            kind = POD_SETTING_KINDS.get(key)
            if kind is None:
                raise PodSettingsError(
                    f"{where}: {key!r} cannot be set per environment; allowed: "
                    f"{sorted(POD_SETTING_KINDS)}"
                )
            if not isinstance(value, kind):
                raise PodSettingsError(f"{where}[{key!r}] must be a {kind.__name__}")
    return settings


def merge_value(current, addition):
    """Merge ``addition`` over ``current`` without losing what ``current`` had.

    Dicts merge key by key (recursively), lists are extended with the items
    they lack, anything else is replaced. Neither argument is modified.
    """
    if isinstance(current, dict) and isinstance(addition, dict):
        merged = copy.deepcopy(current)
        for key, value in addition.items():
            merged[key] = merge_value(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(current, (list, tuple)) and isinstance(addition, (list, tuple)):
        merged = list(copy.deepcopy(current))
        merged.extend(copy.deepcopy(item) for item in addition if item not in merged)
        return merged
    return copy.deepcopy(addition)


# ----- storage --------------------------------------------------------------------------

STORAGE_POLICIES = ("chart", "per-server", "per-user")
PER_SERVER_CLAIM = "claim-{user_server}"
PER_USER_CLAIM = "claim-{username}"
_SERVER_FIELDS = ("{servername}", "{user_server}", "{unescaped_servername}", "{server}")


@dataclass
class StoragePlan:
    """Trait values to set for a storage policy, and warnings for the operator."""

    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def storage_plan(
    policy: str,
    *,
    pvc_name_template: str,
    storage_pvc_ensure: bool,
    storage_access_modes,
    volumes,
    volume_mounts,
    home_mount_path: str,
) -> StoragePlan:
    """What to change on KubeSpawner so home storage follows ``policy``.

    - ``chart``: change nothing (the chart's or KubeSpawner's own settings).
    - ``per-server``: one claim per named server (KubeSpawner's default name
      ``claim-{user_server}``); removing the server deletes its claim.
    - ``per-user``: one claim per user (``claim-{username}``) mounted by every
      server of that user, possibly on different nodes at once, so it must be
      ``ReadWriteMany`` (added to the access modes when absent).

    Volumes that already mount the claim (``{pvc_name}``, as the chart's
    ``singleuser.storage.type: dynamic`` does) are kept; otherwise a ``home``
    volume and mount are added. Lists and dicts are extended, never replaced.
    """
    if policy not in STORAGE_POLICIES:
        raise ValueError(f"storage policy {policy!r}: choose one of {list(STORAGE_POLICIES)}")
    plan = StoragePlan()
    if policy == "chart":
        return plan
    template = pvc_name_template
    if policy == "per-server" and not any(f in template for f in _SERVER_FIELDS):
        template = PER_SERVER_CLAIM
    if policy == "per-user" and any(f in template for f in _SERVER_FIELDS):
        template = PER_USER_CLAIM
    if template != pvc_name_template:
        plan.settings["pvc_name_template"] = template
    if not storage_pvc_ensure:
        plan.settings["storage_pvc_ensure"] = True
    modes = list(storage_access_modes or [])
    if policy == "per-user" and "ReadWriteMany" not in modes:
        plan.settings["storage_access_modes"] = modes + ["ReadWriteMany"]
        plan.warnings.append(
            "storage policy 'per-user': added ReadWriteMany to the claim's access modes, "
            "because one user's servers may run on different nodes at once; the storage "
            "class must support it (e.g. NFS, CephFS, Azure Files, EFS)"
        )
    volume_list = list(volumes.values()) if isinstance(volumes, dict) else list(volumes or [])
    mounts_claim = any(
        (v.get("persistentVolumeClaim") or {}).get("claimName") == "{pvc_name}" for v in volume_list
    )
    if not mounts_claim:
        volume = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mount = {"name": "home", "mountPath": home_mount_path}
        plan.settings["volumes"] = _extend(volumes, "home", volume)
        plan.settings["volume_mounts"] = _extend(volume_mounts, "home", mount)
    return plan


def _extend(container, key, item):
    if isinstance(container, dict):
        return {**copy.deepcopy(container), key: item}
    return list(copy.deepcopy(container or [])) + [item]


# ----- progress sentences and spawn phases -----------------------------------------------

_QUOTED = r'"([^"]+)"'
_PULLED = re.compile(r'Successfully pulled image ' + _QUOTED + r' in ([0-9.]+m?s)')
_ASSIGNED = re.compile(r"Successfully assigned (\S+) to (\S+)")
_DURATION = re.compile(r"([0-9.]+)(ms|s)$")


def _duration_seconds(text: str) -> float | None:
    match = _DURATION.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def describe_event(event: dict) -> str:
    """A Kubernetes pod event as a sentence a notebook user understands."""
    reason = event.get("reason") or ""
    message = (event.get("message") or "").strip()
    if reason == "Scheduled":
        match = _ASSIGNED.search(message)
        return f"Scheduled on node {match.group(2)}" if match else "Scheduled on a node"
    if reason == "Pulling":
        match = re.search(_QUOTED, message)
        return f"Pulling image {match.group(1)}" if match else "Pulling the image"
    if reason == "Pulled":
        match = _PULLED.search(message)
        if match:
            seconds = _duration_seconds(match.group(2))
            if seconds is not None:
                return f"Pulled image {match.group(1)} in {seconds:.1f} s"
        match = re.search(_QUOTED, message)
        if match and "already present" in message:
            return f"Image {match.group(1)} is already on the node"
        return "Pulled the image"
    if reason == "Created":
        return "Created the server's container"
    if reason == "Started":
        return "Container started; waiting for the server to answer"
    if reason == "FailedScheduling":
        return f"Waiting for a node with room for this server: {message}"
    if event.get("type") == "Warning":
        return f"Warning ({reason}): {message}"
    return f"{reason}: {message}" if reason else message


def _timestamp(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def phase_durations(pod: dict, events: list[dict]) -> dict[str, float]:
    """Seconds spent in each spawn phase, from the pod and its events.

    ``scheduling``: pod created → PodScheduled condition true.
    ``image_pull``: the kubelet's own measure from the Pulled event (0 when
    the image was already on the node).
    ``container_start``: scheduled → the notebook container running.
    Phases whose timestamps are missing are left out.
    """
    durations: dict[str, float] = {}
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    created = _timestamp(metadata.get("creationTimestamp"))
    scheduled = None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            scheduled = _timestamp(condition.get("lastTransitionTime"))
    if created and scheduled:
        durations["scheduling"] = max(0.0, (scheduled - created).total_seconds())
    for event in events:
        if event.get("reason") != "Pulled":
            continue
        message = event.get("message") or ""
        match = _PULLED.search(message)
        if match:
            seconds = _duration_seconds(match.group(2))
            if seconds is not None:
                durations["image_pull"] = seconds
        elif "already present" in message:
            durations["image_pull"] = 0.0
    started = None
    for container in status.get("containerStatuses") or []:
        if container.get("name") == "notebook":
            started = _timestamp(((container.get("state") or {}).get("running") or {}).get("startedAt"))
    if scheduled and started:
        durations["container_start"] = max(0.0, (started - scheduled).total_seconds())
    return durations
