import subprocess
import sys

import pytest

from nasforge.cli.main import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_show_resume_on_nb201(tmp_path, capsys, data_dir):
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "--benchmark", "nb201:cifar10", "--strategy", "ls", "--budget", "40", "--storage", url,
            "--quiet", "--data-dir", str(data_dir)]
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "study 'ls-nb201-cifar10-seed0'" in out and "40 new trial(s)" in out
    assert "best architecture: |" in out and "test_acc_full" in out
    # resume: the stored settings are reused, the budget counts what is done
    code, out, _ = run(capsys, "search", "--study", "ls-nb201-cifar10-seed0", "--budget", "60", "--storage", url,
                       "--quiet", "--data-dir", str(data_dir))
    assert code == 0 and "resuming: 40 trial(s) already done" in out and "20 new trial(s)" in out
    code, out, err = run(capsys, "search", "--study", "ls-nb201-cifar10-seed0", "--seed", "3", "--storage", url)
    assert code == 2 and "created with seed=0" in err
    code, out, _ = run(capsys, "show", "--storage", url)
    assert "ls-nb201-cifar10-seed0" in out
    csv = tmp_path / "t.csv"
    code, out, _ = run(capsys, "show", "ls-nb201-cifar10-seed0", "--storage", url, "--csv", str(csv),
                       "--data-dir", str(data_dir))
    assert code == 0 and "60 trials (60 complete)" in out and "table optimum" in out
    assert len(csv.read_text().splitlines()) == 61


def test_search_nbgraph_in_memory(capsys):
    code, out, _ = run(capsys, "search", "--benchmark", "nbgraph:cora", "--storage", ":memory:", "--budget", "30",
                       "--quiet")
    assert code == 0 and "nbgraph:cora" in out and "30 new trial(s)" in out and "valid_perf" in out


def test_main_job_trains_saves_and_exports(tmp_path, capsys):
    import torch

    url = f"sqlite:///{tmp_path / 'm.db'}"
    work = str(tmp_path / "runs")
    code, out, _ = run(capsys, "search", "--budget", "4", "--epochs", "2", "--C", "4", "--strategy", "asha",
                       "--storage", url, "--workdir", work, "--quiet")
    assert code == 0 and "training on Dataset('digits'" in out and "best network saved" in out
    name = "asha-digits-seed0"
    ts = torch.export.load(str(tmp_path / "runs" / name / "best.pt2")).module()
    x = torch.zeros(3, 1, 8, 8)
    assert ts(x).shape == (3, 10)
    code, out, _ = run(capsys, "export", name, "--format", "onnx", "--storage", url, "--workdir", work)
    assert code == 0 and "max |difference|" in out
    diff = float(out.rsplit("=", 1)[1])
    assert diff < 1e-4
    from nasforge.estimation.export import load_state_dict_file

    code, out, _ = run(capsys, "export", name, "--format", "torch", "--storage", url, "--workdir", work,
                       "--out", str(tmp_path / "net.pth"))
    model = load_state_dict_file(tmp_path / "net.pth")
    assert torch.allclose(model(x), ts(x), atol=1e-5)
    code, _, err = run(capsys, "search", "--study", name, "--epochs", "3", "--storage", url)
    assert code == 2 and "created with epochs=2" in err


