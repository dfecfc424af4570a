"""Shared argument checks and the host memory they measure against."""

import os

import pytest

from fastpretrain import checks


def test_host_memory_is_the_cgroup_limit_when_lower(tmp_path, monkeypatch):
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    monkeypatch.setattr(checks, "CGROUP_LIMITS", (str(v2), str(v1)))
    assert checks.host_memory_bytes() == ram  # no cgroup files: the machine's RAM
    v2.write_text("max\n")
    assert checks.host_memory_bytes() == ram  # v2 without a limit
    v1.write_text(f"{2**30}\n")
    assert checks.host_memory_bytes() == 2**30  # a v1 limit
    v2.write_text(f"{2**29}\n")
    assert checks.host_memory_bytes() == 2**29  # the lower of the two
    v1.write_text(f"{ram * 4}\n")
    v2.write_text("max")
    assert checks.host_memory_bytes() == ram  # a limit above the RAM does not raise it


@pytest.mark.parametrize("value", [True, 1.0, "3", -1, 11])
def test_check_int_names_the_argument(value):
    with pytest.raises(ValueError, match=r"window: expected an int in \[0, 10\], got"):
        checks.check_int("window", value, 0, 10)
