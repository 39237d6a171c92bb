"""Every config option composes; a bad command line stops at once with one line naming the key."""

import re
import shutil

import pytest

from conftest import ROOT, compose_cfg, run_cli
from ganlab.config import ConfigError, count_as_given, validate

GROUP_OPTIONS = [(group.name, path.stem)
                 for group in sorted((ROOT / "conf").iterdir()) if group.is_dir() and group.name != "hydra"
                 for path in sorted(group.glob("*.yaml"))]
EXPERIMENTS = [path.stem for path in sorted((ROOT / "experiments").glob("*.yaml"))]


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"]
    if option.startswith("mnist"):  # options built for MNIST compose with it
        overrides.append("dataset=mnist")
    cfg = compose_cfg(overrides)
    validate(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    cfg = compose_cfg([f"experiment={name}"])
    validate(cfg)
    assert cfg.experiment_name == name


def test_seed_normal_is_the_book_recipe():
    cfg = compose_cfg(["experiment=seed_normal"])
    assert (cfg.train.batch_size, cfg.train.iterations, cfg.train.eval_every, cfg.dataset.eval_samples) \
        == (1, 40000, 200, 100)
    assert (cfg.train.d_steps, cfg.train.g_steps, cfg.train.loss) == (1, 1, "bce")
    assert (cfg.train.g_ema, cfg.train.r1_gamma, cfg.train.lr_schedule) == (0, 0, "constant")
    assert (cfg.model.d_hidden, cfg.model.g_hidden, cfg.model.d_features) == (50, 50, "decorate")
    assert cfg.model.d_negative_slope == 0  # the seed's ReLUs, not the default's leaky ones
    assert cfg.dataset.sample_size == 100 and (cfg.dataset.mean, cfg.dataset.std) == (4.0, 1.25)
    for net in (cfg.optimizer.d, cfg.optimizer.g):
        assert (net.name, net.lr, net.beta1, net.beta2) == ("adam", 2e-4, 0.9, 0.999)


def test_d_and_g_optimizers_are_separately_overridable():
    cfg = compose_cfg(["optimizer=sgd_nesterov", "optimizer.d.lr=0.01"])
    assert cfg.optimizer.d.lr == 0.01 and cfg.optimizer.g.lr == 5e-4
    assert cfg.optimizer.g.nesterov and cfg.optimizer.g.momentum == 0.9


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=0", "train.batch_size"),
    ("optimizer.g.lr=-0.001", "optimizer.g.lr"),
    ("train.g_ema=1.5", "train.g_ema"),
    ("train.loss=wgan", "train.loss"),
    ("dataset=mnist dataset.eval_samples=1", "dataset.eval_samples"),
    ("dataset=mnist dataset.n_train=1", "dataset.n_train=1 is too few digits"),  # was numpy's LinAlgError
    # checked in the job once the data was read: a sweep's earlier jobs trained before it stopped there
    ("dataset=mnist dataset.n_train=10 train.batch_size=16", "train.batch_size=16 is larger than the 10 training"),
    ("experiment=seed_mnist train.batch_size=1", "train.batch_size"),  # its BatchNorm1d needs a spread
    ("train.eval_every_epochs=2", "train.eval_every_epochs=2 needs a finite dataset"),  # it named train.epochs=0
    ("optimized_metric=mean", "optimized_metric"),  # no better or worse: best.pt could not be chosen by it
    # values that trained into "the losses became NaN" or a traceback from torch's generators
    ("dataset.mean=nan", "dataset.mean=nan is not a finite float32 number"),
    ("dataset.std=1e39", "dataset.std=1e+39 is not a finite float32 number"),
    ("seed=99999999999999999999", "seed=99999999999999999999 is too large"),
    # keys that a + override adds beside the schema's, at each level: nothing would read them
    ("+lr=0.1", "lr is not an option of the run"),
    ("+train.iteration=5", "did you mean train.iterations"),
    ("+optimizer.lr=0.1", "did you mean optimizer.d.lr and optimizer.g.lr"),
    ("+optimizer.g.betas=0.5", "optimizer.g.betas"),
    ("dataset=mnist +dataset.roots=x", "did you mean dataset.root"),
])
def test_validate_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate(compose_cfg(override.split()))


