"""Invalid ModelDeployments are refused by the API server, with a message that names the field."""

from __future__ import annotations

import copy

import pytest

from tests.cluster.kubectl import Kubectl

VALID = {
    "apiVersion": "berth.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "valid"},
    "spec": {"engine": "pyannote", "model": {"repo": "pyannote/speaker-diarization-3.1"}},
}


def variant(
    spec_changes: dict | None = None, name: str = "bad", drop: tuple[str, ...] = ()
) -> dict:
    manifest = copy.deepcopy(VALID)
    manifest["metadata"]["name"] = name
    for key in drop:
        manifest["spec"].pop(key)
    for key, value in (spec_changes or {}).items():
        manifest["spec"][key] = value
    return manifest


VLLM = {"engine": "vllm", "model": {"repo": "Qwen/Qwen3-VL-30B-A3B-Instruct"}}
SQL = {"name": "sql", "repo": "acme/qwen3-sql-lora"}

# (id, manifest, text the error must contain)
INVALID = [
    ("no-engine", variant(drop=("engine",)), "spec.engine: Required value"),
    ("unknown-engine", variant({"engine": "tgi"}), 'spec.engine: Unsupported value: "tgi"'),
    ("no-model", variant(drop=("model",)), "spec.model: Required value"),
    ("repo-without-org", variant({"model": {"repo": "whisper"}}), "spec.model.repo"),
    ("repo-too-deep", variant({"model": {"repo": "a/b/c"}}), "spec.model.repo"),
    (
        "revision-with-space",
        variant({"model": {"repo": "a/b", "revision": "my branch"}}),
        "spec.model.revision",
    ),
    ("negative-replicas", variant({"replicas": -1}), "spec.replicas"),
    ("negative-gpus", variant({"resources": {"gpus": -1}}), "spec.resources.gpus"),
    ("too-many-gpus", variant({"resources": {"gpus": 65}}), "spec.resources.gpus"),
    (
        "vllm-on-cpu",
        {**variant(VLLM), "spec": {**VLLM, "resources": {"gpus": 0}}},
        "engine vllm needs at least 1 GPU",
    ),
    (
        "vllm-three-gpus",
        {**variant(VLLM), "spec": {**VLLM, "resources": {"gpus": 3}}},
        "spec.resources.gpus: Invalid value",
    ),
    (
        "gpu-resource-name",
        variant({"resources": {"gpuResourceName": "gpu"}}),
        "spec.resources.gpuResourceName",
    ),
    ("memory-not-a-quantity", variant({"resources": {"memory": "lots"}}), "spec.resources.memory"),
    (
        "utilisation-above-one",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"gpuMemoryUtilization": 1.5}}},
        "spec.vllm.gpuMemoryUtilization",
    ),
    (
        "utilisation-zero",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"gpuMemoryUtilization": 0}}},
        "spec.vllm.gpuMemoryUtilization",
    ),
    (
        "context-zero",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"maxModelLen": 0}}},
        "spec.vllm.maxModelLen",
    ),
    (
        "vllm-settings-on-pyannote",
        variant({"vllm": {"maxModelLen": 4096}}),
        "vllm settings need engine vllm",
    ),
    (
        "asr-settings-on-pyannote",
        variant({"asr": {"sourceLang": "fr"}}),
        "asr settings need engine nemo-asr",
    ),
    (
        "prefix-affinity-on-pyannote",
        variant({"gateway": {"balancing": "PrefixAffinity"}}),
        "gateway.balancing PrefixAffinity needs engine vllm",
    ),
    (
        "unknown-balancing",
        {**variant(VLLM), "spec": {**VLLM, "gateway": {"balancing": "RoundRobin"}}},
        "spec.gateway.balancing",
    ),
    (
        "diarization-on-vllm",
        {**variant(VLLM), "spec": {**VLLM, "diarization": {"numSpeakers": 2}}},
        "diarization settings need engine pyannote",
    ),
    (
        "num-and-min-speakers",
        variant({"diarization": {"numSpeakers": 2, "minSpeakers": 1}}),
        "spec.diarization.numSpeakers",
    ),
    (
        "min-above-max-speakers",
        variant({"diarization": {"minSpeakers": 5, "maxSpeakers": 2}}),
        "spec.diarization.minSpeakers",
    ),
    ("zero-speakers", variant({"diarization": {"numSpeakers": 0}}), "spec.diarization.numSpeakers"),
    (
        "language-not-a-code",
        {
            **variant(),
            "spec": {
                "engine": "nemo-asr",
                "model": {"repo": "nvidia/canary-1b-v2"},
                "asr": {"sourceLang": "english"},
            },
        },
        "spec.asr.sourceLang",
    ),
    (
        "extra-arg-sets-tp",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"extraArgs": ["--tensor-parallel-size=2"]}}},
        "spec.vllm.extraArgs",
    ),
    (
        "extra-arg-abbreviates-a-managed-flag",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"extraArgs": ["--tensor-parallel", "2"]}}},
        "spec.vllm.extraArgs",
    ),
    (
        "extra-arg-sets-api-key",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"extraArgs": ["--api-key", "x"]}}},
        "spec.vllm.extraArgs",
    ),
    (
        "token-ref-without-key",
        variant({"model": {"repo": "a/b", "tokenSecretRef": {"name": "hf"}}}),
        "spec.model.tokenSecretRef.key: Required value",
    ),
    (
        "token-ref-bad-name",
        variant({"model": {"repo": "a/b", "tokenSecretRef": {"name": "Bad_Name", "key": "t"}}}),
        "spec.model.tokenSecretRef.name",
    ),
    (
        "api-key-ref-empty",
        variant({"auth": {"apiKeySecretRef": {}}}),
        "spec.auth.apiKeySecretRef.name: Required value",
    ),
    ("env-sets-hf-token", variant({"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}), "spec.env"),
    (
        "rollout-that-cannot-move",
        variant({"rollout": {"maxSurge": 0}}),
        "spec.rollout.maxSurge: Invalid value",
    ),
    (
        "autoscaling-min-above-max",
        variant({"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}),
        "spec.autoscaling.minReplicas: Invalid value",
    ),
    (
        "replicas-above-autoscaling-max",
        variant({"replicas": 3, "autoscaling": {"maxReplicas": 2}}),
        "replicas must not exceed autoscaling.maxReplicas",
    ),
    (
        "autoscaling-zero-target",
        variant({"autoscaling": {"targetInFlight": 0}}),
        "spec.autoscaling.targetInFlight",
    ),
    ("unknown-field", variant({"gpu": 1}), 'unknown field "spec.gpu"'),
    ("name-starts-with-digit", variant(name="1model"), "metadata.name"),
    ("name-too-long", variant(name="m" * 53), "metadata.name"),
    (
        "bad-access-mode",
        variant({"cache": {"accessModes": ["ReadWriteAlways"]}}),
        "spec.cache.accessModes[0]",
    ),
    (
        "bad-toleration-operator",
        variant({"scheduling": {"tolerations": [{"operator": "Maybe"}]}}),
        "spec.scheduling.tolerations[0].operator",
    ),
    ("empty-image", variant({"image": ""}), "spec.image"),
    (
        "negative-mm-limit",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"limitMmPerPrompt": {"image": -1}}}},
        "spec.vllm.limitMmPerPrompt.image",
    ),
    (
        "adapter-named-twice",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"adapters": [SQL, SQL]}}},
        "spec.vllm.adapters[1]: Duplicate value",
    ),
    (
        "adapter-named-as-the-served-model",
        {
            **variant(VLLM),
            "spec": {**VLLM, "vllm": {"servedModelName": "sql", "adapters": [SQL]}},
        },
        "an adapter's name must differ from vllm.servedModelName",
    ),
    (
        "adapter-named-as-the-resource",
        {**variant(VLLM, name="sql"), "spec": {**VLLM, "vllm": {"adapters": [SQL]}}},
        "spec.vllm.adapters: Invalid value",
    ),
    (
        "adapter-on-pyannote",
        variant({"vllm": {"adapters": [SQL]}}),
        "vllm settings need engine vllm",
    ),
    (
        "adapter-repo-without-org",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"adapters": [{**SQL, "repo": "sql"}]}}},
        "spec.vllm.adapters[0].repo",
    ),
    (
        "lora-rank-vllm-refuses",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"lora": {"maxLoraRank": 24}}}},
        "spec.vllm.lora.maxLoraRank: Unsupported value: 24",
    ),
    (
        "fewer-cpu-than-gpu-adapter-slots",
        {**variant(VLLM), "spec": {**VLLM, "vllm": {"lora": {"maxCpuLoras": 2}}}},
        "spec.vllm.lora.maxCpuLoras: Invalid value",
    ),
]


