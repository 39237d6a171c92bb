"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Hydra checks keys and types against these dataclasses when it composes the config, so a
typo or a string where a number goes fails before any work starts. Ranges and combinations
that types cannot express are checked by `validate`.
"""

from __future__ import annotations

import atexit
import dataclasses
import difflib
import hashlib
import itertools
import math
import os
import re
import typing
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ganlab.errors import UserError, unreadable_yaml


class ConfigError(UserError):
    """A value or combination in the config that cannot work."""


# The metrics that say how good a G is, by dataset: what optimized_metric may name, the first its
# default. Lower is better for distances; higher for the classifier's score, coverage and
# confident fraction.
QUALITY_METRICS = {"normal": ("ks", "w1"), "mnist": ("fd", "score", "coverage", "class_kl", "confident")}
LOWER_IS_BETTER = {"ks", "w1", "fd", "class_kl"}


RESUME_IF_THERE = "auto"


def main_metric(cfg: DictConfig) -> str:
    """optimized_metric, or the dataset's distance to the real data (KS, FD)."""
    return cfg.get("optimized_metric") or QUALITY_METRICS[cfg.dataset.name][0]


def direction_of(metric: str | None) -> str:
    """An Optuna search's direction for optimized_metric (hparams_search/*.yaml): minimize a
    distance, maximize a score; None is the dataset's own distance (KS, FD)."""
    return "maximize" if metric and metric not in LOWER_IS_BETTER else "minimize"


# ----------------------------------------------------------------------------- dataset
@dataclass
class NormalDatasetConfig:
    name: str = "normal"
    mean: float = 4.0
    std: float = 1.25
    # One real "sample" is a vector of this many draws: D judges a set, not a number.
    sample_size: int = 100
    eval_samples: int = 100  # real vectors per evaluation (the seed's n_test)


@dataclass
class MnistDatasetConfig:
    name: str = "mnist"
    # Directory with train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz];
    # unset = the 5,000-digit subset shipped inside the package.
    root: Optional[str] = None
    download: bool = False  # fetch the IDX files into root (checksums verified) if missing
    n_train: int = 0  # use only the first n_train digits (the seed's n_train); 0 = all
    shuffle: bool = True  # reshuffle every epoch; false walks the files in order, as the seed
    eval_samples: int = 2000  # generated and real digits compared at each evaluation


# ----------------------------------------------------------------------------- model
@dataclass
class Gan1dModelConfig:
    name: str = "gan1d"
    d_hidden: int = 50
    g_hidden: int = 50
    # What D sees of a vector of samples: "decorate" = the seed's [x, (x - mean)^2];
    # "sorted" = the sorted vector, i.e. its empirical quantile function.
    d_features: str = "decorate"
    d_negative_slope: float = 0.0  # of D's ReLUs: 0 = the seed's ReLU; > 0 a leaky ReLU, which cannot die
    init: str = "torch"  # torch (PyTorch's layer defaults) | keras (Glorot-uniform weights, zero biases)


@dataclass
class ConvModelConfig:
    name: str = "conv"
    arch: str = "seed"  # seed (the book's chapter 7.3 pair) | dcgan (smaller, faster)
    z_dim: int = 10
    noise: str = "uniform"  # uniform on (-1, 1), as the seed | normal
    width: int = 64  # dcgan only: channels of the first D conv / last G conv
    init: str = "torch"


# ----------------------------------------------------------------------------- optimizer
@dataclass
class OptimizerSpec:
    name: str = "adam"  # adam | sgd (optimizers.RULES)
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


@dataclass
class OptimizerConfig:
    d: OptimizerSpec = field(default_factory=OptimizerSpec)
    g: OptimizerSpec = field(default_factory=OptimizerSpec)


