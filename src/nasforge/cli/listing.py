"""``nasforge list spaces|strategies|proxies|benchmarks``: what the library offers, one line each."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from nasforge.errors import unknown

KINDS = ("spaces", "strategies", "proxies", "benchmarks")

EXAMPLES = """examples:
  nasforge list spaces          # search spaces: nasforge search --dataset digits --space NAME
  nasforge list strategies      # nasforge search --strategy NAME
  nasforge list proxies         # nasforge proxies --proxies NAME,NAME
  nasforge list benchmarks      # nasforge search --benchmark FAMILY:DATASET"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list the search spaces, strategies, proxies or benchmarks, with a line on each",
                       description="List what nasforge offers, with a one-line description of each.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, metavar="{" + ",".join(KINDS) + "}", help="what to list")
    p.set_defaults(func=run)


def first_sentence(doc: str | None) -> str:
    """The first paragraph of a docstring on one line, without reST markup, cut at its first
    sentence when that is long."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "")
    if len(text) > 110:
        cut = text.find(". ", 40)
        if 0 < cut < 110:
            text = text[: cut + 1]
        else:
            text = text[:107].rstrip() + "..."
    return text


def spaces() -> list[tuple[str, ...]]:
    from nasforge.spaces import SPACES

    rows = []
    for name, target in SPACES.items():
        module, _, cls = target.partition(":")
        rows.append((name, first_sentence(getattr(importlib.import_module(module), cls).__doc__)))
    return rows


def strategies() -> list[tuple[str, ...]]:
    from nasforge.strategies import ALIASES, MULTI_FIDELITY, MULTI_OBJECTIVE, STRATEGIES

    rows = []
    for name, cls in STRATEGIES.items():
        kind = "multi-objective" if name in MULTI_OBJECTIVE else "multi-fidelity" if name in MULTI_FIDELITY \
            else "single-objective"
        aliases = sorted(a for a, target in ALIASES.items() if target == name)
        rows.append((name, kind, ", ".join(aliases) or "-", first_sentence(cls.__doc__)))
    return rows


def proxies() -> list[tuple[str, ...]]:
    from nasforge.estimation.proxies.base import PROXIES

    return [(p.name, "higher" if p.higher_is_better else "lower", p.group, p.description) for p in PROXIES.values()]


def benchmarks() -> list[tuple[str, ...]]:
    from nasforge.estimation import registry

    helps = getattr(registry, "_HELP", {})
    rows = []
    for family in registry.benchmark_families():
        loader = getattr(registry, "_LOADERS", {}).get(family)
        doc = first_sentence(getattr(loader, "__doc__", None)) if loader is not None else ""
        rows.append((f"{family}:<dataset>", helps.get(family) or doc or "-"))
    rows.append(("<spec>+hw", "any NB201 benchmark with hardware metrics: +latency, +pi5, +cost, or +hw for all"))
    return rows


HEADERS = {"spaces": ("space", "description"), "strategies": ("strategy", "kind", "aliases", "description"),
           "proxies": ("proxy", "better", "pass", "what it computes"), "benchmarks": ("benchmark", "description")}
NOTES = {
    "spaces": "use with: nasforge search --dataset DATA --space NAME (a benchmark brings its own space)",
    "strategies": "use with: nasforge search --strategy NAME [--param KEY=VALUE]; nasforge bench --strategies A,B",
    "proxies": "use with: nasforge proxies --proxies NAME,NAME (or all, cheap)",
    "benchmarks": "use with: nasforge search --benchmark SPEC (tables are read from --data-dir, $NASFORGE_DATA "
                  "or ../shared/data; NAS-Bench-Graph ships with its package)",
}


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = [list(headers)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers) - 1)]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join([c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]).rstrip())
        if k == 0:
            lines.append("  ".join(["-" * w for w in widths] + ["-" * len(headers[-1])]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    fn = {"spaces": spaces, "strategies": strategies, "proxies": proxies, "benchmarks": benchmarks}.get(args.kind)
    if fn is None:
        raise unknown("list", args.kind, KINDS)
    print(table(HEADERS[args.kind], fn()))
    print(f"\n{NOTES[args.kind]}")
    return 0
