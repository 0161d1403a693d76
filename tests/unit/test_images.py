"""The images: Dockerfiles, lock files, expected.json, the chart and the operator's defaults agree,
and every Dockerfile follows the rules that let it build from package registries alone."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from berth_operator.config import (
    DEFAULT_EXPECTED_DEPENDENCIES,
    DEFAULT_REGISTRY,
    DEFAULT_TAG,
    OperatorConfig,
)
from berth_operator.controller.security import RUN_AS_USER
from packaging.requirements import Requirement

from images import build, catalog, content

ROOT = catalog.ROOT
IMAGES = ROOT / "runtime_images"
ENGINES = sorted(DEFAULT_EXPECTED_DEPENDENCIES)
NAMES = sorted(catalog.DOCKERFILES)
BUILT = sorted([*catalog.DOCKERFILES, *catalog.BASES])  # the shipped images and their bases


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, str]:
    return {
        normalized(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", lock.read_text(), re.MULTILINE)
    }


def dockerfile(name: str) -> str:
    return (ROOT / catalog.dockerfile(name)).read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_expected_dependencies_are_what_the_lock_installs(engine: str) -> None:
    expected = json.loads((IMAGES / engine / "expected.json").read_text())
    assert expected == DEFAULT_EXPECTED_DEPENDENCIES[engine]
    versions = locked(IMAGES / engine / "requirements.lock")
    for name, version in expected.items():
        if name != "cudaRuntime":
            assert versions[normalized(name)] == version


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_dockerfile_labels_its_expected_dependencies_and_runs_the_server(
    engine: str,
) -> None:
    text = dockerfile(engine)
    assert json.loads(re.search(r"expected-dependencies='(.*)'", text)[1]) == json.loads(
        (IMAGES / engine / "expected.json").read_text()
    )
    assert content.entrypoint(ROOT / catalog.DOCKERFILES[engine]) == (
        "python",
        "-m",
        "berth_runtime.server",
    )


def test_torch_wheels_of_every_image_are_cuda_builds_of_the_expected_runtime() -> None:
    for engine in ENGINES:
        cuda = DEFAULT_EXPECTED_DEPENDENCIES[engine]["cudaRuntime"]
        versions = locked(IMAGES / engine / "requirements.lock")
        # CUDA 12 wheels carry the major in their name; CUDA 13 ones carry it in their version
        runtime = versions.get("nvidia-cuda-runtime") or ""
        assert f"nvidia-cuda-runtime-cu{cuda.split('.')[0]}" in versions or runtime.startswith(
            f"{cuda}."
        ), engine


@pytest.mark.parametrize("name", BUILT)
def test_base_is_a_build_argument_defaulting_to_public_debian_and_the_only_from(name: str) -> None:
    steps = instructions(dockerfile(name))
    if name in catalog.PARENTS:  # built on another image of the catalog, which the builder names
        assert steps[0] == ("ARG", "BASE")
        assert catalog.PARENTS[name] in catalog.BASES
    else:
        assert steps[0][0] == "ARG" and re.fullmatch(r"BASE=debian:12(-slim)?", steps[0][1])
    assert [args for step, args in steps if step == "FROM"] == ["${BASE}"]
    # nothing pulled from an outside registry: no CUDA base, no `COPY --from=ghcr.io/...`
    assert not [args for step, args in steps if step in ("COPY", "ADD") and "--from" in args]


@pytest.mark.parametrize("name", BUILT)
def test_venv_comes_from_the_images_own_lock_with_compiled_bytecode(name: str) -> None:
    text = dockerfile(name)
    lock = (ROOT / catalog.dockerfile(name)).parent / "requirements.lock"
    assert lock.exists()
    sources = content.copied_sources(text)
    assert "images/python-venv.sh" in sources and str(lock.relative_to(ROOT)) in sources
    assert "RUN sh /opt/berth/build/python-venv.sh /opt/berth/build/requirements.lock" in text
    if name in catalog.DOCKERFILES:
        # the code copied after the venv is compiled as well: the root filesystem is read-only
        assert text.index("python-venv.sh /opt") < text.index(
            "RUN python -m compileall -q /opt/berth"
        )


@pytest.mark.parametrize(("child", "parent"), sorted(catalog.PARENTS.items()))
def test_an_image_built_on_another_locks_every_package_of_its_parent_at_the_same_version(
    child: str, parent: str
) -> None:
    """Otherwise the child's venv step replaces the parent's files and the layer is not shared."""
    below = locked((ROOT / catalog.dockerfile(parent)).parent / "requirements.lock")
    above = locked((ROOT / catalog.dockerfile(child)).parent / "requirements.lock")
    assert "torch" in below
    assert {name: above.get(name) for name in below} == below
    # the child adds to the parent's venv, where uv keeps what is there and compiles only new files
    script = (ROOT / "images" / "python-venv.sh").read_text()
    assert "[ -x /opt/venv/bin/python ] || " in script


def test_the_venv_script_compiles_bytecode_and_never_downloads_a_python() -> None:
    script = (ROOT / "images" / "python-venv.sh").read_text()
    assert re.search(r"^export .*\bUV_COMPILE_BYTECODE=1\b", script, re.MULTILINE)
    assert re.search(r"^export .*\bUV_PYTHON_DOWNLOADS=never\b", script, re.MULTILINE)
    assert "--python /usr/bin/python3.11" in script  # Debian's Python
    assert re.search(r"pip install .*\buv==\d+\.\d+\.\d+$", script, re.MULTILINE)  # uv from PyPI


@pytest.mark.parametrize("name", NAMES)
def test_image_runs_as_the_non_root_user_and_copies_only_what_exists(name: str) -> None:
    text = dockerfile(name)
    user = [args for step, args in instructions(text) if step == "USER"][-1]
    assert user == f"{RUN_AS_USER}:{RUN_AS_USER}", "the user the operator renders pods with"
    assert "RUN sh /opt/berth/build/debian-packages.sh" in text
    for source in content.copied_sources(text):
        assert (ROOT / source).exists(), source


def test_engine_images_bring_what_their_libraries_load_at_run_time() -> None:
    packages = {
        name: re.search(r"RUN sh /opt/berth/build/debian-packages\.sh(.*)", dockerfile(name))[
            1
        ].split()
        for name in NAMES
    }
    assert {"gcc", "libc6-dev", "python3.11-dev"} <= set(packages["vllm"])  # Triton's launcher
    assert {"libavcodec59", "libavformat59", "libavutil57"} <= set(packages["pyannote"])
    assert "libpython3.11" in packages["pyannote"]  # torchcodec links against it
    assert "libsndfile1" in packages["nemo-asr"]
    assert packages["operator"] == packages["downloader"] == []
    build_only = {
        name: re.search(r"RUN sh /opt/berth/build/python-venv\.sh \S+(.*)", dockerfile(name))[
            1
        ].split()
        for name in NAMES
    }
    # NeMo's lock holds C and C++ sources (texterrors, ctc-segmentation); their compilers are
    # removed after the venv step, so none may be a package the image keeps
    assert {"g++", "python3.11-dev"} <= set(build_only["nemo-asr"])
    for name in NAMES:
        assert not set(build_only[name]) & set(packages[name]), name


@pytest.mark.parametrize(("name", "extras"), [("operator", ()), ("downloader", ("runtime",))])
def test_control_plane_locks_satisfy_the_projects_requirements(name: str, extras: tuple) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    versions = locked((ROOT / catalog.DOCKERFILES[name]).parent / "requirements.lock")
    for requirement in map(Requirement, requirements):
        assert requirement.specifier.contains(versions[normalized(requirement.name)]), requirement


def test_published_names_are_the_charts_and_the_operators_defaults() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "berth" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "berth" / "values.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == chart["version"] == DEFAULT_TAG == version
    assert values["image"]["repository"] == catalog.repository("operator")
    assert values["image"]["tag"] in ("", DEFAULT_TAG)
    config = OperatorConfig()
    assert values["engines"]["images"] == config.images
    assert config.images == {engine: catalog.published(engine) for engine in ENGINES}
    assert values["engines"]["downloaderImage"] == config.downloader_image
    assert config.downloader_image == catalog.published("downloader")
    assert catalog.plan()["registry"] == DEFAULT_REGISTRY


def test_content_key_follows_what_the_dockerfile_copies(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("a = 1\n")
    (tmp_path / "lock").write_text("x==1\n")
    (tmp_path / "other").write_text("not copied\n")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=debian:12-slim\nFROM ${BASE}\nCOPY lock \\\n  /x/\nCOPY --chown=1 code /code\n"
    )
    key = content.content_key(tmp_path, Path("Dockerfile"), {"BASE": "b"})
    assert content.copied_sources((tmp_path / "Dockerfile").read_text()) == ["lock", "code"]
    (tmp_path / "other").write_text("changed\n")
    (tmp_path / "code" / "__pycache__").mkdir()
    (tmp_path / "code" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert content.content_key(tmp_path, Path("Dockerfile"), {"BASE": "b"}) == key
    assert content.content_key(tmp_path, Path("Dockerfile"), {"BASE": "c"}) != key
    (tmp_path / "code" / "a.py").write_text("a = 2\n")
    assert content.content_key(tmp_path, Path("Dockerfile"), {"BASE": "b"}) != key


def test_release_builds_what_the_plan_names_with_the_same_dockerfiles() -> None:
    workflows = ROOT / ".github" / "workflows"
    workflow = yaml.safe_load((workflows / "release.yml").read_text())
    plan_steps = " ".join(step.get("run", "") for step in workflow["jobs"]["plan"]["steps"])
    assert "python -m images --plan" in plan_steps
    jobs = workflow["jobs"]
    # the bases first, then the images built on them, by one reusable workflow
    assert "bases" in jobs["image"]["needs"]
    for job, entries in (("bases", "bases"), ("image", "images")):
        assert jobs[job]["uses"] == "./.github/workflows/images.yml"
        assert f"plan).{entries})" in jobs[job]["with"]["images"]
    images = yaml.safe_load((workflows / "images.yml").read_text())["jobs"]["image"]
    build = next(step for step in images["steps"] if step.get("id") == "build")["with"]
    assert build["file"] == "${{ matrix.image.dockerfile }}"
    assert build["platforms"] == "${{ matrix.image.platforms }}"
    assert build["sbom"] is True
    # BASE only where the plan names one; elsewhere the Dockerfiles' public Debian base
    assert "matrix.image.base" in build["build-args"]
    assert any("cosign sign" in step.get("run", "") for step in images["steps"])
    plan = catalog.plan()
    assert {entry["dockerfile"] for entry in plan["images"]} == {
        str(path) for path in catalog.DOCKERFILES.values()
    }
    assert [entry["name"] for entry in plan["bases"]] == list(catalog.BASES)
    for entry in plan["images"]:
        parent = catalog.PARENTS.get(entry["name"])
        assert entry["base"] == (catalog.published(parent) if parent else "")


def test_an_image_is_built_on_its_parent_of_this_trees_content() -> None:
    """The parent's content key is in the child's BASE, so a new torch lock rebuilds both."""
    torch = build.keyed_name("torch", build.key_of("torch", "debian-base"))
    for name in BUILT:
        expected = torch if catalog.PARENTS.get(name) == "torch" else "debian-base"
        assert build.base_of(name, "debian-base") == expected, name
    assert build.key_of("pyannote", "debian-base") != build.key_of("pyannote", "other-debian")
