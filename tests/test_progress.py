"""Progress: a bar on a terminal, log lines on stderr without one, nothing when disabled."""

import re

from fastpretrain.progress import Progress


def test_log_lines_without_a_terminal(capsys):
    with Progress(4_000_000, "word2vec", "word", interval=0) as bar:
        bar.set_postfix(loss="3.210", lr="1.0e-02")
        bar.update(1_000_000)
        bar.update(3_000_000)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one per update (interval 0) and the final one
    assert re.fullmatch(r"word2vec: 1\.00M/4\.00M word \(25%\), [\d.]+[kMG]?word/s, loss 3\.210, lr 1\.0e-02, \d+ s",
                        lines[0]), lines[0]  # fmt: skip
    assert lines[1].startswith("word2vec: 4.00M/4.00M word (100%)") and lines[2].startswith(lines[1][:30])


def test_lines_wait_for_the_interval(capsys):
    with Progress(10, "batches", "word", interval=3600) as bar:
        for _ in range(10):
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batches: 10.0/10.0 word (100%)"), lines


def test_a_terminal_gets_a_bar_and_disabled_prints_nothing(capsys, monkeypatch):
    with Progress(10, "quiet", "B", enabled=False) as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    with Progress(10, "bar", "B", interval=0) as bar:
        bar.update(10)
    assert "bar: 100%" in capsys.readouterr().err and bar.n == 10


def test_reading_documents_logs_without_a_terminal(tmp_path, capsys):
    from fastpretrain.data import read_documents

    (tmp_path / "docs.txt").write_text("One. Two.\n\nThree.\n")
    assert list(read_documents(tmp_path / "docs.txt")) == [["One. Two."], ["Three."]]
    assert re.match(r"reading documents: 18\.0/18\.0 B \(100%\)", capsys.readouterr().err)
