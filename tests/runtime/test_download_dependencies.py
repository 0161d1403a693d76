"""The download Job fetches the repositories a pyannote pipeline's config.yaml names, with the
model's token, into the same cache, resolvable offline through refs/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from berth_runtime.download.dependencies import Dependency, pipeline_dependencies
from huggingface_hub import hf_hub_download

from tests.hub.server import HubRepo, LocalHub

PIPELINE = "org/diarization-3.1"
SEGMENTATION = "org/segmentation"
EMBEDDING = "org/embedding"
COMMUNITY = "pyannote/speaker-diarization-community-1"


def config_3_1(**params: object) -> dict:
    """speaker-diarization-3.1's config.yaml, with its two repository references and no PLDA."""
    return {
        "version": "3.1.0",
        "pipeline": {
            "name": "pyannote.audio.pipelines.SpeakerDiarization",
            "params": {
                "clustering": "AgglomerativeClustering",
                "embedding": EMBEDDING,
                "segmentation": SEGMENTATION,
                **params,
            },
        },
        "params": {"clustering": {"method": "centroid"}},
    }


def weights(repo_id: str, path: str = "pytorch_model.bin", **options: object) -> HubRepo:
    return HubRepo(repo_id, files={path: os.urandom(300_000)}, lfs={path}, **options)  # type: ignore[arg-type]


def publish(hub: LocalHub, gated_community: bool = False) -> None:
    token = {"gated": True, "tokens": {"hf_good"}}
    hub.add(
        HubRepo(
            PIPELINE,
            files={"config.yaml": yaml.safe_dump(config_3_1()).encode()},
            **token,  # type: ignore[arg-type]
        )
    )
    hub.add(weights(SEGMENTATION, **token))
    hub.add(weights(EMBEDDING, **token))
    community = {
        "plda/plda.npz": os.urandom(200_000),
        "plda/xvec_transform.npz": os.urandom(100_000),
        "embedding/pytorch_model.bin": os.urandom(900_000),  # not needed by 3.1: not fetched
    }
    access = {"gated": True, "tokens": {"hf_other" if gated_community else "hf_good"}}
    hub.add(HubRepo(COMMUNITY, files=community, lfs=set(community), **access))  # type: ignore[arg-type]


def test_config_references_as_pyannote_reads_them():
    assert pipeline_dependencies(config_3_1()) == [
        Dependency(SEGMENTATION),
        Dependency(EMBEDDING),
        Dependency(COMMUNITY, subfolders=("plda",)),
    ]
    own = {"segmentation": "$model/segmentation", "embedding": "$model/embedding"}
    assert pipeline_dependencies(config_3_1(**own, plda="$model/plda")) == []
    pinned = {"checkpoint": "org/plda", "subfolder": "plda", "revision": "v2"}
    assert pipeline_dependencies(config_3_1(**own, plda=pinned)) == [
        Dependency("org/plda", "v2", ("plda",))
    ]
    # community-1 gives every part a 3.1 config leaves out: one download of the three folders
    bare = {"pipeline": {"name": "pyannote.audio.pipelines.SpeakerDiarization"}}
    assert pipeline_dependencies(bare) == [
        Dependency(COMMUNITY, subfolders=("segmentation", "embedding", "plda"))
    ]
    assert pipeline_dependencies({"model_type": "qwen3"}) == []
    local = config_3_1(segmentation="/models/seg.ckpt", embedding="weights/emb.bin")
    assert pipeline_dependencies(local) == [Dependency(COMMUNITY, subfolders=("plda",))]


def test_downloads_the_repositories_the_config_names(hub: LocalHub, run_download):
    publish(hub)
    result = run_download(PIPELINE, HF_TOKEN="hf_good")
    assert result.returncode == 0, result.output
    cache = run_download.cache
    # offline, by name and "main", as pyannote's loaders ask for them
    env = {"HF_HUB_OFFLINE": "1"}
    os.environ.update(env)
    try:
        for repo, path in [
            (SEGMENTATION, "pytorch_model.bin"),
            (EMBEDDING, "pytorch_model.bin"),
            (COMMUNITY, "plda/plda.npz"),
            (COMMUNITY, "plda/xvec_transform.npz"),
        ]:
            local = hf_hub_download(repo, path, cache_dir=cache)
            assert Path(local).read_bytes() == hub.repos[repo].files[path]
    finally:
        for key in env:
            del os.environ[key]
    community = cache / f"models--{COMMUNITY.replace('/', '--')}"
    assert not list(community.rglob("embedding")), "only the PLDA of community-1 is fetched"


def test_progress_counts_the_dependencies(hub: LocalHub, run_download):
    publish(hub)
    result = run_download(PIPELINE, HF_TOKEN="hf_good")
    assert result.returncode == 0, result.output
    final = json.loads(result.output.rsplit("final report: ", 1)[1].splitlines()[0])
    needed = [
        (PIPELINE, "config.yaml"),
        (SEGMENTATION, "pytorch_model.bin"),
        (EMBEDDING, "pytorch_model.bin"),
        (COMMUNITY, "plda/plda.npz"),
        (COMMUNITY, "plda/xvec_transform.npz"),
    ]
    total = sum(len(hub.repos[repo].files[path]) for repo, path in needed)
    assert (final["bytesDone"], final["bytesTotal"]) == (total, total)
    assert (final["filesDone"], final["filesTotal"]) == (5, 5)
    assert sorted(d.split("@")[0] for d in final["dependencies"]) == sorted(
        [SEGMENTATION, EMBEDDING, COMMUNITY]
    )
    assert final["resolvedRevision"] == hub.repos[PIPELINE].commit


def test_a_gated_dependency_is_named_with_the_same_reason(hub: LocalHub, run_download):
    publish(hub, gated_community=True)
    result = run_download(PIPELINE, HF_TOKEN="hf_good")
    assert (result.returncode, result.reason) == (2, "GatedAccessDenied"), result.output
    message = result.termination["message"]
    assert COMMUNITY in message and PIPELINE in message, message
    assert "accept the model's conditions" in message


def test_a_redownload_fetches_the_dependencies_again(hub: LocalHub, run_download):
    publish(hub)
    assert run_download(PIPELINE, HF_TOKEN="hf_good").returncode == 0
    community = run_download.cache / f"models--{COMMUNITY.replace('/', '--')}"
    stray = community / "blobs" / "stray"
    stray.write_text("left over")
    assert run_download(PIPELINE, HF_TOKEN="hf_good", BERTH_FORCE="1").returncode == 0
    assert not stray.exists()
    assert (community / "refs" / "main").read_text() == hub.repos[COMMUNITY].commit
