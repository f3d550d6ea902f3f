"""The ``--help`` examples of every ``nasforge`` command, in one place.

:func:`add_examples` gives each sub-command's help an ``examples:`` section (a command that
writes its own keeps it). The tests parse every example line, so they stay valid commands.
"""

from __future__ import annotations

import argparse
from typing import Any

#: command (sub-commands joined by a space) -> example lines: ``nasforge ...  # what it does``
EXAMPLES: dict[str, list[str]] = {
    "": [
        "nasforge list strategies                        # what there is: spaces, strategies, proxies, benchmarks",
        "nasforge search --benchmark nb201:cifar10 --strategy re --budget 200",
        "nasforge show re-nb201-cifar10-seed0            # its best trials",
        "nasforge dashboard                              # every study in the browser: http://127.0.0.1:8080/",
        "nasforge search --help                          # each command's options, with examples",
    ],
    "search": [
        "nasforge search --benchmark nb201:cifar10 --strategy re --budget 200   # on a table, in seconds",
        "nasforge search --benchmark nbgraph:cora --strategy bo --kernel wl --budget 50",
        "nasforge search --dataset digits --strategy asha --budget 40 --epochs 10  # real training",
        "nasforge search --study re-nb201-cifar10-seed0 --budget 400   # resume a study with a larger budget",
        "nasforge search --benchmark nb201:cifar10+latency --constraint 'latency_ms[pixel3] <= 20'",
        "nasforge search --benchmark nb201:cifar10 --workers 4 --executor process --study par",
        "nasforge search --benchmark nb201:cifar10 --strategy bo --kernel hamming --warm-start synflow:1000 --budget 50",
    ],
    "show": [
        "nasforge show                                  # the studies in sqlite:///nasforge.db",
        "nasforge show re-nb201-cifar10-seed0 --top 5   # a study's best trials",
        "nasforge show re-nb201-cifar10-seed0 --csv trials.csv",
    ],
    "bench": [
        "nasforge bench --benchmark nb201:cifar10 --strategies random,re,ls --seeds 10 --plot anytime.png",
        "nasforge bench --strategies re,random --param re.population_size=20 --at 50,100,200",
        "nasforge bench --benchmark nb201:cifar10 --strategies asha,random --workers 8   # simulated clock",
    ],
    "export": [
        "nasforge export asha-digits-seed0                    # WORKDIR/STUDY/best.onnx",
        "nasforge export asha-digits-seed0 --format torch --out best.pth",
    ],
    "proxies": [
        "nasforge proxies --space nb201 --n 200 --benchmark nb201:cifar10   # rank correlation of each proxy",
        "nasforge proxies --proxies naswot,synflow --n 50 --out scores.csv",
    ],
    "mosearch": [
        "nasforge mosearch --objective valid_acc:max --objective latency_ms[pixel3]:min --budget 300",
        "nasforge mosearch --strategy mo-re --budget 200 --study mo1 --plot front.png",
    ],
    "front": [
        "nasforge front mo1 --plot front.png   # the front of the study above",
    ],
    "cost": [
        "nasforge cost '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|'",
        "nasforge cost '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|' "
        "--latency torch --json",
    ],
    "audit": [
        "nasforge audit '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|'",
        "nasforge audit '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|' "
        "--train --epochs 5   # and the attack success rate after a short poisoned training",
        "nasforge audit '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|' "
        "--train clean --epochs 5   # EVAS: clean training, then a trigger fitted against the frozen network",
    ],
    "mdl": [
        "nasforge mdl --tasks digits,mnist1d --steps 300              # one ViT supernet for both, searched jointly",
        "nasforge mdl --tasks cifar10,digits --add mnist1d --budget 30000   # then a third task, no forgetting",
    ],
    "predictors": [
        "nasforge predictors --predictors gp,xgb,rf --seeds 3          # Kendall tau at 10..500 training cells",
        "nasforge predictors --predictors gp,gin,lce --train-sizes 20,100 --param gp.kernel=wl --out tau.jsonl",
        "nasforge predictors --list                                   # every predictor by name",
    ],
    "supernet": [
        "nasforge supernet train --run runs/spos --space nb201 --steps 2000",
        "nasforge supernet rank --run runs/spos --benchmark nb201:cifar10",
        "nasforge supernet search --run runs/spos --strategy re --budget 100",
    ],
    "supernet train": [
        "nasforge supernet train --run runs/spos --space nb201 --steps 2000   # re-run to resume",
        "nasforge supernet train --run runs/fairnas --sampler fairnas --split lid --levels 1",
    ],
    "supernet rank": [
        "nasforge supernet rank --run runs/spos --n 200 --benchmark nb201:cifar10",
        "nasforge supernet rank --run runs/spos --n 200 --score acc+flatness --benchmark nb201:cifar10"
        "   # also GeNAS flatness",
    ],
    "supernet search": [
        "nasforge supernet search --run runs/spos --strategy re --budget 100 --benchmark nb201:cifar10",
        "nasforge supernet search --run runs/spos --score flatness --budget 100   # by GeNAS flatness",
    ],
    "oneshot": [
        "nasforge oneshot search --method darts --space nb201 --run runs/darts-s0",
    ],
    "oneshot search": [
        "nasforge oneshot search --method darts --space nb201 --dataset cifar10 --n-train 2000 --image-size 16 "
        "--epochs 10 --run runs/darts-s0 --lookup   # re-run to resume",
        "nasforge oneshot search --method lambda-darts --param lam=0.25 --run runs/lambda-s0",
        "nasforge oneshot search --method gdas --space darts --C 4 --layers 5 --run runs/gdas-darts",
    ],
    "oneshot retrain": [
        "nasforge oneshot retrain runs/gdas-darts --dataset cifar10 --image-size 16 --epochs 3   # the found cell",
        "nasforge oneshot retrain darts_v2 --dataset cifar10 --image-size 16   # DARTS-V2's published cell",
        "nasforge oneshot retrain \"Genotype(normal=[...], reduce=[...])\" --C 16 --layers 8",
    ],
}


def section(lines: list[str]) -> str:
    """The ``examples:`` section of a help text."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command its examples (kept line by line in the help)."""
    for path, sub in [((), parser), *_commands(parser)]:
        lines = EXAMPLES.get(" ".join(path))
        if lines and not sub.epilog:
            sub.epilog = section(lines)
            if sub.formatter_class is argparse.HelpFormatter:
                sub.formatter_class = argparse.RawDescriptionHelpFormatter


def example_commands(parser: argparse.ArgumentParser) -> dict[str, list[list[str]]]:
    """Each command's help examples as argument lists (``nasforge`` and any comment removed)."""
    import shlex

    out: dict[str, list[list[str]]] = {}
    for path, sub in [((), parser), *_commands(parser)]:
        text = sub.epilog or ""
        if "examples:" not in text:
            continue
        lines = text.split("examples:", 1)[1].strip().splitlines()
        out[" ".join(path)] = [shlex.split(line, comments=True)[1:] for line in lines
                               if line.strip().startswith("nasforge ")]
    return out


__all__ = ["EXAMPLES", "add_examples", "example_commands", "section"]
