"""The server extension's pre-save hook, as a pure function."""

import json

from jupyterhub_civis.notebook_environment import (
    environment_from_env,
    image_digest,
    record_environment,
)


def test_environment_comes_from_the_spawner_variable():
    record = {"name": "ml", "id": "abc", "packages": ["x"], "prefix": "/srv/envs/abc", "image": ""}
    env = {"CIVIS_ENVIRONMENT_JSON": json.dumps(record)}
    assert environment_from_env(env) == {"name": "ml", "id": "abc", "packages": ["x"]}
    assert environment_from_env({}) is None
    assert environment_from_env({"CIVIS_ENVIRONMENT_JSON": "{not json"}) is None


def test_notebooks_get_the_environment_and_keep_their_other_metadata():
    model = {
        "type": "notebook",
        "content": {
            "metadata": {
                "kernelspec": {"name": "python3"},
                "jupyterhub_civis": {"queries": {"k": 1}},
            }
        },
    }
    record_environment(model, {"name": "ml", "id": "abc"})
    metadata = model["content"]["metadata"]
    assert metadata["jupyterhub_civis"] == {
        "queries": {"k": 1},
        "environment": {"name": "ml", "id": "abc"},
    }
    assert metadata["kernelspec"] == {"name": "python3"}


def test_other_files_are_untouched():
    model = {"type": "file", "content": "print(1)"}
    record_environment(model, {"name": "ml"})
    assert model == {"type": "file", "content": "print(1)"}


def test_the_image_digest_comes_from_the_pods_annotations(tmp_path):
    (tmp_path / "annotations").write_text(
        'jupyterhub-civis/environment="ml"\n'
        'jupyterhub-civis/image-digest="registry.example.com/ml@sha256:' + "a" * 64 + '"\n'
    )
    assert image_digest(str(tmp_path)) == "registry.example.com/ml@sha256:" + "a" * 64
    assert image_digest(str(tmp_path / "missing")) is None
    assert image_digest(None) is None
    (tmp_path / "annotations").write_text('jupyterhub-civis/environment="ml"\n')
    assert image_digest(str(tmp_path)) is None
