"""Bad command lines, counted (issues 19 and 20): every case the issues list, every generated
(option, bad value) pair of ``tests/fuzz_cases.py`` (not a sample, as the test draws) and the bad
architecture strings for ``nasforge cost``; each must be a one-line error naming the value, exit
code 2, no traceback, nothing written.

    python benchmarks/fuzz_cli.py
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz_cases import BAD_ARCHS, GENERATED_OPTIONS, LISTED, Sandbox  # noqa: E402

#: options for which an empty value means "not given" (the default is used): not a bad value
EMPTY_IS_DEFAULT = ("--strategy", "--metric", "--report", "--dataset", "--workdir")


def main() -> int:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-cli-") as root:
        box = Sandbox(Path(root))
        groups: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        bad: list[str] = []

        def record(group: str, argv: tuple[str, ...], expect: object) -> None:
            out = box.run(argv, expect)
            kind = out.kind if not (out.kind == "clean" and out.wrote) else "wrote files"
            groups[group][kind] += 1
            if kind != "clean":
                bad.append(f"{group}: {' '.join(box.fill(a) for a in argv)[:160]} -> {kind}, exit {out.code}: "
                           f"{out.err.strip()[-300:]}")

        for case in LISTED:
            group = {"19 traceback": "issue 19: tracebacks seen", "19 silent": "issue 19: silently accepted",
                     "more": "more of the same kind"}.get(case.source, "issue 20")
            record(group, case.argv, case.expect)
        for prefix, flag, values in GENERATED_OPTIONS:
            for value in values:
                if value == "" and flag in EMPTY_IS_DEFAULT:
                    continue
                expect = (flag, value[:40].split("\n")[0]) if value != "" else (
                    flag, f"{flag.lstrip('-').replace('-', '_')} ''")
                record(f"generated: {prefix[0]}", (*prefix, flag, value), expect)
        for text in BAD_ARCHS:
            out = box.run(("cost", text, "--C", "2", "--N", "1", "--input-size", "8"))
            one = len(out.err.strip().splitlines()) == 1
            kind = ("clean" if out.code == 2 and one and "Traceback" not in out.err and not out.wrote
                    else out.kind)
            groups["generated: cost (architecture strings)"][kind] += 1
            if kind != "clean":
                bad.append(f"cost {text[:60]!r} -> {kind}: {out.err.strip()[-300:]}")
        seconds = time.perf_counter() - t0
    kinds = ["clean", "traceback", "accepted", "wrote files", "other"]
    print(f"{'group':44s} " + " ".join(f"{k:>11s}" for k in ["tried", *kinds]))
    total: collections.Counter = collections.Counter()
    for group, counts in groups.items():
        total.update(counts)
        print(f"{group:44s} {sum(counts.values()):11d} " + " ".join(f"{counts[k]:11d}" for k in kinds))
    print(f"{'all':44s} {sum(total.values()):11d} " + " ".join(f"{total[k]:11d}" for k in kinds))
    print(f"({seconds:.0f} s; clean: exit 2, one line naming the value, no traceback, nothing written; "
          f"load average {os.getloadavg()[0]:.2f})")
    for line in bad:
        print("NOT CLEAN:", line)
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
