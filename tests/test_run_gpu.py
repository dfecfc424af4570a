"""benchmarks/run_gpu.sh, the one command of a GPU call: every profile fits the 8-minute call
(its dry run lists each section with a budget, summing under the 480 s deadline), and a real
run saves as it goes: a section cut at its budget or past the deadline still leaves the others'
results packed in $OUT/results.tgz, with one summary line per section."""

import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks/run_gpu.sh"
PROFILES = ["kernels", "models", "models-compiled", "word2vec", "word2vec-cpu", "quality", "contrastive", "gpt", "gpt-quality", "patch", "lm",
            "mim", "masked", "points", "audio", "pretext", "electra", "tune:BERT S512"]  # fmt: skip


def run(*args, env=None, out=None):
    env = {"PATH": "/usr/bin:/bin", **({"OUT": str(out)} if out else {}), **(env or {})}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_fits_the_deadline(profile, tmp_path):
    done = run("--profile", profile, "--dry-run", out=tmp_path)
    assert done.returncode == 0, done.stderr
    sections = dict(re.findall(r"^(\S+)\s+(\d+) s ", done.stdout, re.MULTILINE))
    total = int(sections.pop("total"))
    assert sections["build"] and len(sections) >= 2
    assert sum(map(int, sections.values())) == total < 480
    assert not list(tmp_path.iterdir()), "a dry run writes nothing"


def test_a_run_saves_after_every_section(tmp_path):
    """selftest: one section finishes, one is killed at its 2 s budget, one is skipped at the deadline."""
    done = run("--profile", "selftest", env={"GPU_DEADLINE_S": "11"}, out=tmp_path)
    assert done.returncode == 1  # a section failed
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert [line.split()[:2] for line in summary] == [["finishes", "rc=0"], ["cut", "rc=124"], ["late", "rc=skipped"]]
    with tarfile.open(tmp_path / "results.tgz") as tar:
        names = {Path(n).name for n in tar.getnames()}
        assert tar.extractfile("./finished.txt").read() == b"done\n"
    assert {"finished.txt", "finishes.log", "cut.log", "summary.txt"} <= names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_section.log", "results.tgz", "summary.txt"]


def test_unknown_profile_is_refused(tmp_path):
    done = run("--profile", "everything", out=tmp_path)
    assert done.returncode == 2 and "usage" in done.stderr
