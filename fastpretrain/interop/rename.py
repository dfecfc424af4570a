"""A rename table between our state dicts and another project's: ordered rules, both directions,
with clear errors for keys no rule takes, fused tensors with a missing part, and required keys.

A rule is ``(ours, theirs)``: templates whose ``{name}`` fields match a decimal index (``blocks.{i}.``).
A template ending in "." is a prefix (the rest of the key, e.g. ``weight``, carries over); any
other matches the whole key. ``theirs`` may be a tuple: our tensor is their tensors concatenated
along dim 0 (a fused q/k/v projection). The first rule that matches a key wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

from fastpretrain.models.registry import check_weights

_FIELD = re.compile(r"\{(\w+)\}")


class _Template:
    def __init__(self, template: str) -> None:
        self.template = template
        parts = _FIELD.split(template)  # literal, field, literal, field, ...
        pattern = "".join(re.escape(p) if i % 2 == 0 else rf"(?P<{p}>\d+)" for i, p in enumerate(parts))
        self.prefix = template.endswith(".")
        self.regex = re.compile(pattern + ("(?P<_rest>.*)" if self.prefix else ""))

    def match(self, key: str) -> dict | None:
        m = self.regex.fullmatch(key)
        return None if m is None else m.groupdict()

    def format(self, groups: dict) -> str:
        return self.template.format(**{k: v for k, v in groups.items() if k != "_rest"}) + groups.get("_rest", "")


class RenameTable:
    """``to_ours(their_state_dict)`` and ``to_theirs(our_state_dict)``.

    Args:
        rules: ordered ``(ours, theirs)`` templates (see the module docstring).
        ours, theirs: the two formats' names, for error messages.
        drop: prefixes of their keys that have no counterpart on purpose (e.g. a decoder we do not build).
        unsupported: ``{prefix: reason}`` of keys (either side) that mean a layout we cannot convert.
        tied: ``(their key, their source key)`` pairs: their copies of a tied tensor, written on
            ``to_theirs`` and skipped on ``to_ours``.
        required: our keys that ``to_ours`` must produce (a cheap check that the input is the right format).
    """

    def __init__(self, rules: Iterable[tuple[str, str | tuple[str, ...]]], *, ours: str, theirs: str,
                 drop: tuple[str, ...] = (), unsupported: Mapping[str, str] | None = None,
                 tied: tuple[tuple[str, str], ...] = (), required: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.rules = [(_Template(a), tuple(map(_Template, b)) if isinstance(b, tuple) else _Template(b))
                      for a, b in rules]  # fmt: skip
        self.ours, self.theirs = ours, theirs
        self.drop, self.unsupported, self.tied, self.required = drop, dict(unsupported or {}), tied, required

    def _check_supported(self, keys: Iterable[str]) -> None:
        found = {reason: key for key in keys for prefix, reason in self.unsupported.items() if key.startswith(prefix)}
        if found:
            raise ValueError("state_dict: " + "; ".join(f"{key!r}: {reason}" for reason, key in found.items()))

    @staticmethod
    def _unmatched(keys: list[str], target: str) -> None:
        if keys:
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            raise ValueError(f"state_dict: {len(keys)} keys with no counterpart in {target}: "
                             f"{', '.join(keys[:5])}{more}")  # fmt: skip

    @staticmethod
    def _put(out: dict, key: str, value: torch.Tensor, source: str) -> None:
        if key in out:
            raise ValueError(f"state_dict: {source!r} maps to {key!r}, which another key already filled")
        out[key] = value

    def _check_tied(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        for copy, source in self.tied:
            if copy in state_dict and source in state_dict and not torch.equal(state_dict[copy], state_dict[source]):
                raise ValueError(f"state_dict: {copy!r} differs from {source!r}; {self.ours} ties the two "
                                 f"(one tensor), so it cannot hold both")  # fmt: skip

    def to_theirs(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Our names -> theirs (fused tensors split in equal parts along dim 0, tied copies added)."""
        self._check_supported(state_dict)
        out, unmatched = {}, []
        for key, value in state_dict.items():
            for ours, theirs in self.rules:
                groups = ours.match(key)
                if groups is None:
                    continue
                if isinstance(theirs, tuple):
                    for t, part in zip(theirs, value.chunk(len(theirs))):
                        self._put(out, t.format(groups), part, key)
                else:
                    self._put(out, theirs.format(groups), value, key)
                break
            else:
                unmatched.append(key)
        self._unmatched(unmatched, self.theirs)
        for copy, source in self.tied:
            out[copy] = out[source]
        return out

    def to_ours(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Their names -> ours (fused tensors concatenated from all their parts); dropped keys skipped,
        and tied copies too once they are checked equal to their source (else ours would lose them)."""
        self._check_tied(state_dict)
        tied = {copy for copy, _ in self.tied}
        keys = [k for k in state_dict if k not in tied and not (self.drop and k.startswith(self.drop))]
        self._check_supported(keys)
        out, fused, unmatched = {}, {}, []
        for key in keys:
            for ours, theirs in self.rules:
                options = theirs if isinstance(theirs, tuple) else (theirs,)
                hit = next(((j, g) for j, t in enumerate(options) if (g := t.match(key)) is not None), None)
                if hit is None:
                    continue
                j, groups = hit
                if isinstance(theirs, tuple):
                    fused.setdefault(ours.format(groups), [None] * len(theirs))[j] = (key, state_dict[key])
                else:
                    self._put(out, ours.format(groups), state_dict[key], key)
                break
            else:
                unmatched.append(key)
        self._unmatched(unmatched, self.ours)
        for key, parts in fused.items():
            if any(p is None for p in parts):
                found = ", ".join(p[0] for p in parts if p is not None)
                raise ValueError(f"state_dict: {key!r} is fused from {len(parts)} tensors; found only {found}")
            self._put(out, key, torch.cat([value for _, value in parts]), parts[0][0])
        missing = [k for k in self.required if k not in out]
        if missing:
            raise ValueError(f"state_dict: {missing[0]!r} is missing; expected the weights of a {self.theirs}")
        return out


def load_converted(model: torch.nn.Module, state_dict: Mapping, convert, source: str, misfit: str) -> torch.nn.Module:
    """``model`` with foreign weights ``state_dict`` turned into ours by ``convert``, checked before
    anything loads: a conversion error or a misfit is a ValueError naming ``source`` (then ``misfit``)."""
    try:
        ours = convert(state_dict)
    except ValueError as e:
        raise ValueError(f"{source}: {str(e).removeprefix('state_dict: ')}") from None
    check_weights(ours, model.state_dict(), f"{source}: {misfit}")
    model.load_state_dict(ours)
    return model
