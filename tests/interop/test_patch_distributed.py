"""A patched HF BERT under ``torchrun --nproc_per_node 2`` on gloo (CPU), wrapped in DDP or
sharded with FSDP2 after patching: one training step on each rank's half of the batch gives the
loss and gradients of one process on the whole batch (every row has the same number of labels, so
the mean of the ranks' mean losses is the whole batch's). The ops take their reference path here:
this checks the plumbing (wrapping, sharding, tied weights), the other tests the kernels.

This file is also the torchrun worker: ``python -m torch.distributed.run ... test_patch_distributed.py OUT PARALLEL``.
"""

import os
import subprocess
import sys

import pytest
import torch

import fastpretrain

transformers = pytest.importorskip("transformers")

VOCAB, ROWS, SEQ = 61, 4, 10


def model():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=37, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     max_position_embeddings=16)  # fmt: skip
    m = transformers.BertForMaskedLM(config)
    fastpretrain.patch(m)
    return m.train()


def batch() -> dict:
    """Padded rows with three labels each."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (ROWS, SEQ), generator=g)
    lengths = torch.tensor([10, 6, 8, 4])
    mask = (torch.arange(SEQ)[None] < lengths[:, None]).long()
    labels = torch.full_like(ids, -100)
    labels[:, :3] = ids[:, :3]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def grads(m) -> dict:
    out = {}
    for name, p in m.named_parameters():
        g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
        out[name.removeprefix("module.")] = g.detach().clone()
    return out


def worker(out: str, parallel: str) -> None:
    import torch.distributed as dist

    from fastpretrain.train.distributed import cleanup

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    m = model()
    if parallel == "ddp":
        m = torch.nn.parallel.DistributedDataParallel(m)
    else:
        from torch.distributed.fsdp import fully_shard

        for layer in m.bert.encoder.layer:
            fully_shard(layer)
        fully_shard(m)
    half = {k: v.chunk(world)[rank] for k, v in batch().items()}
    loss = m(**half).loss
    loss.backward()
    loss = loss.detach()
    dist.all_reduce(loss)
    result = {"loss": loss / world, **grads(m)}
    if rank == 0:
        torch.save(result, out)
    del m, loss
    cleanup()  # collects the wrappers' cycles before the group goes (else SIGABRT at exit, now and then)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_ranks_equal_one_process(tmp_path, parallel):
    pytest.importorskip("torch.distributed.fsdp", reason="FSDP2 needs torch >= 2.6")
    out = tmp_path / "rank0.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           str(out), parallel]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    got = torch.load(out)
    m = model()
    loss = m(**batch()).loss
    loss.backward()
    want = {"loss": loss.detach(), **grads(m)}
    assert got.keys() == want.keys()
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-6, msg=name)


if __name__ == "__main__":
    worker(*sys.argv[1:3])