BAD_COMMAND_LINES = [
    (["train.bogus=1"], "train.bogus"),
    (["train.batch_size=0"], "train.batch_size"),
    (["optimizer.d.lr=-1"], "optimizer.d.lr"),
    (["train.iterations=many"], "train.iterations"),
    # a value of the wrong type: what the key takes, not OmegaConf's "Value '1000.0' of type 'float' could not
    # be converted to Integer" (nor "field 'train.iterations' is not Optional")
    (["train.iterations=1e3"], "train.iterations=1e3: train.iterations takes a whole number; write train.iterations=1000"),
    (["optimizer.d.lr=fast"], "optimizer.d.lr=fast: optimizer.d.lr takes a number"),
    (["train.compile=maybe"], "train.compile=maybe: train.compile takes true or false"),
    (["train.iterations=null"], "train.iterations=null: train.iterations cannot be null; give it a value"),
    (["optimizer=sgd_nesterov", "optimizer.d.momentum=0"], "optimizer.d.momentum"),
    (["optimizer=rmsprop"], "optimizer=rmsprop is not a known choice; use one of adam, adam_dcgan,"),
    (["experiment=nope"], "experiment=nope is not a known choice; use one of mnist_cpu, seed_mnist, seed_normal"),
    (["dataset=mnist", "train.iterations=60", "train.epochs=3"], "train.epochs"),
    (["experiment=seed_mnist", "train.batch_size=1"], "train.batch_size=1 is too small for model.arch=seed"),
    # a group's name says which schema and code it is: set by choosing the group, not as a value
    (["dataset.name=foo"], "dataset.name='foo' cannot be set: it names the schema of the dataset chosen (normal)"),
    (["model.name=foo"], "choose another model with model=NAME"),
    # a preset's group replaced on the command line: Hydra's "Key 'shuffle' not in 'NormalDatasetConfig'" before, or
    # the model check's advice to add model=mnist, which then failed that way
    (["experiment=seed_mnist", "dataset=normal"], "experiment=seed_mnist sets dataset.shuffle, which dataset=normal "
     "does not have: the preset brings its own dataset; drop dataset=normal, or use a preset made for dataset=normal"),
    (["experiment=seed_normal", "model=mnist"], "experiment=seed_normal sets model.d_hidden, which model=mnist does"),
    (["experiment=seed_normal", "dataset=mnist"], "experiment=seed_normal brings its own dataset and model: drop the "
     "dataset= or model= override, or use a preset made for dataset=mnist"),
    # Hydra's own flags, two of which cannot go together: its ValueError's traceback before
    (["-m", "--cfg", "job", "seed=0,1"], "-m (--multirun), --cfg, --info and --shell-completion cannot be combined"),
    # a key the schema lacks: the options nearest to it, not Hydra's advice to add it with +
    (["train.iteration=5"], "train.iteration is not an option of train; did you mean train.iterations?"),
    (["optimizer.lr=1e-3"], "did you mean optimizer.d.lr and optimizer.g.lr?"),
    (["+train.iteration=5"], "did you mean train.iterations?"),
]


@pytest.mark.parametrize("args,key", BAD_COMMAND_LINES)
def test_bad_command_line_fails_with_one_line(tmp_path, args, key):
    result = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ganlab: error:") and key in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before any work


