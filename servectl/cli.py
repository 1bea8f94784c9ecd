"""``servectl``: one command line for the platform; each subcommand lives in its own module.

Heavy imports (TensorFlow) happen inside the subcommands, after their arguments are checked, so
``--help`` and argument errors answer at once. Errors the user can fix print one line and exit
with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys

from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.servectl.commands import (
    export_cmd,
    inspect_cmd,
    loadtest_cmd,
    predict_cmd,
    rollout_cmd,
    serve_cmd,
    train_cmd,
    tune_cmd,
    up_cmd,
)
from tf_serving_platform.servectl.errors import UsageError

COMMANDS = (train_cmd, export_cmd, inspect_cmd, serve_cmd, predict_cmd, up_cmd, loadtest_cmd,
            rollout_cmd, tune_cmd)
EXIT_USAGE = 2
DESCRIPTION = ("Export, serve, query, roll and load-test TensorFlow models with TensorFlow "
               "Serving's contract. `servectl COMMAND --help` shows each command with examples.")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse's default adds the usage)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="servectl", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (UsageError, ExportError) as e:
        print(f"servectl {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"servectl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
