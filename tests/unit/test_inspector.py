"""The dependency inspector's comparison with expected versions."""

from berth_operator.api.dependencies import compare
from berth_runtime.inspector import inspect_dependencies, torchaudio_build

CUDA_TORCH = {"torch": {"version": "2.9.0+cu128", "cuda_runtime": "12.8"}}


def test_matching_versions_are_prefixes():
    deps = {**CUDA_TORCH, "vllm": {"version": "0.11.2"}}
    assert compare(deps, {"cudaRuntime": "12.8", "torch": "2.9", "vllm": "0.11.2"}) == []


def test_cuda_runtime_mismatch_says_what_runs_and_what_was_expected():
    (mismatch,) = compare(
        {"torch": {"version": "2.6.0+cu124", "cuda_runtime": "12.4"}}, {"cudaRuntime": "12.8"}
    )
    assert mismatch.reason == "CudaRuntimeMismatch"
    assert "12.4" in mismatch.message and "12.8 expected" in mismatch.message


def test_missing_torch_and_library_are_mismatches():
    reasons = [m.reason for m in compare({}, {"cudaRuntime": "12.8", "nemo_toolkit": "2.5"})]
    assert sorted(reasons) == ["CudaRuntimeMismatch", "DependencyMismatch"]


def test_cpu_torchaudio_beside_cuda_torch_is_flagged():
    deps = {**CUDA_TORCH, "torchaudio": {"version": "2.9.0+cpu", "build": "cpu"}}
    assert [m.reason for m in compare(deps, {})] == ["CpuOnlyTorchaudio"]


def test_this_process_is_inspected_without_torch_or_gpu():
    report = inspect_dependencies(("aiohttp",))
    assert report["python"]["version"].count(".") == 2
    assert report["aiohttp"]["version"]
    assert report["gpus"] == []


def test_torchaudio_build_comes_from_its_version_tag_first():
    # torchaudio 2.11.0+cu130 on an H100 has no CUDA op any more, yet is a CUDA build
    assert torchaudio_build("2.11.0+cu130", None) == "cuda"
    assert torchaudio_build("2.9.0+cpu", None) == "cpu"
    assert torchaudio_build("2.6.0", 12040) == "cuda"
    assert torchaudio_build("2.6.0", 0) == "cpu"
    assert torchaudio_build("2.9.0", None) == "unknown"