def test_a_users_config_file_with_a_mistake_stops_only_the_runs_that_select_it_with_one_line(tmp_path):
    """Before, a preset YAML could not read stopped every run, any preset or none, with YAML's
    traceback, and a config group's file the runs that chose it; a file with a key the schemas
    lack or a value of the wrong type stopped with Hydra's "In 'experiment/NAME': ConfigKeyError
    raised while composing config: ...", the second without naming the key."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "conf", project / "conf")
    shutil.copy(ROOT / "train.py", project)
    presets = {"unclosed": "train:\n  iterations: [10\n", "twice": "train:\n  iterations: 10\n  iterations: 20\n",
               "typo": "train:\n  iteration: 10\n", "text": "train:\n  iterations: many\n"}
    (project / "experiments").mkdir()
    for name, text in presets.items():
        (project / "experiments" / f"{name}.yaml").write_text(f"# @package _global_\n{text}")
    # and a config group's files, README's "Extending" (conf/optimizer/NAME.yaml)
    optimizers = {"unclosed_rule": "d: {lr: [1}\n", "typo_rule": "defaults: [adam, _self_]\nd: {lr2: 0.1}\n",
                  "text_rule": "defaults: [adam, _self_]\nd: {lr: fast}\n"}
    for name, text in optimizers.items():
        (project / "conf" / "optimizer" / f"{name}.yaml").write_text(text)
    train_py = str(project / "train.py")
    fine = run_cli("debug=fast", f"hydra.run.dir={tmp_path / 'run'}", script=train_py)
    assert fine.returncode == 0 and (tmp_path / "run" / "metrics.json").exists(), fine.stderr
    said = {}
    for name in [*(f"experiment={name}" for name in presets), *(f"optimizer={name}" for name in optimizers)]:
        run_dir = tmp_path / name.replace("=", "_")
        result = run_cli(name, f"hydra.run.dir={run_dir}", script=train_py)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        said[name] = lines[0].removeprefix("ganlab: error: ")
        assert not run_dir.exists()
    where = project / "experiments"
    assert said == {
        "experiment=unclosed": f"experiment=unclosed: {where / 'unclosed.yaml'} cannot be read (expected ',' or ']', "
                               f"but got '<stream end>' at line 4, column 1); correct it, or move it out of {where}",
        "experiment=twice": f"experiment=twice: {where / 'twice.yaml'} cannot be read (found duplicate key iterations "
                            f"at line 4, column 3); correct it, or move it out of {where}",
        "experiment=typo": "experiment=typo: train.iteration is not an option of train; did you mean train.iterations?",
        "experiment=text": "experiment=text sets train.iterations: Value 'many' of type 'str' could not be converted "
                           "to Integer",
        "optimizer=unclosed_rule": f"{project / 'conf' / 'optimizer' / 'unclosed_rule.yaml'} cannot be read (expected "
                                   "',' or ']', but got '}' at line 1, column 11); correct it",
        "optimizer=typo_rule": "optimizer=typo_rule: optimizer.d.lr2 is not an option of optimizer.d; did you mean "
                               "optimizer.d.lr?",
        "optimizer=text_rule": "optimizer=text_rule sets optimizer.d.lr: Value 'fast' of type 'str' could not be "
                               "converted to Float"}


@pytest.mark.parametrize("args", [["hydra.run.dir="], ["-m", "seed=0,1", "hydra.sweep.dir="]])
def test_an_empty_output_directory_is_refused_before_hydra_writes_into_the_current_one(tmp_path, args):
    result = run_cli(*args, "debug=fast", cwd=tmp_path)
    key = args[-1].rstrip("=")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"ganlab: error: {key}= is empty; give a directory ({key}=runs/NAME; {key}=. for the current one), "
        f"or leave {key} out for {'multirun' if '-m' in args else 'outputs'}/DATE/TIME"], result.stderr
    assert not any(tmp_path.iterdir())  # (before: the run's files, or the sweep's summary, right there)


def test_sweep_job_names_stay_readable_and_short():
    from ganlab.config import job_dirname

    assert job_dirname("optimizer.d.lr=0.0011701414134690253,seed=1") == "optimizer.d.lr=0.00117,seed=1"
    assert job_dirname("dataset.root=/data/mnist,seed=0") == "dataset.root=_data_mnist,seed=0"  # one folder, not four
    long = job_dirname("train.iterations=1000," * 20)
    assert len(long) == 150 and long != job_dirname("train.iterations=1001," * 20)


def test_a_length_given_in_iterations_sets_aside_the_recipes_epochs():
    given = ["dataset=mnist", "train.iterations=60"]
    cfg = compose_cfg(given)
    assert (cfg.train.epochs, cfg.train.eval_every_epochs) == (40, 5)  # the MNIST recipe counts in epochs
    notes = count_as_given(cfg, given)
    assert (cfg.train.iterations, cfg.train.epochs, cfg.train.eval_every_epochs) == (60, 0, 5)
    assert len(notes) == 1 and "train.epochs=40" in notes[0]
    cfg = compose_cfg(["dataset=mnist", "train.epochs=2"])
    assert count_as_given(cfg, ["dataset=mnist", "train.epochs=2"]) == [] and cfg.train.epochs == 2


def test_a_length_given_beside_debug_fast_says_that_it_applies():
    """Hydra applies the command line after every config, debug=fast's too: appended to a long
    run's command (train.iterations=20000) it ran all 20,000 iterations, without a word."""
    given = ["train.iterations=20000", "train.batch_size=64", "debug=fast"]
    cfg = compose_cfg(given)
    assert count_as_given(cfg, given) == ["debug=fast, but train.iterations=20000 from the command line applies: "
                                          "drop it for debug=fast's short run"]
    assert cfg.train.iterations == 20000 and compose_cfg(given[1:]).train.iterations == 6
    given = ["experiment=seed_mnist", "train.epochs=3", "train.eval_every_epochs=1", "debug=fast"]
    assert count_as_given(compose_cfg(given), given)[-1].endswith("train.epochs=3, train.eval_every_epochs=1 "
                                                                  "from the command line apply: drop them for "
                                                                  "debug=fast's short run")
    assert count_as_given(compose_cfg(["seed=3", "debug=fast"]), ["seed=3", "debug=fast"]) == []