def test_bench_table_and_plot(tmp_path, capsys, data_dir):
    png = tmp_path / "a.png"
    code, out, _ = run(capsys, "bench", "--benchmark", "nb201:cifar100", "--seeds", "3", "--at", "10,20",
                       "--strategies", "random,re", "--param", "re.population_size=5", "--param", "re.sample_size=2",
                       "--plot", str(png), "--quiet", "--data-dir", str(data_dir))
    assert code == 0
    assert "select by valid_acc, report test_acc" in out and "random" in out and "re " in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "--strategy", "nope", "--storage", ":memory:"], "unknown strategy 'nope'"),
        (["search", "--benchmark", "nb999:x", "--storage", ":memory:"], "unknown benchmark 'nb999:x'"),
        (["search", "--benchmark", "nbgraph:cora", "--metric", "acc", "--storage", ":memory:"], "unknown metric 'acc'"),
        (["search", "--dataset", "digits", "--benchmark", "nbgraph:cora"], "either --benchmark"),
        (["search", "--dataset", "nowhere.npz", "--storage", ":memory:"], "dataset file not found"),
        (["search", "--benchmark", "nbgraph:cora", "--strategy", "asha", "--storage", ":memory:"],
         "needs an estimator with several fidelities"),
        (["export", "ghost", "--storage", ":memory:"], "no study 'ghost'"),
        (["search", "--param", "oops", "--storage", ":memory:"], "expected KEY=VALUE"),
        (["search", "--storage", "not-a-url"], "not a database URL"),
        (["bench", "--at", "0,x"], "bad --at"),
        (["show", "ghost", "--storage", ":memory:"], "no study 'ghost'"),
        (["search", "--budget", "many"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "nasforge", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, messages",
    [
        (["search", "--executor", "nope", "--storage", ":memory:"], ["--executor", "'nope'", "thread", "process", "ray"]),
        (["search", "--workers", "0", "--storage", ":memory:"], ["--workers", "'0'", ">= 1"]),
        (["search", "--workers", "two", "--storage", ":memory:"], ["--workers", "'two'"]),
        (["search", "--executor", "thread", "--ray-address", "ray://head:10001", "--storage", ":memory:"],
         ["--ray-address needs --executor ray"]),
    ],
)
def test_bad_run_options_are_one_line_exit_2(args, messages):
    proc = subprocess.run([sys.executable, "-m", "nasforge", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert all(m in proc.stderr for m in messages), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "options, expected",
    [
        ([], {"n_workers": 1, "executor": None, "ray_address": None}),
        (["--workers", "3"], {"n_workers": 3, "executor": "process", "ray_address": None}),
        (["--workers", "2", "--executor", "thread"], {"n_workers": 2, "executor": "thread", "ray_address": None}),
        (["--executor", "process"], {"n_workers": 1, "executor": "process", "ray_address": None}),
        (["--workers", "4", "--ray-address", "ray://head:10001"],
         {"n_workers": 4, "executor": "ray", "ray_address": "ray://head:10001"}),
    ],
)
def test_run_options_reach_optimize(monkeypatch, capsys, data_dir, options, expected):
    from nasforge.study import Study

    seen = {}

    def optimize(self, strategy, estimator, **kwargs):
        seen.update(kwargs)
        return self

    monkeypatch.setattr(Study, "optimize", optimize)
    code, _, err = run(capsys, "search", "--benchmark", "nb201:cifar10", "--storage", ":memory:", "--quiet",
                       "--data-dir", str(data_dir), *options)
    assert code == 0, err
    assert {k: seen[k] for k in expected} == expected


def test_parallel_search_resumes_with_other_workers(tmp_path, capsys, data_dir):
    from nasforge.study import load_study

    url = f"sqlite:///{tmp_path / 'p.db'}"
    common = ["--storage", url, "--quiet", "--data-dir", str(data_dir)]
    code, out, err = run(capsys, "search", "--benchmark", "nb201:cifar10", "--strategy", "random", "--budget", "12",
                         "--workers", "3", "--executor", "thread", "--study", "par", *common)
    assert code == 0, err
    assert "3 worker(s) (thread)" in out and "12 new trial(s)" in out
    # how evaluations ran is not part of the study: another process may resume it with other workers
    settings = load_study("par", url).config["search"]
    assert not {"workers", "n_workers", "executor", "ray_address"} & set(settings)
    code, out, err = run(capsys, "search", "--study", "par", "--budget", "20", *common)
    assert code == 0, err
    assert "resuming: 12 trial(s) already done" in out and "8 new trial(s)" in out


def test_cli_constants_match_the_library():
    from nasforge.cli.main import DEFAULT_DATASET, EXECUTORS
    from nasforge.study import EXECUTORS as LIBRARY_EXECUTORS
    from nasforge.study import task

    assert DEFAULT_DATASET == task.DEFAULT_DATASET
    assert set(EXECUTORS) <= set(LIBRARY_EXECUTORS)


def test_bench_with_simulated_workers(capsys, data_dir):
    args = ["bench", "--benchmark", "nb201:cifar10", "--strategies", "random,asha", "--param", "asha.rungs=[12,200]",
            "--workers", "4", "--seeds", "3", "--at", "10,40", "--budget", "60", "--quiet", "--data-dir", str(data_dir)]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "4 simulated workers" in out and "by the simulated clock (4 workers" in out
    assert "simulated cost (epochs)" in out
    code, again, _ = run(capsys, *args)
    assert again.split("runs in")[1].split("\n", 1)[1] == out.split("runs in")[1].split("\n", 1)[1]  # seeded
    code, out, _ = run(capsys, *args[:-2], "--at-time", "100,400", "--data-dir", str(data_dir))
    assert code == 0 and any(line.split()[:2] == ["random", "100"] for line in out.splitlines())
    code, _, err = run(capsys, "bench", "--at-time", "100", "--data-dir", str(data_dir))
    assert code == 2 and "--at-time reads the simulated clock" in err


def test_two_search_commands_cooperate_on_one_study(tmp_path, data_dir):
    url = f"sqlite:///{tmp_path / 'coop.db'}"
    cmd = [sys.executable, "-m", "nasforge", "search", "--benchmark", "nb201:cifar10", "--strategy", "re",
           "--budget", "150", "--storage", url, "--study", "coop", "--quiet", "--data-dir", str(data_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from nasforge.study import load_study

    st = load_study("coop", url)
    assert len(st.finished_trials) == 150 and len({t.arch for t in st.trials}) == 150
    assert [t.number for t in st.trials] == list(range(150))