# ----------------------------------------------------------------------------- train
@dataclass
class TrainConfig:
    iterations: int = 3000
    epochs: int = 0  # > 0: train this many passes over the data instead of `iterations`
    batch_size: int = 64
    d_steps: int = 1
    g_steps: int = 1
    loss: str = "bce"  # bce (the seed's, non-saturating for G) | lsgan | hinge
    lr_schedule: str = "constant"  # constant | linear (decays to 0 at the last iteration)
    # Exponential moving average of G's weights, used for evaluation and sampling; 0 = off.
    g_ema: float = 0.0
    # R1 gradient penalty on D at real data (Mescheder et al. 2018); 0 = off.
    r1_gamma: float = 0.0
    eval_every: int = 200
    eval_every_epochs: int = 0  # > 0: evaluate every this many epochs instead of `eval_every`
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2  # numbered iter_N.pt files kept beside last.pt; 0 = last.pt only
    # Also keep checkpoints/best.pt (written with the checkpoints): G and its average at the
    # evaluation with the best optimized_metric so far, for generate.py checkpoint=best. GANs
    # oscillate; their end is often not their best.
    keep_best: bool = True
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | mps
    amp: bool = False  # bfloat16 autocast: on GPUs, and on CPUs with native bfloat16 (AVX512-BF16, AMX)
    # GPUs: deterministic kernels, so a run (and its resume) repeats bit for bit, as on CPUs; false:
    # cuDNN's fastest algorithms, whose sums come out in a varying order.
    deterministic: bool = True
    threads: int = 0  # torch CPU threads; 0 = all cores, shared fairly among parallel sweep jobs
    # Run each iteration as one torch.compile'd graph (functional.py): several times faster for
    # small models, after a compilation of 20-50 s on a machine's first run (cached for later runs).
    compile: bool = False
    # On a GPU, record the compiled iteration once as a CUDA graph and replay it: one launch an
    # iteration in place of one per kernel, which is what the small 1-D GAN waits on there.
    cuda_graph: bool = True
    # conv models: weights in the memory layout convolutions run fastest in (on a GPU not when
    # compiled: Inductor mispredicts its gradients' strides there, functional.compile_options)
    channels_last: bool = True
    # Train this many copies with seeds seed, seed+1, ... in one process, batched with vmap
    # (models without BatchNorm); each copy is a complete run in RUN_DIR/seed_N.
    population: int = 1
    progress: bool = True
    save_losses: bool = False  # write every iteration's D and G loss to losses.csv, as the seed
    save_weights: bool = False  # write final generator.pt and discriminator.pt, as the seed


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    save_images: bool = True  # also write every logged picture as a PNG under images/


@dataclass
class RunConfig:
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    # A run directory to continue, in place; auto: continue the run directory's run if it holds
    # one, else start one there (the same multirun command plus resume=auto finishes a sweep).
    resume: Optional[str] = None
    # The metric train.py returns to sweepers, sweep summaries sort by and best.pt is chosen by;
    # unset = ks (normal) or fd (mnist).
    optimized_metric: Optional[str] = None
    experiment_name: Optional[str] = None


def job_dirname(overrides: str, limit: int = 150) -> str:
    """A sweep job's directory name from its overrides: floats (as Optuna proposes them) to 4
    significant digits, a path's separators as `_` (a sweep over dataset.root made a folder for
    each part of the path), and a name too long for the file system cut and made unique by a hash."""
    short = re.sub(r"(?<==)-?\d+\.\d+(e-?\d+)?\b", lambda m: f"{float(m.group(0)):.4g}", overrides)
    short = short.replace("/", "_").replace("\\", "_")
    if len(short) > limit:
        short = short[: limit - 9] + "~" + hashlib.sha1(overrides.encode()).hexdigest()[:8]
    return short


_CLAIMED: dict[str, str] = {}  # new run directories this process made, by the name it asked for


