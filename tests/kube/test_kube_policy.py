"""Pure policy of the Kubernetes backend: images, merging, storage, event sentences, phases."""

import pytest

from jupyterhub_civis.spawner.kube_policy import (
    PodSettingsError,
    check_pod_settings,
    describe_event,
    digest_reference,
    image_id_from_pod,
    is_pinned,
    merge_value,
    mutable_image_warnings,
    phase_durations,
    pull_policy_for,
    split_image,
    storage_plan,
)

DIGEST = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    "image, pinned",
    [
        ("quay.io/jupyter/scipy-notebook:2025-01-06", True),
        ("python:3.12", True),
        (f"quay.io/jupyter/scipy-notebook@{DIGEST}", True),
        (f"quay.io/jupyter/scipy-notebook:latest@{DIGEST}", True),
        ("quay.io/jupyter/scipy-notebook:latest", False),
        ("quay.io/jupyter/scipy-notebook", False),
        ("localhost:5000/nb", False),  # a registry port is not a tag
        ("localhost:5000/nb:1.0", True),
        ("registry.example.com/team/nb:main", False),
    ],
)
def test_pinned_images_and_pull_policy(image, pinned):
    assert is_pinned(image) is pinned
    assert pull_policy_for(image, "Always") == ("IfNotPresent" if pinned else "Always")


def test_split_image():
    assert split_image(f"localhost:5000/a/b:1.0@{DIGEST}") == ("localhost:5000/a/b", "1.0", DIGEST)
    assert split_image("nb") == ("nb", None, None)


def test_mutable_image_warnings_name_the_environment():
    warnings = mutable_image_warnings([("a", "x:1"), ("nightly", "x:latest"), ("bare", "x")])
    assert len(warnings) == 2
    assert "'nightly'" in warnings[0] and "x:latest" in warnings[0] and "digest" in warnings[0]
    assert "'bare'" in warnings[1]


def test_image_id_and_digest_reference():
    pod = {"status": {"containerStatuses": [
        {"name": "sidecar", "imageID": "docker-pullable://side@sha256:" + "c" * 64},
        {"name": "notebook", "imageID": f"docker-pullable://quay.io/jupyter/nb@{DIGEST}"},
    ]}}
    image_id = image_id_from_pod(pod)
    assert image_id.endswith(DIGEST)
    assert digest_reference("quay.io/jupyter/nb:latest", image_id) == f"quay.io/jupyter/nb@{DIGEST}"
    assert digest_reference("nb:1", "") is None
    assert image_id_from_pod({"status": {}}) is None


def test_merge_keeps_what_the_chart_set():
    chart = {"hub.jupyter.org/network-access-hub": "true", "nested": {"a": 1}}
    merged = merge_value(chart, {"gpu": "yes", "nested": {"b": 2}})
    assert merged == {"hub.jupyter.org/network-access-hub": "true", "gpu": "yes", "nested": {"a": 1, "b": 2}}
    assert chart == {"hub.jupyter.org/network-access-hub": "true", "nested": {"a": 1}}  # not modified
    toleration = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists"}
    assert merge_value([toleration], [gpu, toleration]) == [toleration, gpu]
    assert merge_value("old", "new") == "new"


@pytest.mark.parametrize(
    "settings, message",
    [
        ([], "must be a dict"),
        ({"nope": {}}, "no catalog environment"),
        ({"gpu": []}, "must be a dict of KubeSpawner settings"),
        ({"gpu": {"privileged": True}}, "cannot be set per environment"),
        ({"gpu": {"cmd": ["sh"]}}, "cannot be set per environment"),
        ({"gpu": {"tolerations": {"a": 1}}}, "must be a list"),
        ({"gpu": {"node_selector": ["a"]}}, "must be a dict"),
    ],
)
def test_pod_settings_are_checked(settings, message):
    with pytest.raises(PodSettingsError, match=message):
        check_pod_settings(settings, {"gpu", "python"})


def _plan(policy, **kw):
    args = dict(
        pvc_name_template="claim-{user_server}", storage_pvc_ensure=True,
        storage_access_modes=["ReadWriteOnce"],
        volumes={"volume-{user_server}": {"name": "volume-{user_server}",
                                          "persistentVolumeClaim": {"claimName": "{pvc_name}"}}},
        volume_mounts={"volume-{user_server}": {"name": "volume-{user_server}", "mountPath": "/home/jovyan"}},
        home_mount_path="/home/jovyan",
    )
    args.update(kw)
    return storage_plan(policy, **args)


