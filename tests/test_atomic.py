"""Atomic writes: the target appears whole or not at all, with the mode a plain open() gives it."""

import os
import stat

import pytest

from fastpretrain.atomic import atomic_path, atomic_write, check_writable, creation_mode, umask


@pytest.fixture(params=[0o022, 0o077, 0o002, 0o000])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, mask):
    with atomic_write(tmp_path / "a.txt", "w") as f:
        f.write("x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    open(tmp_path / "plain", "w").close()
    want = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert want == 0o666 & ~mask == creation_mode() and umask() == mask
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == want


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a.txt", "w") as f:
        f.write("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_check_writable_makes_the_folder_and_leaves_no_probe(tmp_path):
    target = tmp_path / "new" / "deeper" / "v.bin"
    assert check_writable("--out", target) == target
    assert target.parent.is_dir() and os.listdir(target.parent) == []