def test_the_list_is_long_enough():
    assert len(INVALID) >= 24
    assert len({case[0] for case in INVALID}) == len(INVALID)


def test_a_translation_pair_without_english_is_refused_naming_the_pairs(
    crd: None, kubectl: Kubectl
):
    bad = {
        **variant(),
        "spec": {
            "engine": "nemo-asr",
            "model": {"repo": "nvidia/canary-1b-v2"},
            "asr": {"sourceLang": "de", "targetLang": "fr"},
        },
    }
    result = kubectl.apply(bad, check=False)
    assert result.returncode != 0
    # the field, then the message (Kubernetes 1.35 quotes the value "object" between them)
    assert "spec.asr.targetLang: Invalid value: " in result.stderr, result.stderr
    assert "Canary translates only X->en and en->X" in result.stderr, result.stderr


@pytest.mark.parametrize(("case", "manifest", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resource_is_refused(
    crd: None, kubectl: Kubectl, case: str, manifest: dict, expected: str
):
    result = kubectl.apply(manifest, check=False)
    assert result.returncode != 0, f"{case} was accepted"
    assert expected in result.stderr, result.stderr
    assert "modeldeployment" not in kubectl("get", "md", "-o", "name").stdout


def test_unmanaged_extra_args_are_accepted(crd: None, kubectl: Kubectl):
    args = [
        "--enable-prefix-caching",
        "--max-num-seqs=64",
        "--model-impl",
        "vllm",
        "--mm-encoder-tp-mode",
        "data",
    ]
    kubectl.apply({**variant(VLLM, name="ok-args"), "spec": {**VLLM, "vllm": {"extraArgs": args}}})


@pytest.mark.parametrize(
    ("source", "target"), [("de", "en"), ("en", "fr"), ("es", "es"), ("de", None), (None, "fr")]
)
def test_supported_translation_pairs_are_accepted(
    crd: None, kubectl: Kubectl, source: str | None, target: str | None
):
    asr = {k: v for k, v in (("sourceLang", source), ("targetLang", target)) if v}
    name = f"pair-{source or 'default'}-{target or 'default'}"
    spec = {"engine": "nemo-asr", "model": {"repo": "nvidia/canary-1b-v2"}, "asr": asr}
    kubectl.apply({**variant(name=name), "spec": spec})
    stored = kubectl.get("md", name)["spec"]["asr"]
    assert {k: stored[k] for k in ("sourceLang", "targetLang")} == {
        "sourceLang": "en",
        "targetLang": "en",
    } | asr


def test_valid_resource_is_accepted_with_defaults(crd: None, kubectl: Kubectl):
    kubectl.apply(VALID)
    spec = kubectl.get("md", "valid")["spec"]
    assert spec["replicas"] == 1
    assert spec["resources"] == {"gpus": 1, "gpuResourceName": "nvidia.com/gpu"}
    assert spec["model"]["revision"] == "main"


def test_scaling_above_the_autoscaling_maximum_is_refused(crd: None, kubectl: Kubectl):
    """The scale subresource (kubectl scale, an HPA) meets the same rule as the manifest."""
    kubectl.apply(variant({"replicas": 0, "autoscaling": {"maxReplicas": 2}}, name="scaled"))
    assert kubectl("scale", "md", "scaled", "--replicas=2").returncode == 0
    result = kubectl("scale", "md", "scaled", "--replicas=3", check=False)
    assert result.returncode != 0
    assert "replicas must not exceed autoscaling.maxReplicas" in result.stderr, result.stderr
    assert kubectl.get("md", "scaled")["spec"]["replicas"] == 2
