"""``nasforge export STUDY --format onnx|torch``: the best network of a study, ready to deploy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasforge.errors import NasforgeError, check_output_file, shorten


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export the best trained network of a study (ONNX or PyTorch)")
    p.add_argument("study", help="name of a study that trained (nasforge search --dataset ...)")
    p.add_argument("--format", choices=("onnx", "torch"), default="onnx", help="onnx or torch (default onnx)")
    p.add_argument("--out", default=None, help="output path (default WORKDIR/STUDY/best.onnx or best.pth)")
    p.add_argument("--storage", default="sqlite:///nasforge.db",
                   help="database URL or :memory: (default sqlite:///nasforge.db)")
    p.add_argument("--workdir", default="nasforge_runs",
                   help="the search's --workdir, holding STUDY/checkpoints (default nasforge_runs)")
    p.add_argument("--data-dir", default=None, help="reference data folder (default: $NASFORGE_DATA or ../shared/data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nasforge.estimation.export import example_input, export_onnx, save_trained
    from nasforge.study import get_storage, load_study
    from nasforge.study.task import open_task, study_dir

    out = None
    if args.out is not None:
        out = check_output_file(args.out, "--out")
    study = load_study(args.study, get_storage(args.storage, create=False))
    cfg = study.config
    settings = cfg.get("search", {})
    if settings.get("benchmark") or not settings.get("dataset"):
        raise NasforgeError(f"study {args.study!r} searched a table ({settings.get('benchmark')}); only studies that "
                            "trained networks (--dataset) have weights to export")
    if not Path(args.workdir).is_dir():
        raise NasforgeError(f"bad --workdir {shorten(args.workdir)}: no such folder (give the --workdir of the search, "
                            "where it keeps STUDY/checkpoints)")
    workdir = study_dir(args.workdir, args.study)
    best = study.best_trial
    if best is None:
        raise NasforgeError(f"study {args.study!r} has no complete trial to export")
    task = open_task(cfg, args.data_dir, workdir)
    epochs = int(best.fidelity or task.estimator.max_epochs)
    print(f"best trial #{best.number}: {best.arch} ({cfg['metric']} = {best.value:.4f}, {epochs} epochs)")
    model = task.estimator.trained_model(best.arch, epochs)  # from its checkpoint, or retrained identically
    if args.format == "torch":
        out = out or workdir / "best.pth"
        paths = save_trained(model, out.with_suffix(""), best.arch, task.estimator)
        print(f"wrote {paths['state_dict']} and {paths['program']}")
        return 0
    out = out or workdir / "best.onnx"
    diff = export_onnx(model, out, example_input(task.estimator, 16))
    print(f"wrote {out}; onnxruntime vs PyTorch on 16 validation inputs: max |difference| = {diff:.2e}")
    return 0