def test_hydras_own_config_prints_resolved(tmp_path):
    """`--cfg hydra --resolve` prints Hydra's node alone, where `${resume}` (the run directory's
    interpolation reads it) is not there: "ganlab: error: Interpolation key 'resume' not found"."""
    result = run_cli("--cfg", "hydra", "--resolve", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^    dir: outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d$", result.stdout, re.MULTILINE)
    assert not any(tmp_path.iterdir())  # (resolving claimed outputs/DATE/TIME, and nothing ran there)


def test_help_says_how_to_run_and_lists_the_options():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("ganlab: train a GAN as configured.")
    assert "experiment: mnist_cpu, seed_mnist, seed_normal" in result.stdout


def test_the_config_names_exactly_the_model_families_with_running_statistics():
    """config.py refuses train.population for models with BatchNorm before torch is imported, from a
    list of its own: it must name the families whose modules have buffers (README, "Extending")."""
    from ganlab.config import WITH_RUNNING_STATISTICS
    from ganlab.models import build_models

    for model in sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml")):
        cfg = compose_cfg([f"model={model}", "dataset=mnist" if model.startswith("mnist") else "dataset=normal"])
        buffers = [b for net in build_models(cfg.model, cfg.dataset) for b in net.buffers()]
        assert bool(buffers) == (cfg.model.name in WITH_RUNNING_STATISTICS), \
            f"model={model}: {'add' if buffers else 'remove'} {cfg.model.name!r} in WITH_RUNNING_STATISTICS, config.py"


def test_the_config_accepts_exactly_the_losses_and_optimizers_there_are():
    """config.py checks train.loss and optimizer.*.name before torch is imported, from lists of
    its own: they must name what losses.py and optimizers.py build (README, "Extending")."""
    from ganlab.config import _CHOICES
    from ganlab.losses import LOSSES
    from ganlab.optimizers import RULES

    assert set(_CHOICES["train.loss"]) == set(LOSSES), "add the loss's name to _CHOICES['train.loss'] in config.py"
    for net in "dg":
        assert set(_CHOICES[f"optimizer.{net}.name"]) == set(RULES), \
            f"add the rule's name to _CHOICES['optimizer.{net}.name'] in config.py"
