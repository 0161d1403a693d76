"""The download Job's entry point against the real huggingface_hub client and a local hub."""

from __future__ import annotations

import time

import pytest

from tests.hub.download import MiB, finish, start_download, tiny_repo
from tests.hub.server import HubRepo, LocalHub


def snapshot(cache, repo: HubRepo):
    return cache / f"models--{repo.repo_id.replace('/', '--')}" / "snapshots" / repo.commit


def test_downloads_into_the_cache_layout_and_marks_completion(hub: LocalHub, run_download):
    repo = hub.add(tiny_repo())
    result = run_download("org/tiny")
    assert result.returncode == 0, result.output
    for path, content in repo.files.items():
        assert (snapshot(run_download.cache, repo) / path).read_bytes() == content
    repo_dir = run_download.cache / "models--org--tiny"
    assert (repo_dir / "refs" / "main").read_text() == repo.commit
    assert list((repo_dir / ".berth").glob(f"complete-{repo.commit}-*.json"))

    sent = hub.bytes_sent
    again = run_download("org/tiny")
    assert again.returncode == 0
    assert hub.bytes_sent == sent, "a completed download is not fetched again"


def test_patterns_select_files(hub: LocalHub, run_download):
    repo = hub.add(tiny_repo())
    result = run_download(
        "org/tiny", BERTH_ALLOW_PATTERNS='["*.json"]', BERTH_IGNORE_PATTERNS='["tokenizer*"]'
    )
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in snapshot(run_download.cache, repo).iterdir()) == ["config.json"]


@pytest.mark.parametrize(
    ("repo_options", "env", "reason", "words", "exit_code"),
    [
        (
            {"gated": True, "tokens": {"hf_good"}},
            {},
            "AuthRequired",
            "spec.model.tokenSecretRef",
            2,
        ),
        (
            {"gated": True, "tokens": {"hf_good"}},
            {"HF_TOKEN": "hf_other"},
            "GatedAccessDenied",
            "accept the model's conditions",
            2,
        ),
        (
            {"private": True, "tokens": {"hf_good"}},
            {"HF_TOKEN": "hf_other"},
            "RepoNotFound",
            "spec.model.repo",
            2,
        ),
        (
            {"private": True, "tokens": {"hf_good"}},
            {},
            "AuthRequired",
            "private or does not exist",
            2,
        ),
        ({}, {"BERTH_MODEL_REVISION": "v9"}, "RevisionNotFound", "spec.model.revision", 2),
        (
            {"claimed_sizes": {"model.safetensors": 2**50}},
            {},
            "InsufficientStorage",
            "grow the cache claim",
            2,
        ),
        ({"corrupt": {"model.safetensors"}}, {}, "IntegrityCheckFailed", "sha256", 1),
    ],
)
def test_failures_are_typed(
    hub: LocalHub, run_download, repo_options, env, reason, words, exit_code
):
    hub.add(tiny_repo(**repo_options))
    result = run_download("org/tiny", **env)
    assert result.returncode == exit_code, result.output
    assert result.reason == reason, result.output
    assert words in result.termination["message"]


def test_gated_repo_with_a_good_token_downloads(hub: LocalHub, run_download):
    hub.add(tiny_repo(gated=True, tokens={"hf_good"}))
    assert run_download("org/tiny", HF_TOKEN="hf_good").returncode == 0


def test_server_errors_are_network_errors_worth_a_retry(hub: LocalHub, run_download):
    hub.add(tiny_repo())
    hub.faults.status = 500
    result = run_download("org/tiny")
    assert (result.returncode, result.reason) == (1, "NetworkError"), result.output


def test_a_stalled_download_fails_as_stalled(hub: LocalHub, run_download):
    hub.add(tiny_repo(weights_mib=4))
    hub.faults.stall_after = 256 * 1024
    started = time.monotonic()
    result = run_download("org/tiny", BERTH_DOWNLOAD_STALL_SECONDS="2", timeout=60)
    assert (result.returncode, result.reason) == (1, "Stalled"), result.output
    assert time.monotonic() - started < 30


def test_resume_after_a_kill_does_not_fetch_completed_bytes_again(hub: LocalHub, tmp_path):
    # huggingface_hub >= 1 writes <etag>.<8 hex>.incomplete, never reuses it, and a kill leaves
    # it behind: the next attempt completes it with a Range request and leaves no partial
    repo = hub.add(tiny_repo(weights_mib=24))
    cache = tmp_path / "cache"
    hub.faults.bytes_per_second = 8 * MiB
    process = start_download(hub, cache, "org/tiny")
    blobs = cache / "models--org--tiny" / "blobs"
    partial = f"{repo.etag('model.safetensors')}.*incomplete"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(blobs.glob(partial)) if blobs.exists() else []
        if found and found[0].stat().st_size >= 10 * MiB:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    (left,) = blobs.glob(partial)
    kept = left.stat().st_size
    hub.faults.bytes_per_second = None
    before = hub.bytes_sent
    result = finish(start_download(hub, cache, "org/tiny"), cache)
    assert result.returncode == 0, result.output
    fetched_again = hub.bytes_sent - before
    assert kept >= 10 * MiB
    assert fetched_again <= 24 * MiB - kept + 64 * 1024, (fetched_again, kept)
    assert (snapshot(cache, repo) / "model.safetensors").read_bytes() == repo.files[
        "model.safetensors"
    ]
    assert not list(blobs.glob("*incomplete")), "no partial is left behind"


def test_force_removes_the_repository_first(hub: LocalHub, run_download):
    hub.add(tiny_repo())
    assert run_download("org/tiny").returncode == 0
    stray = run_download.cache / "models--org--tiny" / "blobs" / "stray"
    stray.write_text("left over")
    sent = hub.bytes_sent
    assert run_download("org/tiny", BERTH_FORCE="1").returncode == 0
    assert not stray.exists()
    assert hub.bytes_sent > sent, "everything was downloaded again"


def test_two_jobs_on_one_cache_do_not_corrupt_each_other(hub: LocalHub, tmp_path):
    repo = hub.add(tiny_repo(weights_mib=24))
    hub.faults.bytes_per_second = 24 * MiB
    cache = tmp_path / "shared"
    first, second = start_download(hub, cache, "org/tiny"), start_download(hub, cache, "org/tiny")
    results = [finish(first, cache), finish(second, cache)]
    assert [r.returncode for r in results] == [0, 0], [r.output for r in results]
    for path, content in repo.files.items():
        assert (snapshot(cache, repo) / path).read_bytes() == content


def test_a_dropped_connection_is_retried_and_resumed(hub: LocalHub, run_download):
    repo = hub.add(tiny_repo(weights_mib=24))
    hub.faults.disconnect_after = 12 * MiB
    first = run_download("org/tiny")
    hub.faults.disconnect_after = None
    if first.returncode != 0:  # the client gave up: the Job's next attempt resumes
        assert (first.returncode, first.reason) == (1, "NetworkError"), first.output
        assert run_download("org/tiny").returncode == 0
    assert (snapshot(run_download.cache, repo) / "model.safetensors").read_bytes() == repo.files[
        "model.safetensors"
    ]
