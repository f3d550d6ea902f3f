from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.estimation.tabular import find_data_dir

DATA = find_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if DATA is None or not (DATA / "nb201" / "cifar10.csv").is_file():
        pytest.skip("reference data folder (../shared/data) is absent")
    return DATA


@pytest.fixture(scope="session")
def nb201_c10(data_dir):
    from nasforge.estimation import load_benchmark

    return load_benchmark("nb201:cifar10", data_dir=data_dir)