def resumed_or_fresh(resume: Optional[str], new: str) -> str:
    """hydra.run.dir where none is given: resume's directory, or `new` (outputs/DATE/TIME) made
    here and now. Making it is the claim: runs started in the same second (seeds launched side by
    side) each get a directory of their own, `new`, `new_1`, `new_2`, ..., instead of writing
    their checkpoints over each other's. resume=auto, which continues the run where hydra.run.dir
    says, has nothing to continue in a new one: refused."""
    if resume not in (None, RESUME_IF_THERE):
        return resume
    if resume == RESUME_IF_THERE:  # (where hydra.run.dir is given, this default is not read)
        raise ConfigError("resume=auto continues the run in hydra.run.dir, and none is given: outputs/DATE/TIME is "
                          "new each time, so there is nothing to continue; add the run's hydra.run.dir=DIR, or give "
                          "resume=DIR")
    if new not in _CLAIMED:
        for n in itertools.count():
            candidate = Path(new if n == 0 else f"{new}_{n}")
            made = [candidate, *itertools.takewhile(lambda d: not d.exists(), candidate.parents)]
            try:
                candidate.mkdir(parents=True)  # atomic: fails where another process made it first
            except FileExistsError:
                continue
            except OSError:
                return new  # not writable here: Hydra's own attempt says so, in one line (errors.py)
            _CLAIMED[new] = str(candidate)
            atexit.register(remove_if_empty, made)
            break
    return _CLAIMED[new]


def hydra_record(resume: Optional[str], run_dir: Optional[str]) -> Optional[str]:
    """hydra.output_subdir: .hydra/, where Hydra records a run's config and overrides, but none
    for a run being continued, whose record stays that of the command that started it. A resume
    refused for changing what the checkpoint holds (another dataset, say) had written its own
    over it, leaving the run no record of how it was trained but environment.json's."""
    from ganlab.checkpoint import resumable  # (checkpoint.py imports this module)

    return None if resume is not None and run_dir and resumable(Path(run_dir)) else ".hydra"


def remove_if_empty(made: list[Path]) -> None:
    """At exit, directories this process made (a run directory first, then the parents made with
    it) where nothing was written: `--cfg all --resolve` resolves hydra.run.dir, and so makes it,
    but runs nothing there; a bad override stops before Hydra writes into a claimed one."""
    for directory in made:
        try:
            directory.rmdir()  # only an empty one
        except OSError:
            return


def paths_from_where_typed(cfg: DictConfig) -> None:
    """With hydra.job.chdir=true a job runs inside its run directory; the paths a user typed
    (resume=, dataset.root=) still mean what they meant where the command was typed."""
    from hydra.utils import to_absolute_path

    for key in ("resume", "dataset.root"):
        value = OmegaConf.select(cfg, key)
        if value not in (None, RESUME_IF_THERE):
            OmegaConf.update(cfg, key, to_absolute_path(os.path.expanduser(value)))


def register_configs(experiments_dir: Optional[Path] = None) -> None:
    """Register schemas, and the top-level experiments/ presets as the `experiment` group."""
    if not OmegaConf.has_resolver("resumed_or_fresh"):
        OmegaConf.register_new_resolver("resumed_or_fresh", resumed_or_fresh)
    if not OmegaConf.has_resolver("job_dirname"):
        OmegaConf.register_new_resolver("job_dirname", job_dirname)
    if not OmegaConf.has_resolver("direction_of"):
        OmegaConf.register_new_resolver("direction_of", direction_of)
    if not OmegaConf.has_resolver("hydra_record"):
        OmegaConf.register_new_resolver("hydra_record", hydra_record)
    cs = ConfigStore.instance()
    # Schemas live in their own `schema/` group, so they do not show up as choices of a group.
    cs.store(group="schema", name="run", node=RunConfig)
    cs.store(group="schema/dataset", name="normal", node=NormalDatasetConfig)
    cs.store(group="schema/dataset", name="mnist", node=MnistDatasetConfig)
    cs.store(group="schema/model", name="gan1d", node=Gan1dModelConfig)
    cs.store(group="schema/model", name="conv", node=ConvModelConfig)
    cs.store(group="schema", name="optimizer", node=OptimizerConfig)
    cs.store(group="schema", name="train", node=TrainConfig)
    cs.store(group="schema", name="logger", node=LoggerConfig)
    if experiments_dir is not None:
        for path in sorted(Path(experiments_dir).glob("*.yaml")):
            try:
                preset = OmegaConf.load(path)
            except (OSError, yaml.YAMLError) as error:
                UNREADABLE_PRESETS[path.stem] = unreadable_preset(path, error)
                continue
            cs.store(group="experiment", name=path.stem, node=preset, package="_global_")


