"""``fastpretrain electra train|eval``: ELECTRA (generator MLM + discriminator replaced-token
detection) on BERT's command: the same corpus, tokenizer and example flags and run files; the
discriminator is exported as a Hugging Face BERT encoder (out/discriminator) for fine-tuning."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

from fastpretrain.cli.bert import BertCommand, _tokenizer_of
from fastpretrain.cli.model_command import ModelCommand, run_weights
from fastpretrain.models import ElectraForPreTraining


def _report(model, dataset, args: argparse.Namespace, device) -> dict:
    """Held-out generator / discriminator metrics and the [CLS] probe of the discriminator, printed."""
    from fastpretrain.eval import evaluate_electra

    result = evaluate_electra(model, dataset, batch_size=args.eval_batch_size, max_examples=args.eval_examples,
                              device=device)  # fmt: skip
    print(f"held-out     {result['examples']:,} examples, {result['tokens']:,} tokens, {result['mlm_tokens']:,} masked")
    print(f"generator    mlm loss {result['mlm_loss']:.4f}  accuracy {result['mlm_accuracy']:.2%}")
    print(f"discriminator rtd loss {result['rtd_loss']:.4f}  accuracy {result['rtd_accuracy']:.2%} "
          f"(all-original baseline {result['all_original_accuracy']:.2%})")  # fmt: skip
    print(f"probe        [CLS] logistic regression on held-out NSP: accuracy {result['probe_accuracy']:.2%}")
    return result


class ElectraCommand(BertCommand):
    name, model_class, default_model = "electra", ElectraForPreTraining, "electra_small"
    padded = False
    help = "pre-train and evaluate ELECTRA (generator MLM + discriminator replaced-token detection)"
    train_help = ("pre-train ELECTRA on a corpus (BERT's examples, no NSP); evaluate on held-out documents; export "
                  "the discriminator as a Hugging Face BERT encoder")  # fmt: skip
    eval_help = "held-out generator MLM, replaced-token detection and a [CLS] probe of a run or a checkpoint"
    checkpoint_help = ModelCommand.checkpoint_help
    # ELECTRA-small's recipe (Clark et al. 2020, table 6): AdamW (0.9, 0.999), lr 5e-4, decay 0.01, warm-up then linear decay
    recipe: ClassVar[dict] = {"out_dir": "runs/electra", "lr": 5e-4, "betas": (0.9, 0.999), "weight_decay": 0.01,
                              "schedule": "linear", "warmup_steps": 100, "steps": 10000, "batch_size": 32}  # fmt: skip
    model_help: ClassVar[dict] = {
        **{k: v for k, v in BertCommand.model_help.items() if k != "pre_norm"},
        "hidden_size": "discriminator (and shared embedding) width", "num_layers": "discriminator layers",
        "generator_size": "generator width as a fraction of the discriminator's (heads of 64, MLP 4 x width)",
        "generator_layers": "generator layers (default: num_layers)",
        "rtd_weight": "weight of the replaced-token detection loss (the paper's lambda)",
    }  # fmt: skip

    def summary(self, trainer, history: list[dict]) -> str:
        if not history:
            return f"{trainer.step} steps; "
        last = history[-1]
        return (f"{trainer.step} steps; last window: loss {last['loss']:.4f}, mlm {last['mlm_loss']:.4f}, "
                f"rtd {last['rtd_loss']:.4f} (accuracy {last['rtd_accuracy']:.2%}, all-original "
                f"{1 - last['replaced_fraction']:.2%}), {last['items_per_s']:,.0f} tokens/s; ")  # fmt: skip

    def report(self, model, dataset, args: argparse.Namespace, pad_id: int, device) -> dict:
        return _report(model, dataset, args, device)

    def export(self, model, out: Path, tokenizer) -> None:
        from fastpretrain.interop.hf import save_hf_bert

        export = save_hf_bert(model.discriminator_as_bert(), out / "discriminator", tokenizer)
        print(f"exported     {export}: the discriminator as a BERT encoder (transformers.BertModel.from_pretrained "
              f"loads it; its MLM / NSP heads are untrained)")  # fmt: skip

    def load(self, checkpoint: Path):
        """A run, its weights or a checkpoint, with the run's tokenizer."""
        model, run = ModelCommand.load(self, checkpoint)
        return model, {**run, "tokenizer": _tokenizer_of(run_weights(checkpoint))}


add_commands = ElectraCommand().add_commands
