"""Kubernetes backend: every named server is its own pod, running its environment's image.

``CivisKubeSpawner`` is ``KubeSpawner`` (jupyterhub-kubespawner 7.x, what the
Zero-to-JupyterHub chart ships) with the Civis environment layer in front.
It keeps KubeSpawner's ``start()``/``stop()``/``poll()`` and its state, and
uses only its extension points:

- ``apply_resources`` (the mixin's) sets image resources and merges the
  environment's pod settings (``environment_pod_settings``) into what the
  chart configured — dicts merged, lists extended, never replaced;
- ``prepare_environment`` applies a ``profile_list`` profile (through
  KubeSpawner's own ``load_user_options``), then picks the image and its
  pull policy;
- the catalog reads ``profile_list`` (list, dict or callable) as a source of
  environments (``profiles.py``), so ``{"profile": "slug", …}`` requests and
  forms written for KubeSpawner keep working;
- ``get_pod_manifest`` adds a few annotations, the pod-info volume and, when
  enabled, the init container that installs extra packages;
- ``progress`` rewrites KubeSpawner's relayed pod events as plain sentences;
- after ``start()`` the running image's digest is recorded in the spawner
  state, on the pod (annotation, visible inside the pod through the
  downward API) and spawn-phase durations go to Prometheus.

Requires the ``kubernetes`` extra: ``pip install jupyterhub-civis[kubernetes]``.
"""

from __future__ import annotations

import copy
import time
from functools import partial

from jupyterhub.utils import exponential_backoff, maybe_future
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Enum, List, Unicode
from traitlets.config import Config

from jupyterhub_civis import envvars
from jupyterhub_civis.spawner.base import CivisSpawner, SpawnRejected
from jupyterhub_civis.spawner.catalog import Catalog
from jupyterhub_civis.spawner.environment_images import image_with_packages
from jupyterhub_civis.spawner.image_builder import shared_builder
from jupyterhub_civis.spawner.kube_config import (
    check_kube_config,
    default_environment,
    settings_view,
)
from jupyterhub_civis.spawner.kube_packages import KubePackages
from jupyterhub_civis.spawner.kube_pod import (
    ANNOTATION_ENVIRONMENT,
    ANNOTATION_IMAGE_DIGEST,
    ANNOTATION_IMAGE_ID,
    PACKAGES_INIT_CONTAINER,
    PACKAGES_VOLUME,
    PODINFO_VOLUME,
    SPAWN_PHASE_SECONDS,
    add_packages_init_container,
    add_podinfo_volume,
    image_record,
    observe_phases,
)
from jupyterhub_civis.spawner.kube_policy import (
    MUTABLE_TAGS,
    POD_SETTING_KINDS,
    STORAGE_POLICIES,
    describe_event,
    is_pinned,
    merge_value,
    mutable_image_warnings,
    pull_policy_for,
    storage_plan,
)
from jupyterhub_civis.spawner.profiles import environments_from_profiles
from jupyterhub_civis.spawner.requirements import environment_id

__all__ = ["ANNOTATION_ENVIRONMENT", "ANNOTATION_IMAGE_DIGEST", "ANNOTATION_IMAGE_ID", "CivisKubeSpawner", "PACKAGES_INIT_CONTAINER", "PACKAGES_VOLUME", "PODINFO_VOLUME",
           "SPAWN_PHASE_SECONDS"]

#: Traits this spawner sets per start; their configured values are restored first,
#: so one environment's settings never leak into the next start of the same server.
_PER_START_TRAITS = ("image", "image_pull_policy", "cpu_limit", "cpu_guarantee", "mem_limit",
                     "mem_guarantee", *POD_SETTING_KINDS)