def test_storage_chart_policy_changes_nothing():
    assert _plan("chart").settings == {} and _plan("chart", storage_pvc_ensure=False).settings == {}


def test_storage_per_server_keeps_the_chart_defaults():
    assert _plan("per-server").settings == {}
    assert _plan("per-server", pvc_name_template="claim-{username}").settings == {
        "pvc_name_template": "claim-{user_server}"}


def test_storage_per_user_needs_read_write_many():
    plan = _plan("per-user")
    assert plan.settings == {"pvc_name_template": "claim-{username}",
                             "storage_access_modes": ["ReadWriteOnce", "ReadWriteMany"]}
    assert "ReadWriteMany" in plan.warnings[0]
    ok = _plan("per-user", storage_access_modes=["ReadWriteMany"])
    assert ok.settings == {"pvc_name_template": "claim-{username}"} and not ok.warnings


def test_storage_without_chart_storage_adds_a_home_volume_and_keeps_extra_volumes():
    extra = [{"name": "shared", "nfs": {"server": "nfs", "path": "/shared"}}]
    plan = _plan("per-user", storage_pvc_ensure=False, volumes=extra,
                 volume_mounts=[{"name": "shared", "mountPath": "/shared"}],
                 storage_access_modes=["ReadWriteMany"])
    assert plan.settings["storage_pvc_ensure"] is True
    assert plan.settings["volumes"] == extra + [
        {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    assert plan.settings["volume_mounts"][0] == {"name": "shared", "mountPath": "/shared"}
    assert plan.settings["volume_mounts"][1] == {"name": "home", "mountPath": "/home/jovyan"}


def test_storage_unknown_policy():
    with pytest.raises(ValueError, match="choose one of"):
        _plan("per-node")


@pytest.mark.parametrize(
    "event, sentence",
    [
        ({"reason": "Scheduled", "message": "Successfully assigned civis/jupyter-a to node-7"},
         "Scheduled on node node-7"),
        ({"reason": "Pulling", "message": 'Pulling image "quay.io/jupyter/nb:1"'}, "Pulling image quay.io/jupyter/nb:1"),
        ({"reason": "Pulled", "message": 'Successfully pulled image "nb:1" in 12.345s (12.3s including waiting). Image size: 1 bytes.'},
         "Pulled image nb:1 in 12.3 s"),
        ({"reason": "Pulled", "message": 'Successfully pulled image "nb:1" in 850ms (850ms including waiting)'},
         "Pulled image nb:1 in 0.8 s"),
        ({"reason": "Pulled", "message": 'Container image "nb:1" already present on machine'},
         "Image nb:1 is already on the node"),
        ({"reason": "Created", "message": "Created container notebook"}, "Created the server's container"),
        ({"reason": "Started", "message": "Started container notebook"},
         "Container started; waiting for the server to answer"),
        ({"reason": "FailedScheduling", "type": "Warning", "message": "0/3 nodes are available"},
         "Waiting for a node with room for this server: 0/3 nodes are available"),
        ({"reason": "BackOff", "type": "Warning", "message": "Back-off pulling image"},
         "Warning (BackOff): Back-off pulling image"),
    ],
)
def test_events_become_sentences(event, sentence):
    assert describe_event(event) == sentence


def test_phase_durations_from_pod_and_events():
    pod = {
        "metadata": {"creationTimestamp": "2025-01-01T00:00:00Z"},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:02Z"}],
            "containerStatuses": [{"name": "notebook", "state": {"running": {"startedAt": "2025-01-01T00:00:12Z"}}}],
        },
    }
    events = [{"reason": "Pulled", "message": 'Successfully pulled image "nb:1" in 9.5s (9.5s including waiting)'}]
    assert phase_durations(pod, events) == {"scheduling": 2.0, "image_pull": 9.5, "container_start": 10.0}
    cached = [{"reason": "Pulled", "message": 'Container image "nb:1" already present on machine'}]
    assert phase_durations({}, cached) == {"image_pull": 0.0}
