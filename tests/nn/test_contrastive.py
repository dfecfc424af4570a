"""The contrastive loss modules in one process: gather_with_grad is the identity, NT-Xent and SigLIP
equal their ops, bad arguments are refused naming them (tests/test_contrastive_distributed.py covers
two ranks)."""

import pytest
import torch

from fastpretrain.nn import ClipLoss, NTXentLoss, SigLipLoss, gather_with_grad
from fastpretrain.ops import infonce_loss, siglip_loss, simclr_targets


def test_gather_is_the_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x


def test_modules_are_their_ops():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    targets, exclude = simclr_targets(6)
    z = torch.cat([a, b])
    torch.testing.assert_close(NTXentLoss(0.25)(a, b), infonce_loss(z, z, 4.0, targets=targets, exclude=exclude))
    clip = ClipLoss(temperature=0.05, max_scale=10.0)
    torch.testing.assert_close(clip.scale(), torch.tensor(10.0))  # capped
    torch.testing.assert_close(clip(a, b), infonce_loss(a, b, 10.0, symmetric=True))
    torch.testing.assert_close(SigLipLoss()(a, b), siglip_loss(a, b, 10.0, -10.0))
    assert not ClipLoss(learn_temperature=False).logit_scale.requires_grad


@pytest.mark.parametrize("make", [lambda: NTXentLoss(0.0), lambda: ClipLoss(temperature=-1.0)])
def test_temperature_must_be_positive(make):
    with pytest.raises(ValueError, match="temperature: expected a float > 0"):
        make()


def test_nt_xent_needs_matching_views():
    with pytest.raises(ValueError, match=r"z2: expected the shape of z1 \(4, 8\), got \(5, 8\)"):
        NTXentLoss()(torch.randn(4, 8), torch.randn(5, 8))
