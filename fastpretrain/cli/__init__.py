"""The ``fastpretrain`` command line, one module per command: corpus, word2vec, mae, bert."""

from __future__ import annotations

import argparse
import sys

from fastpretrain.cli import bert, corpus, mae, word2vec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastpretrain", description="fastpretrain <command> [options]; --help on each")
    sub = parser.add_subparsers(title="commands", metavar="<command>", required=True)
    for command in (word2vec, mae, corpus, bert):
        command.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, ImportError, FloatingPointError) as e:  # OSError: missing files, a full disk
        print(f"fastpretrain: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
