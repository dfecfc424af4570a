"""A Triton rule the interpreter does not enforce: a @triton.jit function may read a module global
only if it is a tl.constexpr (or another jit function / module). Compiling for the GPU fails
otherwise, so this static check stands in for the GPU on CPU-only machines."""

import ast
from pathlib import Path

import pytest

KERNELS = sorted((Path(__file__).resolve().parents[2] / "kernels").glob("*.py"))


def _is_jit(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d).split("(")[0] in ("triton.jit", "jit") for d in fn.decorator_list)


def _is_constexpr(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and ast.unparse(value.func) in ("tl.constexpr", "triton.language.constexpr")


@pytest.mark.parametrize("path", KERNELS, ids=lambda p: p.name)
def test_jit_functions_read_only_constexpr_globals(path):
    tree = ast.parse(path.read_text())
    plain = set()  # module globals that are not tl.constexpr
    for node in tree.body:
        if isinstance(node, ast.Assign) and not _is_constexpr(node.value):
            plain |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and not _is_constexpr(node.value):
            plain.add(node.target.id)
    bad = []
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and _is_jit(fn):
            local = {a.arg for a in fn.args.args} | {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                                                     and isinstance(n.ctx, ast.Store)}  # fmt: skip
            bad += [f"{fn.name} reads {n.id}" for n in ast.walk(fn)
                    if isinstance(n, ast.Name) and n.id in plain and n.id not in local]  # fmt: skip
    assert not bad, f"{path.name}: jit code reads non-constexpr globals: {sorted(set(bad))}"
