"""`robust-glo losses`: list the loss registry."""

from __future__ import annotations

import argparse

from robust_glo.losses import registry


def register(sub) -> None:
    p = sub.add_parser("losses", help="list the loss specs that --loss accepts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [(e.usage, e.summary) for e in registry().values()]
    rows += [
        ("package.module:function", "a user loss: function(logits, targets) -> scalar tensor"),
        ("path/to/file.py:function", "the same, loaded from a file"),
    ]
    width = max(len(u) for u, _ in rows)
    for usage, summary in rows:
        print(f"{usage.ljust(width)}  {summary}")
    return 0
