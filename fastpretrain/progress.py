"""Progress of long phases: a tqdm bar on a terminal, plain log lines on stderr otherwise (CI
logs, nohup, pipes), so a run without a TTY still says how far it got."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LOG_INTERVAL_S = 15.0


class Progress:
    """``update(n)`` / ``set_postfix(**values)`` / ``close()`` as tqdm's. Without a TTY, a line
    "desc: done/total unit (pct), rate, postfix" is printed every ``interval`` seconds and at the end.
    ``enabled=False`` prints nothing."""

    def __init__(self, total: float, desc: str, unit: str, enabled: bool = True, interval: float = LOG_INTERVAL_S):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = 0
        self._postfix: dict[str, str] = {}
        tty = enabled and sys.stderr.isatty()
        self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True) if tty else None
        self._log = enabled and not tty
        self._start = self._last = time.monotonic()

    def update(self, n: float) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log and time.monotonic() - self._last >= self.interval:
            self._print()

    def set_postfix(self, **values) -> None:
        self._postfix = {k: str(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._log:
            self._print()
            self._log = False

    def _print(self) -> None:
        self._last = time.monotonic()
        elapsed = self._last - self._start
        size = tqdm.format_sizeof
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        rate = f", {size(self.n / elapsed)}{self.unit}/s" if elapsed > 0 else ""
        extra = "".join(f", {k} {v}" for k, v in self._postfix.items())
        line = f"{self.desc}: {size(self.n)}/{size(self.total)} {self.unit}{share}{rate}{extra}, {elapsed:.0f} s"
        print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