class CivisKubeSpawner(CivisSpawner, KubePackages, KubeSpawner):
    """Named servers as Kubernetes pods, one image per environment (z2jh compatible)."""

    requires_image = True

    storage_policy = Enum(
        list(STORAGE_POLICIES),
        default_value="chart",
        config=True,
        help="""
        Home storage for servers.

        - ``"chart"`` (default): change nothing; use what the z2jh chart
          (``singleuser.storage``) or ``KubeSpawner`` settings say. With the
          chart's defaults that is one claim per server.
        - ``"per-server"``: one PersistentVolumeClaim per named server
          (KubeSpawner's ``claim-{user_server}``). Removing a named server
          (``DELETE /users/:name/servers/:server`` with ``remove: true``)
          deletes its claim and the data in it; stopping keeps it.
        - ``"per-user"``: one claim per user (``claim-{username}``) mounted by
          all of that user's servers. Because two servers may run on two nodes
          at once the claim needs ``ReadWriteMany`` storage (NFS, CephFS,
          Azure Files, EFS…); ``ReadWriteMany`` is added to the access modes
          and a warning logged when missing. A ReadWriteOnce claim would keep
          a second server Pending when scheduled on another node. Removing a
          named server never deletes the shared claim.

        If no volume mounts the claim yet (chart ``storage.type: none``), a
        ``home`` volume is added at ``home_mount_path``. Existing volumes and
        mounts are kept.
        """,
    )

    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the home claim is mounted when this spawner adds it (see ``storage_policy``).",
    )

    environment_pod_settings = Dict(
        config=True,
        help="""
        Extra KubeSpawner settings per catalog environment, keyed by the
        environment's name, merged into what the chart/config already set
        (dicts merged key by key, lists extended, strings replaced). E.g. a GPU
        environment::

            c.CivisKubeSpawner.environment_pod_settings = {
                "pytorch-gpu": {
                    "extra_resource_limits": {"nvidia.com/gpu": "1"},
                    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                },
            }

        Allowed settings: node_selector, tolerations, extra_resource_limits,
        extra_resource_guarantees, extra_labels, extra_annotations, environment
        (env vars), node_affinity_required, node_affinity_preferred,
        extra_pod_config, extra_container_config, image_pull_secrets,
        priority_class_name, scheduler_name. CPU and memory go in the catalog
        entry's ``resources``. Users cannot set any of these.
        """,
    )

    mutable_image_tags = List(
        Unicode(),
        default_value=sorted(MUTABLE_TAGS),
        config=True,
        help="""
        Image tags treated as mutable (their content can change). Images with
        such a tag, or with no tag, keep ``image_pull_policy`` as configured
        and cause a warning at hub start; every other tag, and every
        ``image@sha256:…`` reference, is pulled ``IfNotPresent``.
        """,
    )

    podinfo_mount_path = Unicode(
        "/etc/civis/podinfo",
        config=True,
        help="""
        Where the pod sees its own annotations (a downward API volume), among
        them ``jupyterhub-civis/image-digest``: the exact image it runs, known
        once the image is pulled. ``CIVIS_PODINFO_DIR`` tells the server where.
        Empty string: add no such volume.
        """,
    )

    record_image_digest = Bool(
        True,
        config=True,
        help="""
        After a server runs, read its image id from the pod status, keep it in
        the server's state (``environment.image_id`` / ``image_digest``) and
        annotate the pod with it. Needs ``patch`` on pods in the hub's RBAC
        role (the z2jh chart grants it).
        """,
    )

    _warned_mutable = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._apply_storage_policy()
        self._configured = {name: copy.deepcopy(getattr(self, name)) for name in _PER_START_TRAITS}
        self._overridden: set[str] = set()  # traits the last applied profile changed
        self._choice_applied = False  # prepare_environment ran for the current start
        if not CivisKubeSpawner._warned_mutable:
            CivisKubeSpawner._warned_mutable = True
            for warning in self.image_warnings(self.catalog):
                self.log.warning("CivisKubeSpawner: %s", warning)

    # ----- configuration checks (no cluster needed) ----------------------------------

    @classmethod
    def settings_view(cls, config: Config):
        """The Civis settings of ``config`` as this class would see them, without
        connecting to Kubernetes (KubeSpawner's constructor loads a kubeconfig)."""
        return settings_view(config)

    @classmethod
    def check_config(cls, config) -> Catalog:
        """Validate the catalog and the Kubernetes settings; log mutable-tag warnings."""
        return check_kube_config(config, cls.__name__)

    def image_warnings(self, catalog: Catalog) -> list[str]:
        return mutable_image_warnings(
            [(env.name, env.image) for env in catalog.environments], frozenset(self.mutable_image_tags)
        )

    def _apply_storage_policy(self):
        plan = storage_plan(
            self.storage_policy,
            pvc_name_template=self.pvc_name_template,
            storage_pvc_ensure=self.storage_pvc_ensure,
            storage_access_modes=self.storage_access_modes,
            volumes=self.volumes,
            volume_mounts=self.volume_mounts,
            home_mount_path=self.home_mount_path,
        )
        for key, value in plan.settings.items():
            setattr(self, key, value)
        if "pvc_name_template" in plan.settings:
            # KubeSpawner computed the name in __init__; load_state may still
            # restore a remembered one (remember_pvc_name) afterwards
            self.pvc_name = self._expand_user_properties(self.pvc_name_template)
        for warning in plan.warnings:
            self.log.warning("CivisKubeSpawner: %s", warning)

    # ----- choosing: the catalog, with profile_list as one of its sources ---------------

    def default_environments(self) -> list[dict]:
        return default_environment(self._configured.get("image", self.image))

    def extra_environments(self):
        if callable(self.profile_list):
            return []
        return self._profile_environments(self.profile_list)

    async def evaluate_extra_environments(self):
        profile_list = self.profile_list
        if callable(profile_list):
            profile_list = await maybe_future(profile_list(self))
        return self._profile_environments(profile_list)

    def _profile_environments(self, profile_list):
        return environments_from_profiles(
            profile_list,
            default_image=self._configured.get("image", self.image),
            auto_default=not self.environments,
        )

    async def load_user_options(self):
        """Apply the server's choice as KubeSpawner would (``KubeSpawner.start`` calls this).

        Within a start the environment layer has applied it already. Called on
        its own (hooks, code written for KubeSpawner) it validates
        ``user_options`` and applies the environment, profile overrides included.
        """
        if self._choice_applied:
            self._choice_applied = False
            return
        await self.resolve_selection()
        selection, environment = self._resolved
        self.apply_resources(environment)
        await self._apply_profile(environment, selection)

    async def _apply_profile(self, environment, selection) -> None:
        """A profile's ``kubespawner_override`` and its options', applied by KubeSpawner itself."""
        if environment.source != "profile_list":
            return
        names = [name for name in environment.override_keys if self.has_trait(name)]
        before = {name: copy.deepcopy(getattr(self, name)) for name in names}
        requested = self.user_options
        self.user_options = selection.profile_options()
        try:
            await KubeSpawner.load_user_options(self)
        except ValueError as e:  # a callable profile_list may change between validation and now
            raise self.refuse(SpawnRejected(f"profile: {e}")) from None
        finally:
            self.user_options = requested
        for name in names:
            if getattr(self, name) != before[name]:
                self._configured.setdefault(name, before[name])
                self._overridden.add(name)

    def apply_resources(self, environment) -> None:
        for name in {*_PER_START_TRAITS, *self._overridden}:
            setattr(self, name, copy.deepcopy(self._configured[name]))
        self._overridden = set()
        super().apply_resources(environment)
        for key, value in (self.environment_pod_settings.get(environment.name) or {}).items():
            setattr(self, key, merge_value(getattr(self, key), value))

    async def prepare_environment(self, environment, selection, emit) -> dict:
        started = time.monotonic()
        await self._apply_profile(environment, selection)
        image = selection.image or (
            self.image if environment.source == "profile_list" else environment.image
        )
        packages = tuple(sorted(set(environment.packages) | set(selection.packages)))
        builder = (
            shared_builder(self.builder_class, self.config, self.log) if self.image_builder else None
        )
        pinned = self.pin_image(selection, environment, image, builder)
        if pinned:
            image = pinned.image
        # an environment image the builder made (pinned.built) has the packages in it
        to_add = () if pinned and pinned.built else packages
        built = None
        if to_add and builder:
            built = await image_with_packages(builder, image, to_add, emit)
        elif to_add and self.extra_packages == "reject":
            raise SpawnRejected(
                f"packages: this hub runs servers on Kubernetes from prebuilt images and does "
                f"not add packages ({', '.join(to_add)}); choose an environment whose image "
                "has them, or ask your hub administrator for one"
            )
        base_image, image = image, (built.pinned if built else image)
        self.image = image
        self.image_pull_policy = pull_policy_for(
            image, self.image_pull_policy, frozenset(self.mutable_image_tags)
        )
        self._packages = () if built else to_add  # built: in the image, no init container
        if is_pinned(image, frozenset(self.mutable_image_tags)):
            emit(f"Using image {image}", 10)
        else:
            emit(f"Using image {image} (a mutable tag: the exact version is recorded once it runs)", 10)
        if self._packages:
            emit(f"Packages {', '.join(to_add)} will be installed when the pod starts", 12)
        self._environment_seconds = time.monotonic() - started
        self._choice_applied = True
        record = {
            "name": environment.name,
            "id": built.tag.rsplit(":", 1)[-1] if built else environment_id(image, packages),
            "image": image,
            "packages": list(packages),
            "extra_packages": list(selection.packages),
        }
        if built:
            record.update(base_image=base_image, image_digest=built.pinned)
        elif pinned:
            record.update(image_digest=pinned.image)
        return record

    # ----- the pod ---------------------------------------------------------------------

    def get_env(self):
        env = super().get_env()
        if self.podinfo_mount_path:
            env[envvars.PODINFO_DIR] = self.podinfo_mount_path
        if getattr(self, "_packages", ()):
            target = self._packages_target()
            env["PYTHONPATH"] = ":".join(p for p in (target, env.get("PYTHONPATH")) if p)
            env[envvars.PACKAGES_DIR] = target
        return env

    def _packages_target(self) -> str:
        return f"{self.packages_dir.rstrip('/')}/{self.environment_record.get('id') or 'none'}"

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        annotations = pod.metadata.annotations = dict(pod.metadata.annotations or {})
        record = self.environment_record or {}
        if record.get("name"):
            annotations[ANNOTATION_ENVIRONMENT] = record["name"]
        notebook = next(c for c in pod.spec.containers if c.name == "notebook")
        if self.podinfo_mount_path:
            add_podinfo_volume(pod, notebook, self.podinfo_mount_path)
        if getattr(self, "_packages", ()):
            add_packages_init_container(
                pod, notebook, self._packages, self._packages_target(), self.packages_dir
            )
        return pod

    async def delete_forever(self):
        """Removing a named server deletes its claim under ``storage_policy = "per-server"``.

        KubeSpawner keeps a named server's claim when it guesses the claim is
        shared with the default server, from the fields in ``pvc_name_template``;
        7.0 looks for ``{servername}``, 7.1 for ``{user_server}``, so on 7.0 the
        per-server claims ``claim-{user_server}`` were never deleted.
        """
        if self.storage_policy != "per-server" or not self.name or not self.delete_pvc:
            return await super().delete_forever()
        self.log.info("Deleting the claim %s of %s", self.pvc_name, self._log_name)
        await exponential_backoff(
            partial(self._make_delete_pvc_request, self.pvc_name, self.k8s_api_request_timeout),
            f"Could not delete pvc {self.pvc_name}",
            timeout=self.k8s_api_request_retry_timeout,
        )

    # ----- after start: digest, metrics; progress sentences -----------------------------

    async def start(self):
        requested = time.monotonic()
        self._environment_seconds = None
        self._choice_applied = False
        url = await super().start()
        try:
            await self._after_running(time.monotonic() - requested)
        except Exception:  # recording must never fail a server that runs
            self.log.exception("CivisKubeSpawner: could not record what %s runs", self._log_name)
        return url

    async def _after_running(self, total_seconds: float) -> None:
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") if self.pod_reflector else None
        observe_phases(self, pod, total_seconds)
        if not (self.record_image_digest and pod):
            return
        record, annotations = image_record(self.environment_record, self.image, pod)
        if not annotations:
            return
        self.environment_record = record
        await self.api.patch_namespaced_pod(
            name=self.pod_name,
            namespace=self.namespace,
            body={"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )

    async def progress(self):
        """Environment steps, then pod events as sentences (pulling, pulled, scheduled…)."""
        async for event in super().progress():
            raw = event.get("raw_event")
            if raw:
                event = {**event, "message": describe_event(raw)}
            yield event

