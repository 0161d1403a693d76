"""A `.nemo` archive is unpacked safely also where Python has no extraction filters (Debian 12's
3.11.2, which the engine images run)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from berth_runtime.engines.nemo_asr import model


def archive(path: Path, *members: tuple[str, bytes | None]) -> Path:
    """A tar at `path` whose members are files (bytes) or, for None, a symlink to /etc/passwd."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(params=["with filters", "without filters"])
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "without filters":
        monkeypatch.delattr(tarfile, "data_filter")


@pytest.mark.usefixtures("filters")
def test_a_nemo_archive_unpacks_into_a_fresh_directory(tmp_path: Path) -> None:
    nemo = archive(tmp_path / "m.nemo", ("model_config.yaml", b"a: 1"), ("w/x.ckpt", b"01"))
    scratch = tmp_path / "scratch"
    (scratch / "stale").mkdir(parents=True)
    assert model.extract(nemo, scratch) == scratch
    assert sorted(p.name for p in scratch.rglob("*")) == ["model_config.yaml", "w", "x.ckpt"]


@pytest.mark.usefixtures("filters")
@pytest.mark.parametrize("member", [("../outside", b"x"), ("/etc/evil", b"x"), ("link", None)])
def test_nothing_lands_outside_the_extraction_root(tmp_path: Path, member: tuple) -> None:
    nemo = archive(tmp_path / "bad.nemo", ("model_config.yaml", b"a: 1"), member)
    scratch = tmp_path / "scratch"
    try:
        model.extract(nemo, scratch)
    except (ValueError, tarfile.TarError):
        pass  # refused whole: without filters, always
    else:  # Python's data filter strips a leading / and keeps the member inside
        assert all(p.resolve().is_relative_to(scratch) for p in scratch.rglob("*"))
    assert not (tmp_path / "outside").exists() and not Path("/etc/evil").exists()


def test_without_filters_an_archive_reaching_outside_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(tarfile, "data_filter")
    for member in (("../outside", b"x"), ("/etc/evil", b"x"), ("link", None)):
        nemo = archive(tmp_path / "bad.nemo", member)
        with pytest.raises(ValueError, match=r"which a \.nemo never does"):
            model.extract(nemo, tmp_path / "scratch")
