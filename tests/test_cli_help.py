"""The command line's friendliness: examples in every --help that are valid commands, one meaning
per option name across the commands, every option explained, and the closing note of a search
saying where its results went (with commands that read them back)."""

from __future__ import annotations

import argparse
import collections
import shlex

import pytest

from nasforge.cli.examples import EXAMPLES, example_commands
from nasforge.cli.main import build_parser, main
from nasforge.cli.notes import where_written


def commands(parser):
    out = [((), parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [((name, *path), p) for path, p in commands(sub)]
    return out


def test_every_command_has_examples_that_parse(capsys):
    parser = build_parser()
    examples = example_commands(parser)
    names = {" ".join(path) for path, _ in commands(parser)}
    missing = sorted(names - set(examples))  # the top level and every (sub-)command has examples
    assert not missing, f"no --help examples for {missing}: add them to nasforge.cli.examples.EXAMPLES"
    assert set(EXAMPLES) <= names  # no examples of a command that does not exist
    for name, lines in examples.items():
        assert lines, name
        for argv in lines:
            assert argv[: len(name.split())] == name.split(), (name, argv)  # an example of this command
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as exc:  # only `--help` may stop the parser, and then with success
                assert exc.code == 0 and "--help" in argv, (name, argv, capsys.readouterr().err)
                continue
            assert callable(args.func), argv
    assert "examples:\n  nasforge search --benchmark" in parser._subparsers._group_actions[0].choices["search"].format_help()


def test_option_names_mean_the_same_everywhere_and_are_explained():
    uses = collections.defaultdict(set)
    for path, p in commands(build_parser()):
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert a.help, f"{' '.join(path) or 'nasforge'} {a.option_strings or a.dest}: no help text"
            for opt in a.option_strings:
                kind = getattr(a.type, "__name__", None)
                uses[opt].add((a.dest, type(a).__name__, kind))
    mixed = {opt: u for opt, u in uses.items() if len(u) > 1}
    assert not mixed, f"one option name, different meanings: {mixed}"
    # the names the commands share
    for opt in ("--storage", "--data-dir", "--study", "--budget", "--seed", "--quiet", "--benchmark", "--strategy"):
        assert opt in uses, opt


def test_where_written_note():
    note = where_written("my study", "sqlite:///runs/a b.db")
    lines = note.splitlines()
    assert lines[0] == "results: study 'my study' in sqlite:///runs/a b.db"
    # the commands it suggests are valid command lines, quoted for the shell
    show = shlex.split(lines[1], comments=True)
    dash = shlex.split(lines[2], comments=True)
    assert show == ["nasforge", "show", "my study", "--storage", "sqlite:///runs/a b.db"]
    assert dash == ["nasforge", "dashboard", "--storage", "sqlite:///runs/a b.db"]
    assert build_parser().parse_args(show[1:]).study == "my study"
    mem = where_written("x", ":memory:", "runs/x")
    assert "kept in memory only" in mem and "nasforge show" not in mem
    assert mem.splitlines()[-1].startswith("checkpoints and the best network: /")


def test_search_ends_with_where_its_results_are(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    assert main(["search", "--benchmark", "nbgraph:cora", "--budget", "6", "--storage", url, "--quiet",
                 "--study", "cora-1"]) == 0
    out = capsys.readouterr().out
    tail = out.rstrip().splitlines()[-3:]
    assert tail[0] == f"results: study 'cora-1' in {url}"
    # the suggested command reads the study back
    argv = shlex.split(tail[1], comments=True)[1:]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "cora-1" in shown and "6 complete trial(s)" in shown
    assert shlex.split(tail[2], comments=True)[1:] == ["dashboard", "--storage", url]


@pytest.mark.parametrize("argv", [["mosearch", "--budget", "0"], ["supernet", "search", "--run", "r", "--budget", "0"]])
def test_budgets_are_whole_numbers_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2 and "expected a whole number >= 1" in capsys.readouterr().err


def test_search_progress_bar_shows_the_best_so_far(capsys):
    assert main(["search", "--benchmark", "nbgraph:cora", "--budget", "5", "--storage", ":memory:", "--study", "b"]) == 0
    captured = capsys.readouterr()
    bar = captured.err.replace("\r", "\n").strip().splitlines()[-1]
    best = next(line for line in captured.out.splitlines() if line.strip().startswith("valid_perf = "))
    assert bar.startswith("b: 100%") and "5/5" in bar
    assert f"best valid_perf={float(best.split()[2]):.4g}" in bar  # the bar's label is the study's best


def test_proxies_ends_with_where_its_scores_are(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    argv = ["proxies", "--n", "2", "--proxies", "params,naswot", "--dataset", "digits", "--C", "4", "--N", "1",
            "--batch-size", "16", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith(f"scores: {out.resolve()} ") and out.is_file()
    assert len(out.read_text().strip().splitlines()) == 3  # a header and one row per architecture
