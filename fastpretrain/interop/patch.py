"""Drop-in speed for models people already have: :func:`patch` swaps, in place, a Hugging Face or
timm model's attention for fastpretrain's fused op, its MLM / LM head and loss for the fused linear
cross-entropy, and MAE's masking for the fused masking ops; :func:`unpatch` puts the originals back.

Only forwards (instance attributes) and the configs' ``_attn_implementation`` change: parameters,
buffers, module names and the state dict stay as they were, so a patched model saves the original
checkpoint format, and ``torch.compile``, gradient checkpointing and HF ``Trainer`` see the same
modules. One family per module (``patch_bert``, ``patch_vit``, ``patch_vit_mae``, ``patch_gpt2``,
``patch_timm_vit``); this one holds the report, the undo records and the dispatch on the model's class.
"""

from __future__ import annotations

import importlib
import inspect
import types
from dataclasses import dataclass, field

from torch import nn

_STATE = "_fastpretrain_patch"


class _MISSING:
    """Sentinel: the instance had no attribute of its own (a class, so deepcopy keeps it as is)."""


# model class module prefix -> (family module, patch function)
_FAMILIES = {
    "transformers.models.bert.": ("fastpretrain.interop.patch_bert", "patch_bert"),
    "transformers.models.vit.": ("fastpretrain.interop.patch_vit", "patch_vit"),
    "transformers.models.vit_mae.": ("fastpretrain.interop.patch_vit_mae", "patch_vit_mae"),
    "transformers.models.gpt2.": ("fastpretrain.interop.patch_gpt2", "patch_gpt2"),
    "timm.models.vision_transformer.": ("fastpretrain.interop.patch_timm_vit", "patch_timm_vit"),
}


class BoundForward:
    """``forward(module, *args, **kwargs)`` as a module's own forward. Unlike a bound method it
    pickles (``torch.save(model)``: the function by its module-level name) and deep-copies with its
    module, and it shows the signature of the class's forward (HF ``Trainer`` keeps only the
    dataset columns that signature names)."""

    def __init__(self, forward, module: nn.Module) -> None:
        self.forward, self.module = forward, module

    def __call__(self, *args, **kwargs):
        return self.forward(self.module, *args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(types.MethodType(type(self.module).forward, self.module))


@dataclass
class PatchReport:
    """What :func:`patch` swapped (``patched``: (where, what runs now)) and what it left as it was
    (``left``: (where, why)). ``str(report)`` prints both, one line each."""

    model: str
    patched: list[tuple[str, str]] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"fastpretrain.patch({self.model}): {len(self.patched)} patched, {len(self.left)} left"]
        lines += [f"  patched {where}: {what}" for where, what in self.patched]
        lines += [f"  left    {where}: {why}" for where, why in self.left]
        return "\n".join(lines)


class Patcher:
    """Records every change made to one model so :func:`unpatch` can undo it, and fills its report."""

    def __init__(self, model: nn.Module, family: str) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if getattr(model, _STATE, None) is not None:
            raise RuntimeError(f"model: this {type(model).__name__} is already patched; "
                               f"call fastpretrain.unpatch(model) before patching it again")  # fmt: skip
        self.model = model
        self.report = PatchReport(f"{family}, {type(model).__name__}")
        self.undo: list[tuple[object, str, object]] = []
        self.refused = 0

    def set(self, obj: object, name: str, value: object) -> None:
        """``setattr(obj, name, value)``, remembering the instance's own previous value (or its absence)."""
        if isinstance(getattr(type(obj), name, None), property):
            previous = getattr(obj, name)
        else:
            previous = obj.__dict__.get(name, _MISSING)
        self.undo.append((obj, name, previous))
        setattr(obj, name, value)

    def bind(self, module: nn.Module, forward) -> None:
        """Make ``forward(module, ...)`` the module's forward (the class's own stays reachable as
        ``type(module).forward``)."""
        self.set(module, "forward", BoundForward(forward, module))

    def hook(self, module: nn.Module, pre_hook) -> None:
        """Register ``pre_hook(module, args, kwargs)`` as a forward pre-hook, removed by :func:`unpatch`."""
        self.undo.append((module.register_forward_pre_hook(pre_hook, with_kwargs=True), "", None))

    def done(self, what: str, where: str) -> None:
        self.report.patched.append((where, what))

    def leave(self, where: str, why: str, *, refused: bool = True) -> None:
        """Report a part left as it was: ``refused`` (the ops cannot take it: ``strict`` raises) or
        not (the model has nothing there to fuse)."""
        self.report.left.append((where, why))
        self.refused += refused

    def finish(self, strict: bool) -> PatchReport:
        """Attach the undo records to the model, or undo everything and raise if ``strict`` and
        something was refused (or if nothing at all could be patched)."""
        setattr(self.model, _STATE, self)
        if (strict and self.refused) or not self.report.patched:
            unpatch(self.model)
            reasons = "; ".join(f"{where}: {why}" for where, why in self.report.left) or "nothing to patch"
            raise ValueError(f"model: cannot patch {self.report.model} ({reasons})")
        return self.report


def unpatch(model: nn.Module) -> nn.Module:
    """Undo :func:`patch` on ``model`` (in place; returns it): the original forwards and attention
    implementations come back. A model that was never patched is returned unchanged."""
    patcher = model.__dict__.pop(_STATE, None)
    if patcher is None:
        return model
    for obj, name, previous in reversed(patcher.undo):
        if not name:
            obj.remove()  # a hook handle
        elif previous is _MISSING:
            delattr(obj, name)
        else:
            setattr(obj, name, previous)
    return model


def patch_report(model: nn.Module) -> PatchReport | None:
    """The report of the patch ``model`` is under, or None if it is not patched."""
    patcher = getattr(model, _STATE, None)
    return None if patcher is None else patcher.report


def check_wrapped(model) -> None:
    """Refuse compiled or DDP / FSDP-wrapped models: the inner model is the one to patch."""
    inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
    if isinstance(model, nn.Module) and isinstance(inner, nn.Module):
        raise TypeError(f"model: got a wrapped {type(model).__name__}; patch the model itself before "
                        f"torch.compile / DDP / FSDP wrap it (e.g. patch(model); model = torch.compile(model))")  # fmt: skip


def patch(model: nn.Module, **options) -> PatchReport:
    """Patch a Hugging Face BERT, ViT, ViTMAE or GPT-2 model, or a timm VisionTransformer, in place
    with fastpretrain's fused ops; returns the :class:`PatchReport`. ``options`` go to the family's
    function (``attention``, ``loss``, ``masking``, ``strict``; see e.g.
    :func:`fastpretrain.interop.patch_bert.patch_bert`). Undo with :func:`unpatch`."""
    check_wrapped(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    where = type(model).__module__ + "."
    for prefix, (module_name, function) in _FAMILIES.items():
        if where.startswith(prefix):
            return getattr(importlib.import_module(module_name), function)(model, **options)
    known = "Hugging Face Bert*, ViT*, ViTMAE*, GPT2* models and timm's VisionTransformer"
    raise TypeError(f"model: {type(model).__module__}.{type(model).__name__} is not a family fastpretrain.patch "
                    f"knows ({known})")  # fmt: skip
