"""One GAN in training (a run, or one copy of a population), built from the config: its
networks and optimizers, data and noise streams, evaluator, TensorBoard run and checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ganlab import checkpoint, distributed, loop, provenance
from ganlab.checkpoint import CheckpointError
from ganlab.config import LOWER_IS_BETTER, NAMED_BY_SCHEMA, ConfigError, main_metric
from ganlab.data import build_sampler
from ganlab.distributed import Placement
from ganlab.errors import Diverged, UserError
from ganlab.files import write_json, write_text, written_whole
from ganlab.losses import build_loss
from ganlab.metrics import build_evaluator
from ganlab.models import build_models, noise_sampler, noise_size, sample_noise
from ganlab.optimizers import build_optimizer
from ganlab.overrides import as_typed
from ganlab.population import member_config
from ganlab.streams import Prefetched, chunk_for, stream
from ganlab.sweep import flat_hparams
from ganlab.tb_logger import TBLogger


def build_gan(cfg: DictConfig, iterations: int, placement: Placement = Placement(torch.device("cpu"))) -> loop.GAN:
    torch.manual_seed(stream(cfg.seed, "init").initial_seed())  # the same start on every rank
    # channels_last: the layout oneDNN's (and cuDNN's) convolutions run fastest in. Not for a
    # compiled iteration on a GPU, where Inductor mispredicts the strides of channels_last
    # convolutions' gradients (functional.compile_options).
    on_gpu_compiled = cfg.train.compile and placement.device.type == "cuda"
    layout = torch.channels_last if cfg.train.channels_last and not on_gpu_compiled else torch.contiguous_format
    G, D = (net.to(placement.device, memory_format=layout) for net in build_models(cfg.model, cfg.dataset))
    opt_g = build_optimizer(cfg.optimizer.g, G.parameters())
    opt_d = build_optimizer(cfg.optimizer.d, D.parameters())
    schedulers = []
    if cfg.train.lr_schedule == "linear":  # anneal to 0 at the last iteration
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lambda it: max(0.0, 1.0 - it / iterations))
                      for opt in (opt_g, opt_d)]
    return loop.GAN(
        G=G, D=D, opt_g=opt_g, opt_d=opt_d,
        loss=build_loss(cfg.train.loss),
        schedulers=schedulers,
        ema=loop.EMA(G, cfg.train.g_ema) if cfg.train.g_ema > 0 else None,
        r1_gamma=cfg.train.r1_gamma,
        autocast=distributed.autocast(placement, cfg.train.amp),
        ddp_G=distributed.wrap(G, placement), ddp_D=distributed.wrap(D, placement),
    )


def schedule(cfg: DictConfig, sampler) -> tuple[int, int]:
    """(iterations, eval_every) in iterations, from either iterations or epochs."""
    t = cfg.train
    finite = hasattr(sampler, "batches_per_epoch")  # MNIST; the normal draws are endless
    per_epoch = sampler.batches_per_epoch(t.batch_size) if finite else 0
    if finite and per_epoch == 0:  # (counted in iterations too: no batch can be drawn)
        raise ConfigError(f"train.batch_size={t.batch_size} is larger than the {len(sampler.data)} "
                          "training digits; lower it or use more data (dataset.n_train)")
    iterations = t.epochs * per_epoch if t.epochs else t.iterations
    eval_every = t.eval_every_epochs * per_epoch if t.eval_every_epochs else t.eval_every
    return iterations, eval_every


# What a resumed run's checkpoint holds, so that the command line cannot change it: a
# different value would be ignored (the optimizers' settings come back with their state) or
# would fail or mislead (another optimizer, schedule, model or data; the seed, whose random
# streams come back as they were).
HELD_BY_THE_CHECKPOINT = ("seed", "model.", "dataset.", "optimizer.", "train.lr_schedule")
# Changes not worth a word: the length, the progress bar, and where the same MNIST files are
USUAL_ON_RESUME = {"train.iterations", "train.epochs", "train.progress", "dataset.root", "dataset.download"}


def changes_on_resume(saved: dict, cfg: DictConfig, path: Path) -> list[str]:
    """What the command line changes of the settings a run trained with ("key: old -> new"; they
    apply from the resumed iteration on), refusing what its checkpoint holds, in one line."""
    before, now = flat_hparams(OmegaConf.create(saved)), flat_hparams(cfg)
    changed = [k for k in sorted(now) if k in before and before[k] != now[k] and k not in USUAL_ON_RESUME]
    held = [k for k in changed if k.startswith(HELD_BY_THE_CHECKPOINT)
            or k == "train.g_ema" and (before[k] == 0) != (now[k] == 0)]  # a weight average to start or drop
    if held:
        trained = ", ".join(f"{k}={before[k]}" for k in held)
        resumed = Path(cfg.resume)  # (a population's directory, where path is one of its copies)
        started = provenance.command_that_started(resumed)
        command = f", {started} (environment.json)," if started else ""
        # another dataset or model is chosen with its group (dataset=mnist), not given as a value
        add = "" if {f"{group}.name" for group in NAMED_BY_SCHEMA} & set(held) else f" (or add {trained})"
        raise CheckpointError(
            f"{path} trained with {trained} (this command gives {', '.join(f'{k}={now[k]}' for k in held)}), which "
            "a resumed run keeps: its checkpoint holds the model and data, the optimizers' settings and state, the "
            "learning-rate schedule, G's weight average and the random streams; resume it with the command that "
            f"started it{command} plus {as_typed('resume', str(resumed))}{add}, or start a new run")
    return [f"{k}: {before[k]} -> {now[k]}" for k in changed]


class Member:
    """One GAN in training with everything that is its own: data and noise streams, evaluator,
    TensorBoard run, checkpoints and history. A run trains one; train.population=K trains K
    (seeds seed .. seed+K-1) side by side, each in a subdirectory that is a complete run."""

    def __init__(self, cfg: DictConfig, run_dir: Path, placement: Placement):
        self.cfg, self.run_dir, self.main, self.failed = cfg, run_dir, placement.is_main, False
        self.config_dict = OmegaConf.to_container(cfg, resolve=True)  # what every checkpoint records
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)  # config.yaml, and TensorBoard's Text tab
        saved = checkpoint.load(checkpoint.last_in(run_dir)) if cfg.resume else None
        self.changed = changes_on_resume(saved["config"], cfg, run_dir) if saved else []
        # A plain dataclass copy of the train settings: read every iteration, and OmegaConf's
        # attribute access costs tens of microseconds, more than a 1-D GAN step.
        self.t = t = OmegaConf.to_object(cfg.train)
        device = placement.device
        data_gen, noise_gen = (stream(cfg.seed, s, placement.rank) for s in ("data", "noise"))
        eval_gen = stream(cfg.seed, "eval")
        self.sampler = sampler = build_sampler(cfg.dataset, data_gen)
        self.iterations, self.eval_every = schedule(cfg, self.sampler)
        planned = schedule(OmegaConf.create(saved["config"]), sampler)[0] if saved else self.iterations
        if t.lr_schedule == "linear" and planned != self.iterations:  # (the schedule reads the new length)
            self.changed.append(f"length: {planned} -> {self.iterations} iterations (train.lr_schedule=linear: from "
                                f"here on the learning rates are those of a run of {self.iterations} iterations, "
                                "annealed to 0 at its end)")
        try:  # config.yaml: what this process trains with (a resume that has nothing left to train keeps the run's)
            if self.main and not (saved and saved["iteration"] >= self.iterations):
                run_dir.mkdir(parents=True, exist_ok=True)
                write_text(run_dir / "config.yaml", self.config_yaml)
        except OSError as error:
            raise UserError(f"cannot write to the run directory {run_dir} ({error.strerror}); "
                            "choose another with hydra.run.dir=DIR") from None
        self.gan = build_gan(cfg, self.iterations, placement)
        n_eval = cfg.dataset.eval_samples
        self.evaluator = build_evaluator(cfg.dataset, self.sampler.reference(n_eval, eval_gen).to(device),
                                         sample_noise(cfg.model, cfg.dataset, n_eval, eval_gen).to(device))
        # real() and noise(): the next batch of each stream, drawn some batches at a time
        batch, draw_noise = t.batch_size, noise_sampler(cfg.model, cfg.dataset)
        self.real = Prefetched(lambda n: sampler.sample(n).to(device, non_blocking=True), batch,
                               sampler.chunk(batch), data_gen, (sampler.state_dict, sampler.load_state_dict))
        self.noise = Prefetched(lambda n: draw_noise(n, noise_gen).to(device, non_blocking=True), batch,
                                chunk_for(batch * noise_size(cfg.model, cfg.dataset)), noise_gen)
        self.history: list[dict] = []
        self.losses: list[torch.Tensor] = []
        self.start = 0
        if saved:
            self.start = self.restore(saved, placement.rank)
        # purge_step drops the events a killed run logged after its last checkpoint (steps > start):
        # TensorBoard shows one unbroken curve.
        self.logger = TBLogger(run_dir, enabled=cfg.logger.tensorboard and self.main,
                               purge_step=self.start + 1 if self.start else None,
                               image_dir=run_dir / "images" if cfg.logger.save_images and self.main else None)
        self.last_checked = self.start  # the last iteration known to have finite losses
        self.unsaved_best: dict | None = None  # best.pt's content, written with the next checkpoint
        self.seconds = {"eval_log": 0.0, "checkpoint": 0.0}

    def describe_in_tensorboard(self, environment: dict) -> None:
        """TensorBoard's Text tab, at the iteration this process starts from: what it runs on
        (provenance.environment) and the run's config."""
        config = "".join(f"    {line}\n" for line in self.config_yaml.splitlines())
        self.logger.text({"run": f"{provenance.markdown(environment)}\n{config}"}, self.start)
        self.logger.flush()

    def plan(self, it: int, stop_requested: bool = False) -> tuple[bool, bool, bool]:
        """(log, evaluate, save) at iteration `it`; the same for every copy of a population."""
        t, last = self.t, it == self.iterations
        return (it % t.log_every == 0 or last, self.main and (it % self.eval_every == 0 or last),
                self.main and (it % t.checkpoint_every == 0 or last or stop_requested))

    def check_finite(self, it: int, stats: dict[str, torch.Tensor], finite: bool) -> None:
        """Stop before a NaN can reach a checkpoint."""
        if not finite:
            self.failed = True
            losses = ", ".join(f"{net.upper()} {stats[f'loss/{net}'].item():.4g}" for net in ("d", "g"))
            when = (f"at iteration {it}" if it == self.last_checked + 1
                    else f"between iterations {self.last_checked + 1} and {it}")
            last = self.run_dir / "checkpoints" / checkpoint.LAST
            self.logger.hparams(flat_hparams(self.cfg), self.best_score(), failed=True)  # the HParams tab lists it
            kept = (f"{last} keeps the last good state, for generate.py" if last.exists()
                    else "no checkpoint was due before it (train.checkpoint_every)")
            # (not "resume it": a resumed run repeats the same steps, bit for bit, and the optimizers' settings
            # are the checkpoint's)
            raise Diverged(f"the losses became NaN or infinite {when} (now {losses}); {kept}; start a new run with "
                           "lower learning rates or train.r1_gamma")
        self.last_checked = it

    def after(self, it: int, stats: dict[str, torch.Tensor], finite: bool, stop_requested: bool = False) -> None:
        """What is due at iteration `it`: NaN guard, logs, evaluation, checkpoint. `finite`: no
        loss was NaN or infinite since the last call."""
        log_now, eval_now, save_now = self.plan(it, stop_requested)
        self.check_finite(it, stats, finite)
        t0 = time.perf_counter()
        if log_now:
            self.logger.scalars({k: v.item() for k, v in stats.items()} | self.learning_rates(), it)
        if eval_now:
            evaluation = self.evaluator(self.gan.sampler)
            self.history.append({"iteration": it, **evaluation.scalars})
            self.logger.scalars({f"eval/{k}": v for k, v in evaluation.scalars.items()}, it)
            self.logger.histograms(evaluation.histograms, it)
            self.logger.images(evaluation.images, it)
            if self.t.keep_best and self.best() is self.history[-1]:
                self.unsaved_best = self.generator_state(it, copy=True)
        if log_now or eval_now:
            self.logger.flush()  # a TensorBoard reading along sees them now
        t1 = time.perf_counter()
        if save_now:
            # best.pt goes with last.pt, so it never holds an evaluation a resumed run retrains
            if self.unsaved_best:
                checkpoint.save_atomic(self.unsaved_best, self.run_dir / "checkpoints", name=checkpoint.BEST)
                self.unsaved_best = None
            checkpoint.save_atomic(self.state(it), self.run_dir / "checkpoints", keep=self.t.keep_checkpoints)
        self.seconds["eval_log"] += t1 - t0
        self.seconds["checkpoint"] += time.perf_counter() - t1

    def learning_rates(self) -> dict[str, float]:
        """The rates the next updates use (train.lr_schedule moves them)."""
        return {f"lr/{net}": opt.param_groups[0]["lr"] for net, opt in (("d", self.gan.opt_d), ("g", self.gan.opt_g))}

    def best(self) -> dict:
        """The evaluation with the best optimized_metric so far (the earliest of equals)."""
        metric = main_metric(self.cfg)
        sign = 1 if metric in LOWER_IS_BETTER else -1
        return min(self.history, key=lambda evaluation: sign * evaluation[metric])

    def best_score(self) -> dict[str, float]:
        """TensorBoard's best/<optimized_metric> (HParams): the best evaluation's score so far."""
        metric = main_metric(self.cfg)
        return {f"best/{metric}": self.best()[metric]} if self.t.keep_best and self.history else {}

    def finish(self, wall: float | None, first_iteration_s: float | None, startup_s: float | None,
               placement: Placement) -> dict:
        """Write the final metrics, timing (of a process that trained: `wall` not None) and
        (optionally) losses and weights; return the final metrics."""
        final = self.history[-1]
        scores = {f"final/{k}": v for k, v in final.items() if k != "iteration"}
        self.logger.hparams(flat_hparams(self.cfg), scores | self.best_score())
        self.logger.close()
        write_json(self.run_dir / "metrics.json", {"final": final, "best": self.best(), "history": self.history})
        if wall is not None:
            self.write_timing(wall, first_iteration_s, startup_s, placement)
        if self.t.save_losses and self.losses:
            rows = torch.stack(self.losses).tolist()
            write_text(self.run_dir / "losses.csv",
                "iteration,d_loss,g_loss\n" + "".join(f"{i + 1},{d},{g}\n" for i, (d, g) in enumerate(rows)))
        if self.t.save_weights:
            for name, net in (("generator.pt", self.gan.G), ("discriminator.pt", self.gan.D)):
                with written_whole(self.run_dir / name) as f:
                    torch.save(net.state_dict(), f)
        return final

    def write_timing(self, wall: float, first_iteration_s: float | None, startup_s: float | None,
                     placement: Placement) -> None:
        iterations = self.iterations - self.start
        write_json(self.run_dir / "timing.json", {
            "wall_time_s": wall, "first_iteration_s": first_iteration_s, "startup_s": startup_s,
            "iterations": iterations, "iterations_per_s": iterations / wall,
            "eval_log_s": self.seconds["eval_log"], "checkpoint_s": self.seconds["checkpoint"],
            "threads": torch.get_num_threads(), "world_size": placement.world,
            "population": self.cfg.train.population, "compile": self.t.compile,
            "device": str(placement.device)})

    def generator_state(self, it: int, copy: bool = False) -> dict:
        """What sampling needs (best.pt, and generate.py reads no more of last.pt); `copy`: of
        the weights as they are now, which training then leaves alone."""
        def weights(net: torch.nn.Module) -> dict:
            return {k: v.clone() for k, v in net.state_dict().items()} if copy else net.state_dict()

        gan = self.gan
        return {
            "format": checkpoint.FORMAT,
            "iteration": it,
            "G": weights(gan.G),
            "G_ema": weights(gan.ema.model) if gan.ema else None,
            "config": self.config_dict,
        }

    def state(self, it: int) -> dict:
        """Everything needed to continue exactly: networks, optimizers, schedules, random states."""
        gan = self.gan
        return self.generator_state(it) | {
            "D": gan.D.state_dict(),
            "ema_updates": gan.ema.updates if gan.ema else 0,
            "opt_g": gan.opt_g.state_dict(), "opt_d": gan.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in gan.schedulers],
            "rng": {"torch": torch.get_rng_state(), "noise": self.noise.state_dict()},
            "data": self.real.state_dict(),
            "history": self.history,
            "losses": torch.stack(self.losses) if self.losses else torch.zeros(0, 2),
        }

    def restore(self, state: dict, rank: int = 0) -> int:
        """Load a checkpoint (what state() saved) into freshly built objects; return the
        iteration to continue from.

        The checkpoint holds rank 0's random streams. Under torchrun the other ranks start fresh
        streams of their own (seeded by rank and iteration), so they keep drawing different data.
        """
        gan, real, noise = self.gan, self.real, self.noise
        gan.G.load_state_dict(state["G"])
        gan.D.load_state_dict(state["D"])
        if gan.ema is not None and state["G_ema"] is not None:
            gan.ema.model.load_state_dict(state["G_ema"])
            gan.ema.updates = state["ema_updates"]
        gan.opt_g.load_state_dict(state["opt_g"])
        gan.opt_d.load_state_dict(state["opt_d"])
        for scheduler, saved in zip(gan.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
            # The rates now, by this run's schedule: the saved ones, unless its length changed.
            for group, base, rate in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * rate(scheduler.last_epoch)
        torch.set_rng_state(state["rng"]["torch"])
        self.history, self.losses = state["history"], list(state["losses"])
        if rank == 0:
            noise.load_state_dict(state["rng"]["noise"])
            real.load_state_dict(state["data"])
        else:
            noise.reseed(state["iteration"])
            real.reseed(state["iteration"])
        return state["iteration"]


def build_members(cfg: DictConfig, run_dir: Path, placement: Placement,
                  left_out: tuple[int, ...] | list[int] = ()) -> list[Member]:
    """The run's one GAN, or a population's copies, each a run in run_dir/seed_N (less the seeds
    `left_out`: when a population resumes, the copies that failed before stay as they ended)."""
    if cfg.train.population == 1:
        return [Member(cfg, run_dir, placement)]
    return [Member(member_config(cfg, seed), run_dir / f"seed_{seed}", placement)
            for seed in range(cfg.seed, cfg.seed + cfg.train.population) if seed not in left_out]
