"""Command line: `python -m zoo list [PATTERN] [--markdown]`.

    $ python -m zoo list              # name, trainable parameters, description, reference of every model
    $ python -m zoo list 'bert_*'     # only the names matching a shell-style pattern
    $ python -m zoo list --markdown   # README.md's model table, one row per family
"""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zoo", description="zoo's registered models.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="print the registered models with their parameter counts")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern (default: all)")
    listing.add_argument("--markdown", action="store_true", help="README.md's model table (all families)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from zoo import registry

    if args.markdown:
        print(registry.markdown_table())
        return 0
    table = registry.text_table(args.pattern)
    if table is None:
        print(f"error: no model matches {args.pattern!r}; `python -m zoo list` shows them all", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