# Presets in experiments/ that could not be read (their name: why), so that a mistake in one
# stops only the runs that select it, with one line, and not every run with YAML's traceback.
UNREADABLE_PRESETS: dict[str, str] = {}


def unreadable_preset(path: Path, error: Exception) -> str:
    problem = unreadable_yaml(error) if isinstance(error, yaml.YAMLError) else f"{path} cannot be read ({error.strerror})"
    return f"experiment={path.stem}: {problem}; correct it, or move it out of {path.parent}"


def check_group_choices(argv: list[str], conf_dir: Path) -> None:
    """Config groups chosen in ways Hydra answers with a traceback (`dataset=null`), in its
    defaults list's own terms (`+experiment=NAME`: "Multiple values for experiment. To override a
    value use 'override experiment: NAME'") or with an error about something else (`~dataset`:
    "Error resolving interpolation '${dataset}'")."""
    from hydra.core.override_parser.types import ChoiceSweep

    from ganlab.overrides import parsed

    def flag(*names: str) -> Optional[str]:  # Hydra's `--flag X` or `--flag=X`
        for at, arg in enumerate(argv):
            name, equals, value = arg.partition("=")
            if name in names:
                return value if equals else next(iter(argv[at + 1:]), "")
        return None

    if flag("--config-path", "-cp") is not None or flag("--config-name", "-cn") not in (None, "train"):
        return  # another primary config than conf/train.yaml, with a defaults list of its own
    defaults = {group: choice for entry in yaml.safe_load((conf_dir / "train.yaml").read_text())["defaults"]
                if isinstance(entry, dict) for group, choice in entry.items()}
    needed = {f.name for f in dataclasses.fields(RunConfig) if f.default is MISSING}  # dataset, model

    def choices(group: str) -> str:
        names = {path.stem for path in (conf_dir / group).glob("*.yaml")}
        with suppress(OSError):  # (experiment: the presets register_configs stored; no other group has any)
            names |= {name.removesuffix(".yaml") for name in ConfigStore.instance().list(group)}
        return ", ".join(sorted(names))

    for override in parsed(argv):
        group = override.key_or_group
        if group not in defaults or override.package is not None:
            continue
        if override.is_delete():
            if group in needed:
                raise ConfigError(f"~{group} removes the {group}, which every run needs; choose one with "
                                  f"{group}=NAME ({choices(group)})")
            continue
        if override.is_add():
            chosen = override.input_line.lstrip("+")
            raise ConfigError(f"+{chosen}: {group} is in train.py's defaults list already (a config group "
                              f"every run has); drop the +: {chosen}")
        value = override.value()
        if value is None or (isinstance(value, ChoiceSweep) and None in value.list):
            if defaults[group] is None:
                raise ConfigError(f"{group}=null: Hydra takes no null for a config group; leave {group} out "
                                  f"(none is its default)")
            raise ConfigError(f"{group}=null is not a choice of {group}; use one of {choices(group)}")


