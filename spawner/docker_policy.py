"""What a notebook container may be (pure): non-root, never privileged, no host mounts.

``enforce_container_policy`` is applied to the exact ``create_container``
arguments DockerSpawner sends the daemon, after every operator setting
(``extra_create_kwargs``, ``extra_host_config``, ``volumes``, ``mounts``)
was merged in, so no setting can switch these off by accident.
"""

from __future__ import annotations

ROOT_USERS = {"0", "root"}


class ContainerPolicyError(ValueError):
    """A setting would make a notebook container privileged, root or host-mounted."""


def _user_is_root(user: str) -> bool:
    return str(user).split(":", 1)[0].strip() in ROOT_USERS


def host_paths(binds, mounts) -> list[str]:
    """Host paths among Docker ``Binds`` (``src:dst[:mode]``) and ``Mounts`` (type bind)."""
    found = [b.split(":", 1)[0] for b in binds or [] if b.split(":", 1)[0].startswith("/")]
    for m in mounts or []:
        if (m.get("Type") or m.get("type")) == "bind":
            found.append(m.get("Source") or m.get("source") or "?")
    return found


def enforce_container_policy(create_kwargs: dict, *, user: str, allow_host_mounts: bool) -> dict:
    """``create_kwargs`` with the notebook container's safety settings forced; raises
    ``ContainerPolicyError`` for settings that cannot be made safe (a host path mount)."""
    if _user_is_root(user):
        raise ContainerPolicyError(f"CivisDockerSpawner.container_user {user!r}: notebooks never run as root")
    kwargs = dict(create_kwargs)
    host_config = dict(kwargs.get("host_config") or {})
    if not allow_host_mounts:
        paths = host_paths(host_config.get("Binds"), host_config.get("Mounts"))
        if paths:
            raise ContainerPolicyError(
                f"host paths {paths} would be mounted into a notebook container; use named "
                "volumes (DockerSpawner.volumes with a name, not a path) or set "
                "CivisDockerSpawner.allow_host_mounts = True"
            )
    host_config["Privileged"] = False
    host_config["CapDrop"] = ["ALL"]
    host_config.pop("CapAdd", None)
    host_config["SecurityOpt"] = sorted(set(host_config.get("SecurityOpt") or []) | {"no-new-privileges"})
    for key in ("Devices", "PidMode", "IpcMode", "UsernsMode"):
        host_config.pop(key, None)
    if host_config.get("NetworkMode") == "host":
        raise ContainerPolicyError(
            "network_name 'host' would give notebook containers the host's network; use a bridge network"
        )
    kwargs["host_config"] = host_config
    kwargs["user"] = user
    return kwargs


def settings_problems(*, user: str, extra_host_config: dict, network_name: str) -> list[str]:
    """Configuration that the policy would refuse at every spawn, found at hub start."""
    problems = []
    if _user_is_root(user):
        problems.append(f"container_user {user!r}: notebooks never run as root")
    if (extra_host_config or {}).get("privileged"):
        problems.append("extra_host_config privileged=True: notebook containers are never privileged")
    if network_name == "host":
        problems.append("network_name 'host': notebook containers use a bridge network")
    return problems


def image_record(image: str, inspected: dict) -> dict:
    """``image_id`` and, once pushed/pulled, ``image_digest`` (``repository@sha256:…``) of
    the local image ``inspected`` (``docker image inspect``) that ``image`` names."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository.rsplit(":", 1)[0]
    record = {"image_id": inspected["Id"]}
    digests = [d for d in inspected.get("RepoDigests") or [] if d.split("@", 1)[0] == repository]
    if digests:
        record["image_digest"] = digests[0]
    return record
