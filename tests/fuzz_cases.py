"""Bad command lines, run in-process through ``nasforge.cli.main.main``: every one must end with
exit code 2, one line on stderr naming the bad value, no traceback, and nothing written.

Shared by ``tests/test_fuzz.py`` (every listed case and a few hundred generated ones) and
``benchmarks/fuzz_cli.py`` (more generated cases, and the counts in docs/benchmarks.md).
Placeholders: ``{db}`` the SQLite URL of a database with a table study ``tab`` (NAS-Bench-Graph
Cora, shipped with its package) and a training study ``tr`` (digits); ``{ro}`` the same file
opened read-only; ``{bad}`` a copy whose pages after the first are overwritten; ``{missing}`` a
folder that does not exist; ``{tmp}`` the scratch folder; ``{workdir}`` the training study's
work folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sqlite3
import traceback
from dataclasses import dataclass
from pathlib import Path

from nasforge.cli.main import main

TABLE = "nbgraph:cora"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    expect: str  # in the one-line message: the bad value (or the option that holds it)
    source: str = ""  # where the case comes from (an issue and its item)


def _c(expect: str, source: str, *argv: str) -> Case:
    return Case(tuple(argv), expect, source)


#: the cases the issues list (issue 19: bad arguments; issue 20: data integrity), and a few more
LISTED: list[Case] = [
    # issue 19, tracebacks seen
    _c("-1", "19 traceback", "search", "--benchmark", "nb201:cifar10", "--seed", "-1", "--storage", "{db}"),
    _c("x.csv", "19 traceback", "show", "tab", "--csv", "{missing}/dir/x.csv", "--storage", "{db}"),
    _c("'0'", "19 traceback", "bench", "--seeds", "0"),
    _c("'-1'", "19 traceback", "bench", "--seeds", "-1"),
    _c("x.png", "19 traceback", "bench", "--plot", "{missing}/dir/x.png", "--seeds", "1", "--at", "5"),
    _c("--strategies ''", "19 traceback", "bench", "--strategies", ""),
    _c("',,,'", "19 traceback", "bench", "--strategies", ",,,"),
    _c("/proc/forbidden", "19 traceback", "supernet", "train", "--run", "/proc/forbidden"),
    # issue 19, silently accepted
    _c("C 0", "19 silent", "search", "--dataset", "digits", "--C", "0", "--storage", "{db}"),
    _c("N -1", "19 silent", "search", "--dataset", "digits", "--N", "-1", "--storage", "{db}"),
    _c("-1.0", "19 silent", "search", "--dataset", "digits", "--lr", "-1", "--storage", "{db}"),
    _c("weight_decay -1.0", "19 silent", "search", "--dataset", "digits", "--weight-decay", "-1", "--storage", "{db}"),
    _c("nbgraph", "19 silent", "search", "--dataset", "digits", "--space", "nbgraph", "--storage", "{db}"),
    _c("--max-cost -1", "19 silent", "search", "--benchmark", "nb201:cifar10", "--max-cost", "-1", "--storage", "{db}"),
    _c("'nan'", "19 silent", "search", "--benchmark", "nb201:cifar10", "--max-cost", "nan", "--storage",
       "{db}"),
    _c("99999999999999999999", "19 silent", "search", "--benchmark", "nb201:cifar10", "--seed",
       "99999999999999999999", "--storage", "{db}"),
    _c("'bogus'", "19 silent", "search", "--benchmark", TABLE, "--report", "bogus", "--storage", "{db}"),
    _c("/proc/forbidden", "19 silent", "search", "--benchmark", TABLE, "--workdir", "/proc/forbidden", "--storage",
       "{db}"),
    _c("'-1'", "19 silent", "show", "tab", "--top", "-1", "--storage", "{db}"),
    _c("'bogus'", "19 silent", "show", "tab", "--report", "bogus", "--storage", "{db}"),
    _c("does_not_exist.db", "19 silent", "show", "--storage", "sqlite:///{tmp}/does_not_exist.db"),
    _c("100", "19 silent", "bench", "--budget", "3", "--at", "100"),
    _c("x.onnx", "19 silent", "export", "tr", "--out", "{missing}/x.onnx", "--storage", "{db}", "--workdir",
       "{workdir}"),
    _c("--workdir", "19 silent", "export", "tr", "--workdir", "{missing}", "--storage", "{db}"),
    _c("x.csv", "19 silent", "proxies", "--out", "{missing}/x.csv", "--n", "2"),
    _c("x.png", "19 silent", "front", "tab", "--plot", "{missing}/x.png", "--storage", "{db}"),
    _c("one objective", "19 silent", "front", "tab", "--storage", "{db}"),
    _c("--image-size 0", "19 silent", "supernet", "train", "--run", "{tmp}/run", "--image-size", "0"),
    # issue 20
    _c("'../../x'", "20.2", "search", "--dataset", "digits", "--study", "../../x", "--storage", "{db}",
       "--workdir", "{tmp}/runs"),
    _c("300 characters", "20.2", "search", "--benchmark", TABLE, "--study", "x" * 300, "--storage", "{db}"),
    _c("control character", "20.2", "search", "--benchmark", TABLE, "--study", "a\tb", "--storage", "{db}"),
    _c("/proc/forbidden", "20.3", "search", "--dataset", "digits", "--workdir", "/proc/forbidden", "--storage",
       "{db}"),
    _c("read-only", "20.4", "search", "--study", "tab", "--budget", "50", "--storage", "{ro}"),
    _c("read-only", "20.4", "search", "--benchmark", TABLE, "--study", "new", "--storage", "{ro}"),
    _c("malformed", "20.4", "show", "tab", "--storage", "{bad}"),
    _c("malformed", "20.4", "search", "--study", "tab", "--budget", "50", "--storage", "{bad}"),
    _c("new.db", "20.4", "show", "--storage", "sqlite:///{tmp}/new.db"),
    _c("'tr-typo'", "20.4", "search", "--study", "tr-typo", "--storage", "{db}"),
    # more of the same kind
    _c("--budget", "more", "search", "--benchmark", TABLE, "--budget", "0", "--storage", "{db}"),
    _c("epochs 0", "more", "search", "--dataset", "digits", "--epochs", "0", "--storage", "{db}"),
    _c("label_smoothing 1.0", "more", "search", "--dataset", "digits", "--label-smoothing", "1", "--storage", "{db}"),
    _c("batch_size 0", "more", "search", "--dataset", "digits", "--batch-size", "0", "--storage", "{db}"),
    _c("C", "more", "search", "--benchmark", TABLE, "--C", "4", "--storage", "{db}"),
    _c("fidelity", "more", "search", "--benchmark", TABLE, "--fidelity", "inf", "--storage", "{db}"),
    _c("n_train 5", "more", "search", "--dataset", "digits", "--n-train", "5", "--storage", "{db}"),
    _c("'zz'", "more", "bench", "--param", "zz.x=1", "--strategies", "random"),
    _c("-5", "more", "bench", "--seed", "-5"),
    _c("--threads", "more", "proxies", "--threads", "0"),
    _c("--top", "more", "show", "tab", "--top", "0", "--storage", "{db}"),
    _c("--power-watts", "more", "front", "tab", "--power-watts", "nan", "--storage", "{db}"),
    _c("is a folder", "more", "show", "tab", "--csv", "{tmp}", "--storage", "{db}"),
    # issue 18: the equivariance and energy commands
    _c("'bogus'", "18 cli", "equivariance", "search", "--method", "bogus"),
    _c("'D3'", "18 cli", "equivariance", "search", "--method", "re", "--groups", "D4,D3"),
    _c("planes 12", "18 cli", "equivariance", "search", "--method", "re", "--groups", "D4,C1", "--planes", "12"),
    _c("no largest member", "18 cli", "equivariance", "search", "--method", "equinas-e", "--groups", "C4,D1"),
    _c("--max-degrees", "18 cli", "equivariance", "search", "--method", "re", "--max-degrees", "270"),
    _c("--study", "18 cli", "equivariance", "search", "--method", "equinas-d", "--study", "x"),
    _c("x.json", "18 cli", "equivariance", "search", "--method", "re", "--out", "{missing}/x.json"),
    _c("'rotated-mnist'", "18 cli", "equivariance", "search", "--method", "re", "--dataset", "rotated-mnist"),
    _c("'bogus'", "18 cli", "energy", "search", "--strategy", "rs", "--hp", "bogus=1,2"),
    _c("'sgdd'", "18 cli", "energy", "search", "--strategy", "rs", "--hp", "optimizer=sgd,sgdd"),
    _c("epochs value '0'", "18 cli", "energy", "search", "--strategy", "hb", "--hp", "epochs=0,3"),
    _c("'x'", "18 cli", "energy", "search", "--strategy", "rs", "--hp", "x"),
    _c("--energy-weight", "18 cli", "energy", "search", "--strategy", "re", "--energy-weight", "0.5"),
    _c("--energy-budget", "18 cli", "energy", "search", "--strategy", "re", "--energy-budget", "0"),
    _c("'xx'", "18 cli", "energy", "search", "--strategy", "xx"),
    _c("n_train 5", "18 cli", "energy", "search", "--strategy", "rs", "--n-train", "5"),
    _c("'rapl2'", "18 cli", "energy", "search", "--strategy", "rs", "--power", "rapl2"),
    # issue 17: zero-cost warm starts of a search
    _c("'synflow'", "17 cli", "search", "--benchmark", "nb201:cifar10", "--strategy", "bo", "--warm-start", "synflow",
       "--storage", "{db}"),
    _c("'bogus'", "17 cli", "search", "--benchmark", "nb201:cifar10", "--strategy", "bo", "--warm-start", "bogus:10",
       "--storage", "{db}"),
    _c("'synflow:0'", "17 cli", "search", "--benchmark", "nb201:cifar10", "--strategy", "bo", "--warm-start",
       "synflow:0", "--storage", "{db}"),
    _c("'ls'", "17 cli", "search", "--benchmark", "nb201:cifar10", "--strategy", "ls", "--warm-start", "synflow:10",
       "--storage", "{db}"),
    _c("N=99999", "17 cli", "search", "--benchmark", "nb201:cifar10", "--strategy", "re", "--warm-start",
       "synflow:99999", "--storage", "{db}"),
]


#: values that are bad for every option they are drawn for (generated cases)
BAD_INTS = ["-1", "0", "-99999999999999999999", "1.5", "nan", "inf", "", "x", "1e3x", "0x10"]
BAD_FLOATS = ["nan", "inf", "-inf", "-1", "1e400", "", "x"]
BAD_PATHS = ["{missing}/a/b.csv", "/proc/forbidden/x.png", "{tmp}", ""]

#: (command prefix, option, kind of value, a bad value that must be refused with it)
GENERATED_OPTIONS: list[tuple[tuple[str, ...], str, list[str]]] = [
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--seed", ["-1", "-7", "4294967296", "1.5", "x", ""]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--budget", BAD_INTS),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--max-cost", BAD_FLOATS + ["0"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--fidelity", BAD_FLOATS + ["0"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--workers", BAD_INTS),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--strategy", ["", "nope", "re,ls"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--metric", ["", "bogus"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--report", ["bogus", ""]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--study", ["../x", "a/b", "..", ".", "x" * 256, "a\nb"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--workdir", ["/proc/forbidden", "{missing}"]),
    (("search", "--benchmark", TABLE, "--storage", "{db}"), "--param", ["x", "=1", "population_size=-3"]),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--epochs", BAD_INTS),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--C", BAD_INTS),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--N", BAD_INTS),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--lr", BAD_FLOATS + ["0"]),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--weight-decay", BAD_FLOATS),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--label-smoothing", BAD_FLOATS + ["1", "2"]),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--batch-size", BAD_INTS),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--n-train", BAD_INTS + ["5", "1797"]),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--space", ["nbgraph", "darts", "nope", ""]),
    (("search", "--dataset", "digits", "--storage", "{db}"), "--workdir", ["/proc/forbidden", "/proc/x/y"]),
    (("search", "--storage", "{db}"), "--dataset", ["", "nope", "{missing}/x.npz", "{tmp}"]),
    (("search",), "--storage", ["", "nope", "sqlite:///{missing}/x.db", "bogus://x"]),
    (("show", "tab", "--storage", "{db}"), "--top", BAD_INTS),
    (("show", "tab", "--storage", "{db}"), "--csv", BAD_PATHS),
    (("show", "tab", "--storage", "{db}"), "--report", ["bogus", ""]),
    (("show",), "--storage", ["sqlite:///{tmp}/none.db", "sqlite:///{missing}/x.db", "nope", ""]),
    (("bench",), "--seeds", BAD_INTS),
    (("bench",), "--seed", ["-1", "4294967296", "x"]),
    (("bench",), "--at", ["0", "-3", "x", "", ",,", "5,0"]),
    (("bench",), "--budget", BAD_INTS),
    (("bench",), "--strategies", ["", ",", "nope", " , "]),
    (("bench", "--seeds", "1", "--at", "5"), "--plot", BAD_PATHS),
    (("bench", "--seeds", "1", "--at", "5"), "--csv", BAD_PATHS),
    (("bench",), "--workers", BAD_INTS),
    (("export", "tr", "--storage", "{db}", "--workdir", "{workdir}"), "--out", BAD_PATHS),
    (("export", "tr", "--storage", "{db}"), "--workdir", ["{missing}", "/proc/forbidden"]),
    (("export", "tr", "--storage", "{db}", "--workdir", "{workdir}"), "--format", ["", "tf"]),
    (("front", "tab", "--storage", "{db}"), "--plot", BAD_PATHS),
    (("proxies",), "--out", BAD_PATHS),
    (("proxies",), "--n", BAD_INTS),
    (("proxies",), "--threads", BAD_INTS),
    (("proxies",), "--batch-size", BAD_INTS),
    (("proxies",), "--seed", ["-1", "4294967296"]),
    (("proxies",), "--top-k", ["0", "-5", "100%", "x"]),
    (("equivariance", "search", "--method", "re"), "--epochs", BAD_INTS),
    (("equivariance", "search", "--method", "re"), "--lr", BAD_FLOATS + ["0"]),
    (("equivariance", "search", "--method", "re"), "--layers", BAD_INTS),
    (("equivariance", "search", "--method", "rs"), "--trials", BAD_INTS),
    (("equivariance", "search", "--method", "re"), "--seed", ["-1", "4294967296", "x"]),
    (("equivariance", "search", "--method", "re"), "--groups", ["", ",", "C3", "D4,X"]),
    (("energy", "search", "--strategy", "re"), "--energy-budget", BAD_FLOATS + ["0"]),
    (("energy", "search", "--strategy", "re"), "--energy-weight", ["nan", "inf", "1", "-6", "x", ""]),
    (("energy", "search", "--strategy", "re"), "--target-energy", BAD_FLOATS + ["0"]),
    (("energy", "search", "--strategy", "re"), "--seed", ["-1", "4294967296", "x"]),
    (("energy", "search", "--strategy", "re"), "--C", BAD_INTS),
    (("cost", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "--C", BAD_INTS),
]

#: architecture strings for ``nasforge cost`` (every one bad)
BAD_ARCHS = ["", "|", "||", "|none~0|", "|none~0|+|none~0|none~1|+|none~0|none~1|none~3|",
             "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "x" * 5000, "|none~0|+|none~0|none~1|+",
             "nor_conv_3x3"]


@dataclass
class Outcome:
    kind: str  # "clean": exit 2 and one line naming the value; "accepted": exit 0; "traceback"; "other"
    code: object
    err: str
    wrote: list[str]

    @property
    def clean(self) -> bool:
        return self.kind == "clean"


class Sandbox:
    """A scratch folder with the database of :data:`LISTED`; runs cases in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.db_path = root / "fuzz.db"
        self.workdir = root / "runs"
        self.subs = {"db": f"sqlite:///{self.db_path}", "tmp": str(root / "scratch"), "missing": str(root / "missing"),
                     "workdir": str(self.workdir), "ro": f"sqlite:///file:{self.db_path}?mode=ro&uri=true",
                     "bad": f"sqlite:///{root / 'damaged.db'}"}
        (root / "scratch").mkdir(exist_ok=True)
        self._build()

    def _build(self) -> None:
        import subprocess
        import sys

        # in child processes, so that no connection to the database stays open here
        for args in (["--benchmark", TABLE, "--study", "tab", "--budget", "12"],
                     ["--dataset", "digits", "--study", "tr", "--budget", "2", "--epochs", "1", "--C", "2",
                      "--n-train", "200", "--workdir", str(self.workdir)]):
            proc = subprocess.run([sys.executable, "-m", "nasforge", "search", *args, "--storage", self.subs["db"],
                                   "--quiet"], capture_output=True, text=True, cwd=self.root, timeout=300)
            assert proc.returncode == 0, proc.stderr[-2000:]
        con = sqlite3.connect(self.db_path)  # one file, no WAL: readers then leave every byte as it is
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
        damaged = self.root / "damaged.db"
        shutil.copy(self.db_path, damaged)
        size = damaged.stat().st_size
        with open(damaged, "r+b") as fh:  # keep the header page, overwrite every other page
            fh.seek(4096)
            fh.write(bytes((i * 37 + 11) % 256 for i in range(size - 4096)))

    def fill(self, text: str) -> str:
        for k, v in self.subs.items():
            text = text.replace("{" + k + "}", v)
        return text

    def _snapshot(self) -> dict[str, str]:
        out = {}
        for base, _, files in os.walk(self.root):
            for f in files:
                p = os.path.join(base, f)
                with open(p, "rb") as fh:
                    out[p] = hashlib.sha1(fh.read()).hexdigest()
        return out

    def run(self, argv: tuple[str, ...] | list[str], expect: str | tuple[str, ...] = "") -> Outcome:
        """Run one command line; ``expect``: what the one-line message must contain (or any of
        several alternatives)."""
        args = [self.fill(a) for a in argv]
        if args and args[0] == "search" and "--quiet" not in args:
            args.append("--quiet")
        before = self._snapshot()
        err, out = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(self.subs["tmp"])
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code: object = main(args)
        except SystemExit as exc:  # argparse: usage errors
            code = exc.code
        except BaseException:  # noqa: BLE001 - that is what this looks for
            code = "traceback"
            err.write(traceback.format_exc())
        finally:
            os.chdir(cwd)
        after = self._snapshot()
        wrote = sorted(p for p in after if before.get(p) != after[p])
        text = err.getvalue()
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if code == "traceback" or "Traceback" in text:
            kind = "traceback"
        elif code == 0:
            kind = "accepted"
        elif code == 2 and len(lines) == 1 and any(self.fill(e) in lines[0] for e in
                                                    ((expect,) if isinstance(expect, str) else expect)):
            kind = "clean"
        else:
            kind = "other"
        return Outcome(kind, code, text, wrote)