# ----------------------------------------------------------------------------- validation
def not_an_option(key: str, schema: type) -> str:
    """What to say about a key that `schema` (a dataclass above) does not have: the options
    closest to it, or all of them where they are few."""
    parent, _, name = key.rpartition(".")
    options = [f.name for f in dataclasses.fields(schema)]
    close = difflib.get_close_matches(name, options, n=3)
    full = [f"{parent}.{option}" if parent else option for option in (close or options)]
    inner = [f"{option}.{name}" for option, kind in typing.get_type_hints(schema).items()
             if dataclasses.is_dataclass(kind) and name in {f.name for f in dataclasses.fields(kind)}]
    if inner:  # optimizer.lr: D's and G's are set separately
        fix = f"did you mean {' and '.join(f'{parent}.{option}' if parent else option for option in inner)}?"
    elif close:
        fix = f"did you mean {' or '.join(full)}?"
    elif len(options) <= 12:
        fix = f"its options are {', '.join(full)}"
    else:
        fix = "`python train.py --cfg job` shows every option"
    return f"{key} is not an option of {parent or 'the run'}; {fix}"


def added_keys(node: DictConfig, path: str = "") -> list[str]:
    """Keys beside a schema's fields: a `+key=value` override adds them, and nothing reads them."""
    schema = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    found = []
    for key, child in node.items_ex(resolve=False):
        full = f"{path}.{key}" if path else str(key)
        if fields is not None and key not in fields:
            found.append(full)
        elif isinstance(child, DictConfig):
            found += added_keys(child, full)
    return found


_CHOICES = {
    "train.loss": ("bce", "lsgan", "hinge"),
    "train.lr_schedule": ("constant", "linear"),
    "model.d_features": ("decorate", "sorted"),
    "model.init": ("torch", "keras"),
    "model.arch": ("seed", "dcgan"),
    "train.device": ("auto", "cpu", "cuda", "mps"),
    "model.noise": ("uniform", "normal"),
    "optimizer.d.name": ("adam", "sgd"),
    "optimizer.g.name": ("adam", "sgd"),
}
_POSITIVE = (
    "train.iterations", "train.batch_size", "train.population", "train.d_steps", "train.g_steps", "train.eval_every",
    "dataset.eval_samples", "train.log_every", "train.checkpoint_every",
    "dataset.sample_size", "dataset.std", "model.z_dim", "model.width", "model.d_hidden", "model.g_hidden",
    "optimizer.d.lr", "optimizer.g.lr",
)
_NON_NEGATIVE = ("train.threads", "train.keep_checkpoints", "train.epochs", "train.eval_every_epochs", "dataset.n_train", "train.r1_gamma", "optimizer.d.weight_decay",
                 "optimizer.g.weight_decay", "optimizer.d.momentum", "optimizer.g.momentum")
_FLOAT32 = ("dataset.mean", "dataset.std")  # the target's parameters: the data are float32 tensors
_FLOAT32_MAX = 3.4028234663852886e38
_UNIT_INTERVAL = ("train.g_ema", "model.d_negative_slope", "optimizer.d.beta1", "optimizer.g.beta1",
                  "optimizer.d.beta2", "optimizer.g.beta2")


def check_seed(seed: int) -> None:
    """torch's generators take 64-bit seeds, and streams.stream derives several from one."""
    if not -2 ** 60 <= seed < 2 ** 60:
        raise ConfigError(f"seed={seed} is too large for torch's random generators; use a seed between "
                          "-2**60 and 2**60")


# Groups whose `name` says which schema and code read them: chosen with the group (dataset=mnist), not set
NAMED_BY_SCHEMA = ("dataset", "model")


