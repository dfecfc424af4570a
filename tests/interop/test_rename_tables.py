"""The rename-table engine: both directions invert each other, fused tensors split and join,
the first matching rule wins, exact names do not match as prefixes, tied copies are written and
skipped, and every kind of bad input is a ValueError that names the key."""

import pytest
import torch

from fastpretrain.interop.rename import RenameTable

TABLE = RenameTable(
    [
        ("blocks.{i}.special", "layer.{i}.very_special"),
        ("blocks.{i}.qkv.", tuple(f"layer.{{i}}.{n}." for n in "qkv")),
        ("blocks.{i}.", "layer.{i}.sub."),
        ("emb", "embedding"),
        ("head.", "out."),
    ],
    ours="ours",
    theirs="theirs",
    drop=("decoder_",),
    unsupported={"fancy.": "fancy layers are not built here"},
    tied=(("out_copy", "embedding"),),
    required=("emb",),
)


def ours() -> dict:
    g = torch.Generator().manual_seed(0)
    shapes = {"emb": (5, 4), "blocks.0.qkv.weight": (12, 4), "blocks.0.qkv.bias": (12,), "blocks.0.special": (2,),
              "blocks.11.norm.weight": (4,), "head.weight": (3, 4)}  # fmt: skip
    return {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}


def test_round_trip_fused_tied_and_first_match():
    theirs = TABLE.to_theirs(ours())
    assert set(theirs) == {"embedding", "out_copy", "layer.0.q.weight", "layer.0.k.weight", "layer.0.v.weight",
                           "layer.0.q.bias", "layer.0.k.bias", "layer.0.v.bias", "layer.0.very_special",
                           "layer.11.sub.norm.weight", "out.weight"}  # fmt: skip
    assert torch.equal(theirs["layer.0.k.weight"], ours()["blocks.0.qkv.weight"][4:8])
    assert theirs["out_copy"] is theirs["embedding"]
    back = TABLE.to_ours({**theirs, "decoder_pred.weight": torch.zeros(1)})  # dropped on purpose
    assert set(back) == set(ours()) and all(torch.equal(back[k], v) for k, v in ours().items())


@pytest.mark.parametrize(
    "direction, state, match",
    [
        ("theirs", {"emb": 1, "emb2": 1}, r"1 keys with no counterpart in theirs: emb2"),
        ("theirs", {"emb": 1, "fancy.x": 1}, r"'fancy.x': fancy layers are not built here"),
        ("ours", {"embedding": 1, "layer.0.q.bias": torch.zeros(2), "layer.0.v.bias": torch.zeros(2)},
         r"'blocks.0.qkv.bias' is fused from 3 tensors; found only layer.0.q.bias, layer.0.v.bias"),
        ("ours", {"out.weight": 1}, r"'emb' is missing; expected the weights of a theirs"),
        ("ours", {"embedding": 1, "unknown": 1}, "no counterpart in ours: unknown"),
        ("ours", {"embedding": torch.ones(2), "out_copy": torch.zeros(2)}, r"'out_copy' differs from 'embedding'"),
    ],
)
def test_bad_input_names_the_key(direction, state, match):
    convert = TABLE.to_theirs if direction == "theirs" else TABLE.to_ours
    with pytest.raises(ValueError, match=match):
        convert(state)


def test_two_keys_onto_one_are_refused():
    table = RenameTable([("a.", "x."), ("b.", "x.")], ours="ours", theirs="theirs")
    with pytest.raises(ValueError, match="'b.w' maps to 'x.w', which another key already filled"):
        table.to_theirs({"a.w": 1, "b.w": 2})
