from types import SimpleNamespace

import pytest

from nasforge import NasforgeError
from nasforge.study.task import (DEFAULT_DATASET, SEARCH_KEYS, TRAINING_DEFAULTS, Task, merge_settings, open_task,
                                 strategy_settings)


def test_new_study_without_benchmark_trains_on_the_default_dataset():
    settings = merge_settings({}, {}, None)
    assert settings["dataset"] == DEFAULT_DATASET and settings["space"] == "nb201"
    assert settings["strategy"] == "re" and settings["seed"] == 0 and settings["params"] == {}
    for key, value in TRAINING_DEFAULTS.items():
        if value is not None:
            assert settings[key] == value
    # defaults are fresh objects: changing one search's params leaves the next one alone
    settings["params"]["x"] = 1
    assert merge_settings({}, {}, None)["params"] == {}


def test_benchmark_search_gets_no_training_settings():
    settings = merge_settings({"benchmark": "nb201:cifar10", "strategy": "ls"}, {}, "s")
    assert settings == {"benchmark": "nb201:cifar10", "strategy": "ls", "seed": 0, "params": {}}


def test_stored_settings_are_kept_and_conflicts_are_errors():
    stored = merge_settings({"benchmark": "nb201:cifar10", "seed": 4, "params": {"n_init": 3}}, {}, "s")
    again = merge_settings({"seed": None, "params": None}, stored, "s")
    assert again == stored
    assert merge_settings({"seed": 4, "benchmark": "nb201:cifar10"}, stored, "s") == stored
    with pytest.raises(NasforgeError, match="study 's' was created with seed=4; it cannot resume with seed=1"):
        merge_settings({"seed": 1}, stored, "s")
    with pytest.raises(NasforgeError, match="created with params=\\{'n_init': 3\\}"):
        merge_settings({"params": {"n_init": 5}}, stored, "s")
    # a table study cannot switch to training, nor the other way round
    with pytest.raises(NasforgeError, match="created with benchmark='nb201:cifar10'; it cannot resume with dataset"):
        merge_settings({"dataset": "digits"}, stored, "s")
    trained = merge_settings({"dataset": "digits"}, {}, "t")
    with pytest.raises(NasforgeError, match="created with dataset='digits'; it cannot resume with benchmark"):
        merge_settings({"benchmark": "nb201:cifar10"}, trained, "t")


def test_bad_given_settings():
    with pytest.raises(NasforgeError, match="either a benchmark .* or a dataset"):
        merge_settings({"benchmark": "nb201:cifar10", "dataset": "digits"}, {}, None)
    with pytest.raises(NasforgeError, match="unknown search setting\\(s\\) workers; allowed: benchmark"):
        merge_settings({"workers": 2}, {}, None)
    assert "workers" not in SEARCH_KEYS and "executor" not in SEARCH_KEYS


def _task(fidelities, table=True):
    return Task(space=None, estimator=SimpleNamespace(fidelities=fidelities), metric="m", report=None,
                maximize=True, label="bench", description="", table=object() if table else None)


def test_strategy_settings_give_schedulers_their_rungs():
    assert strategy_settings({"strategy": "re", "params": {"population_size": 5}}, _task(None)) == {
        "population_size": 5}
    assert strategy_settings({"strategy": "asha", "params": {}}, _task((12.0, 200.0))) == {"rungs": [12.0, 200.0]}
    assert strategy_settings({"strategy": "hb", "params": {}}, _task((1.0, 2.0, 3.0), table=False)) == {
        "min_fidelity": 1, "max_fidelity": 3.0}
    given = {"strategy": "sh", "params": {"rungs": [1, 5]}}
    assert strategy_settings(given, _task((12.0, 200.0))) == {"rungs": [1, 5]}
    with pytest.raises(NasforgeError, match="strategy 'pasha' needs an estimator with several fidelities; bench"):
        strategy_settings({"strategy": "pasha", "params": {}}, _task(None))


def test_open_task_of_a_stored_search(data_dir):
    config = {"space": "nb201", "metric": "valid_acc", "maximize": True,
              "search": {"benchmark": "nb201:cifar100", "strategy": "re", "seed": 0, "params": {}}}
    task = open_task(config, data_dir)
    assert task.label == "nb201:cifar100" and task.metric == "valid_acc" and task.maximize
    assert task.table is task.estimator and task.report == "test_acc"
    # the objective the study stored stands in for settings that do not name one
    config["metric"], config["maximize"] = "test_acc", False
    task = open_task(SimpleNamespace(config=config, name="s"), data_dir)
    assert task.metric == "test_acc" and not task.maximize
    with pytest.raises(NasforgeError, match="study 'x' stores no search settings"):
        open_task(SimpleNamespace(config={"space": "nb201", "metric": "acc", "maximize": True}, name="x"))