def typed(cfg: DictConfig) -> DictConfig:
    """`cfg` with its schemas. A config read back from a file has none: a run's config.yaml (or
    .hydra/config.yaml) given to train.py as `--config-path RUN --config-name config`, the way
    Hydra's users re-run a job, or to run.train() by OmegaConf.load; and the training read its
    plain dicts as dataclasses ("'dict' object has no attribute 'lr_schedule'")."""
    if OmegaConf.get_type(cfg) is RunConfig:
        return cfg
    store, schema = ConfigStore.instance(), OmegaConf.structured(RunConfig)
    for group in NAMED_BY_SCHEMA:
        name = OmegaConf.select(cfg, f"{group}.name", default=None)
        try:
            schema[group] = store.load(f"schema/{group}/{name}.yaml").node
        except OSError:  # (hydra's ConfigLoadError)
            known = ", ".join(option.removesuffix(".yaml") for option in store.list(f"schema/{group}"))
            raise ConfigError(f"{group}.name={name!r} is no {group} of ganlab's; the config needs one of "
                              f"{known}") from None
    return OmegaConf.merge(schema, cfg)


def validate(cfg: DictConfig) -> None:
    """Check ranges and combinations that types cannot express; raise ConfigError naming the key."""

    def get(key: str) -> Any:
        return OmegaConf.select(cfg, key, default=None)

    def fail(key: str, problem: str, fix: str) -> None:
        raise ConfigError(f"{key}={get(key)!r} {problem}; {fix}")

    if added := added_keys(cfg):
        parent = added[0].rpartition(".")[0]
        schema = OmegaConf.get_type(OmegaConf.select(cfg, parent) if parent else cfg)
        raise ConfigError(f"{not_an_option(added[0], schema)} (+{added[0]}= adds a key, which nothing would read)")
    for group in NAMED_BY_SCHEMA:
        schema_name = getattr(OmegaConf.get_type(cfg[group]), "name", cfg[group].name)
        if cfg[group].name != schema_name:
            fail(f"{group}.name", f"cannot be set: it names the schema of the {group} chosen ({schema_name})",
                 f"choose another {group} with {group}=NAME, a file of conf/{group}/")
    for key, choices in _CHOICES.items():
        if get(key) is not None and get(key) not in choices:
            fail(key, "is not a known choice", f"use one of {', '.join(choices)}")
    for key in _POSITIVE:
        value = get(key)
        if value is not None and not (value > 0 and math.isfinite(value)):
            fail(key, "must be positive", f"set {key} to a value > 0")
    for key in _NON_NEGATIVE:
        value = get(key)
        if value is not None and not (value >= 0 and math.isfinite(value)):
            fail(key, "must not be negative", f"set {key} to a value >= 0")
    for key in _FLOAT32:
        value = get(key)
        if value is not None and not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX):
            fail(key, "is not a finite float32 number", f"set {key} to a number of size at most 3.4e38")
    check_seed(cfg.seed)
    for key in _UNIT_INTERVAL:
        value = get(key)
        if value is not None and not 0 <= value < 1:
            fail(key, "must be in [0, 1)", f"set {key} to a value in [0, 1), e.g. {0.2 if 'slope' in key else 0.9}")
    for net in ("d", "g"):
        if get(f"optimizer.{net}.nesterov") and get(f"optimizer.{net}.name") == "sgd" \
                and not get(f"optimizer.{net}.momentum") > 0:
            fail(f"optimizer.{net}.momentum", "must be > 0 with nesterov=true",
                 f"set optimizer.{net}.momentum (e.g. 0.9) or optimizer.{net}.nesterov=false")
    metrics = QUALITY_METRICS[cfg.dataset.name]
    if cfg.optimized_metric is not None and cfg.optimized_metric not in metrics:
        fail("optimized_metric", f"is not a metric of dataset={cfg.dataset.name}", f"use one of {', '.join(metrics)}")
    fits = {"gan1d": ("normal",), "conv": ("mnist",)}  # the datasets each model family is built for
    if cfg.dataset.name not in fits[cfg.model.name]:
        preset = cfg.get("experiment_name")
        fail("model.name", f"does not fit dataset={cfg.dataset.name}",
             f"experiment={preset} brings its own dataset and model: drop the dataset= or model= override, or use a "
             f"preset made for dataset={cfg.dataset.name} (README, Presets)" if preset else
             f"use model={cfg.dataset.name} or another model built for {cfg.dataset.name}")
    if cfg.train.population > 1 and cfg.model.name in WITH_RUNNING_STATISTICS:
        fail("train.population", "needs models without BatchNorm (vmap cannot update running statistics per copy)",
             "use it with dataset=normal")
    if cfg.model.get("arch") == "seed" and cfg.train.batch_size < 2:  # (the DCGAN pair's BatchNorm2d
        # also normalises over each 7x7 or 14x14 map, so a batch of one image trains)
        fail("train.batch_size", "is too small for model.arch=seed: its BatchNorm1d normalises each unit "
             "over the batch, and one sample has no spread", "set train.batch_size to 2 or more (the book's is 16)")
    if cfg.dataset.name == "mnist" and cfg.dataset.eval_samples < 2:
        fail("dataset.eval_samples", "is too few digits for a Frechet distance (it needs a covariance)",
             "set dataset.eval_samples to 2 or more (2000 by default)")
    if cfg.dataset.name == "mnist" and cfg.dataset.n_train == 1:  # (the real digits evaluated against)
        fail("dataset.n_train", "is too few digits for a Frechet distance (it needs a covariance)",
             "set dataset.n_train to 2 or more (0: all)")
    if cfg.dataset.name == "mnist" and 0 < cfg.dataset.n_train < cfg.train.batch_size:  # (with n_train=0,
        # all the files' digits, member.schedule checks the batch against their number once they are read)
        fail("train.batch_size", f"is larger than the {cfg.dataset.n_train} training digits of dataset.n_train",
             "lower it or raise dataset.n_train")
    for key in ("epochs", "eval_every_epochs"):
        if cfg.dataset.name == "normal" and cfg.train[key]:
            fail(f"train.{key}", "needs a finite dataset (normal draws fresh samples every step)",
                 "give the length with train.iterations and train.eval_every")


