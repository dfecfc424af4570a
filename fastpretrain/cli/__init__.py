"""The ``fastpretrain`` command line, one module per command: corpus, word2vec, mae, simmim, dvae, beit, simclr,
inpaint, colorize, clip, cpc, bert, electra, gpt, nnlm, elmo (the model commands on one skeleton,
:mod:`fastpretrain.cli.model_command`)."""

from __future__ import annotations

import argparse
import sys

from fastpretrain.cli import (
    beit,
    bert,
    clip,
    colorize,
    corpus,
    cpc,
    dvae,
    electra,
    elmo,
    gpt,
    igpt,
    inpaint,
    mae,
    masked,
    nnlm,
    simclr,
    simmim,
    word2vec,
)
from fastpretrain.cli.errors import BAD_INPUT, INTERRUPTED, clear_errors, message
from fastpretrain.cli.flags import FlagError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpretrain", description="fastpretrain <command> [options]; "
                                     "--help on each")  # fmt: skip
    sub = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    for command in (word2vec, mae, simmim, dvae, beit, simclr, inpaint, colorize, clip, cpc, bert, electra, gpt, igpt,
                    nnlm, elmo, masked, corpus):
        command.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command: 0 on success; a bad flag, a bad input file or a full disk is one line and
    exit status 2, Ctrl-C is 130 (the Trainer's SIGTERM 143)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except FlagError as e:
        args.parser.error(str(e))  # usage and "argument --flag: ...", as argparse reports its own
    except KeyboardInterrupt:
        print("fastpretrain: interrupted", file=sys.stderr)
        return INTERRUPTED
    except clear_errors() as e:
        print(f"fastpretrain: error: {message(e)}", file=sys.stderr)
        return BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
