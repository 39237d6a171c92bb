"""Paths that Hydra's grammar wants quoted: read as Hydra reads them, and suggested so that a
user can paste the suggestion into a shell."""

import json
import re
import shlex

import pytest

from conftest import ROOT, TINY, run_cli
from ganlab.overrides import as_typed, values_given

AWKWARD_VALUES = ["runs/a", "runs/my run", "/tmp/d e ü", "runs/it's", 'runs/a"b', "runs/a,b", "runs/a=b",
                  "runs/(1)", "~/runs", "123", "null", "auto", "runs/${now:%H}"]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_a_suggested_override_reads_back_as_the_same_text(value):
    (arg,) = shlex.split(as_typed("resume", value))  # what the shell hands train.py
    assert values_given([arg]) == {"resume": value}


def test_a_plain_path_is_suggested_as_it_is():
    assert as_typed("resume", "outputs/2026-11-27/05-00-00") == "resume=outputs/2026-11-27/05-00-00"


def test_flags_sweeps_deletions_and_unreadable_overrides_are_not_values():
    given = values_given(["-m", "--cfg", "job", "seed=0,1", "~resume", "x=(1", 'resume="runs/my run"'])
    assert given == {"resume": "runs/my run"}


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("ganlab: error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_a_run_directory_quoted_for_hydra_is_protected_and_continued_as_the_message_says(tmp_path):
    run_dir = tmp_path / "my run ü"  # a space and a letter Hydra reads only inside quotes
    assert run_cli(*TINY, f'hydra.run.dir="{run_dir}"').returncode == 0
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_bytes()

    error = one_line_error(run_cli(*TINY, "train.batch_size=3", f'hydra.run.dir="{run_dir}"'))
    assert "already holds a run" in error
    # stopped before Hydra wrote into the directory: the earlier run's config is still its own
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == hydra_config

    suggested = re.search(r"continue it with (.+) \(a sweep", error)[1]
    result = run_cli(*TINY, "train.iterations=60", *shlex.split(suggested))
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["iteration"] == 60


@pytest.mark.parametrize("arg,words", [
    ("dataset.root=~/data/mnist", "dataset.root=$HOME/data/mnist"),
    ("hydra.run.dir=runs/ü", """'hydra.run.dir="runs/ü"'"""),
    ("train.batch_size=8 model.d_hidden=1.5", "give each as an argument of its own"),  # a quoting slip
])
def test_an_override_hydra_cannot_read_gets_one_line_with_the_fix(tmp_path, arg, words):
    error = one_line_error(run_cli("dataset=mnist", arg, cwd=tmp_path))
    assert "Hydra cannot read the override" in error and words in error
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("args,line", [
    # each was Hydra's traceback ("ValueError: Config group override must be a string or a list. Got NoneType")
    (["dataset=null"], "dataset=null is not a choice of dataset; use one of mnist, normal"),
    (["-m", "train=normal,null"], "train=null is not a choice of train; use one of mnist, normal"),
    (["experiment=null"], "experiment=null: Hydra takes no null for a config group; leave experiment out (none is "
                          "its default)"),
    # Hydra's "Error resolving interpolation '${dataset}', possible interpolation keys: ..."
    (["~dataset"], "~dataset removes the dataset, which every run needs; choose one with dataset=NAME (mnist, normal)"),
    # Hydra's "Error executing job with overrides" line, then "Missing mandatory value: model"
    (["~model"], "~model removes the model, which every run needs; choose one with model=NAME (mnist, mnist_seed, "
                 "normal)"),
    # Hydra's "Multiple values for experiment. To override a value use 'override experiment: seed_normal'"
    (["+experiment=seed_normal"], "+experiment=seed_normal: experiment is in train.py's defaults list already (a "
                                  "config group every run has); drop the +: experiment=seed_normal"),
])
def test_a_config_group_set_to_null_removed_or_added_with_plus_is_one_line_with_the_fix(tmp_path, args, line):
    assert one_line_error(run_cli(*args, "train.iterations=2", cwd=tmp_path)) == f"ganlab: error: {line}"
    assert not any(tmp_path.iterdir())  # nothing written


def test_groups_that_a_run_can_do_without_can_still_be_removed(tmp_path):
    # ~experiment is no preset (the default); ~train trains with the schema's defaults (TrainConfig)
    result = run_cli(*TINY, "~experiment", "~train", "train.iterations=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("sweep", [[], ["-m", "seed=0,1"]], ids=["run", "sweep"])
def test_a_value_whose_interpolation_cannot_resolve_is_one_line_naming_its_key(tmp_path, sweep):
    # It was Hydra's "Error executing job with overrides: [...]" line, then "ganlab: error: Interpolation
    # key 'nope' not found": ganlab read the command line's overrides through OmegaConf, which resolved them.
    line = one_line_error(run_cli(*sweep, *TINY, "optimizer.d.lr=${nope}", cwd=tmp_path))
    assert line.endswith("cannot resolve the value of optimizer.d.lr: Interpolation key 'nope' not found"
                         + ("; no job has run" if sweep else ""))
    # one that resolves still trains, in a run or a sweep's check of its jobs
    result = run_cli(*sweep, *TINY, "train.iterations=${train.batch_size}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_group_check_reads_train_yamls_defaults_only_when_it_is_the_primary_config():
    from ganlab.config import ConfigError, check_group_choices

    conf = ROOT / "conf"
    with pytest.raises(ConfigError, match=r"^\+experiment=seed_normal: experiment is in train.py's defaults list"):
        check_group_choices(["+experiment=seed_normal"], conf)
    for flag in (["--config-name=mine"], ["-cn", "mine"], ["--config-path", "elsewhere"]):  # another defaults list
        check_group_choices([*flag, "+experiment=seed_normal"], conf)
    for flag in (["--config-name=train"], ["-cn", "train"]):  # train.yaml's, named
        with pytest.raises(ConfigError, match=r"^\+experiment=seed_normal: experiment is in train.py's defaults"):
            check_group_choices([*flag, "+experiment=seed_normal"], conf)