# The model families with BatchNorm, whose running statistics vmap cannot update per copy, so
# train.population cannot train them; checked here, before torch is imported, so that a sweep's
# check of every job finds it (a test fails while this differs from the models' buffers).
WITH_RUNNING_STATISTICS = ("conv",)

# Lengths that can be given in iterations or in epochs (the MNIST recipes count in epochs, and
# epochs win when both are set).
_LENGTHS = (("train.iterations", "train.epochs"), ("train.eval_every", "train.eval_every_epochs"))


def count_as_given(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """A length given on the command line in iterations sets aside the config's length in
    epochs, so that `dataset=mnist train.iterations=60` trains 60 iterations instead of the
    recipe's epochs. Both given at once is a ConfigError. Returns a note per change, for the log."""
    given = {override.split("=", 1)[0].lstrip("+~") for override in overrides}
    notes = []
    for in_iterations, in_epochs in _LENGTHS:
        epochs = OmegaConf.select(cfg, in_epochs)
        if in_iterations not in given or not epochs:
            continue
        if in_epochs in given:
            raise ConfigError(f"{in_iterations} and {in_epochs}={epochs} are both given; give one of them "
                              f"(or {in_epochs}=0 to count in iterations)")
        OmegaConf.update(cfg, in_epochs, 0)
        notes.append(f"{in_iterations}={OmegaConf.select(cfg, in_iterations)} from the command line: "
                     f"counting in iterations, not the config's {in_epochs}={epochs}")
    debug = next((o.split("=", 1)[1] for o in overrides if o.startswith("debug=")), None)
    if debug and (kept := [key for pair in _LENGTHS for key in pair if key in given]):
        # (Hydra applies the command line after every config: debug=fast cannot override these)
        notes.append(f"debug={debug}, but {', '.join(f'{k}={OmegaConf.select(cfg, k)}' for k in kept)} from the "
                     f"command line {'applies' if len(kept) == 1 else 'apply'}: drop "
                     f"{'it' if len(kept) == 1 else 'them'} for debug={debug}'s short run")
    return notes
