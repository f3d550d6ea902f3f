"""The README's user-defined-space example runs as written (with a smaller budget here)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text.split("## Your own search space", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def test_the_user_space_example_searches_the_digits_data():
    code = _example()
    for full, small in (("n_trials=20", "n_trials=3"), ("max_epochs=5", "max_epochs=1")):
        assert full in code, full  # the budget the README states
        code = code.replace(full, small)
    out = io.StringIO()
    scope: dict = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - the project's own README
    arch, valid, test = out.getvalue().split()
    space, study = scope["space"], scope["study"]
    assert space.parse(arch) in space and len(study.trials) == 3
    assert re.fullmatch(r"depth=\d,width=\d+,kernel=\d,act=(relu|gelu)", arch)
    assert 0.0 <= float(valid) <= 100.0 and 0.0 <= float(test) <= 100.0
    assert float(valid) == max(t.metrics["valid_acc"] for t in study.trials)
