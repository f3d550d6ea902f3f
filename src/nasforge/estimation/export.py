"""Export trained networks: TorchScript, plain state dicts, ONNX (checked in onnxruntime)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.errors import NasforgeError


def example_input(estimator: Any, batch: int = 4) -> torch.Tensor:
    """A batch of real validation inputs of the estimator's dataset (for tracing and checks)."""
    x = torch.from_numpy(estimator.dataset.x_val[:batch])
    return x if len(x) else torch.zeros((batch, *estimator.dataset.input_shape))


def build_settings(arch_text: str, estimator: Any) -> dict[str, Any]:
    """Everything needed to rebuild the network: space, architecture, constructor arguments, data stats."""
    d = estimator.dataset
    return {
        "space": estimator.space.name,
        "arch": arch_text,
        "build": {"num_classes": d.num_classes, "in_channels": d.in_channels, "input_size": d.input_size,
                  **estimator.net},
        "input_shape": list(d.input_shape),
        "normalize": {"mean": np.asarray(d.mean).ravel().tolist(), "std": np.asarray(d.std).ravel().tolist()},
        "classes": d.classes,
        "dataset": d.name,
    }


def save_trained(model: torch.nn.Module, prefix: str | os.PathLike[str], arch_text: str, estimator: Any) -> dict[str, Path]:
    """Save ``model`` as ``<prefix>.pth`` (state dict + JSON settings; ``torch.load(...,
    weights_only=True)`` reads it) and ``<prefix>.pt2`` (a ``torch.export`` program with a dynamic
    batch size: ``torch.export.load(path).module()`` runs it without nasforge). Returns the paths."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    settings = build_settings(arch_text, estimator)
    sd_path = prefix.with_suffix(".pth")
    torch.save({"state_dict": model.state_dict(), "settings": json.dumps(settings)}, sd_path)
    program_path = prefix.with_suffix(".pt2")
    example = example_input(estimator)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(program_path))
    return {"state_dict": sd_path, "program": program_path}


def load_state_dict_file(path: str | os.PathLike[str]) -> torch.nn.Module:
    """Rebuild a network saved by :func:`save_trained` (uses nasforge only to rebuild the module)."""
    from nasforge.spaces import get_space

    blob = torch.load(path, map_location="cpu", weights_only=True)
    settings = json.loads(blob["settings"])
    space = get_space(settings["space"])
    model = space.build(space.parse(settings["arch"]), **settings["build"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def export_onnx(model: torch.nn.Module, path: str | os.PathLike[str], example: torch.Tensor,
                check: bool = True) -> float | None:
    """Write ``model`` as ONNX (dynamic batch size) and, with ``check``, run it in onnxruntime on
    ``example``: returns the largest absolute difference from PyTorch's output."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise NasforgeError("ONNX export needs the onnx package: pip install 'nasforge[onnx]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    if not check:
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        raise NasforgeError("checking the ONNX file needs onnxruntime: pip install 'nasforge[onnx]'") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    return float(np.max(np.abs(got - want)))
