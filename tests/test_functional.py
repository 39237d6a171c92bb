"""The fast paths compute what the plain loop computes: the fused iteration (compiled or not)
gives the plain loop's losses and weights, and a population of K gives K single runs."""

import json
import logging
import shutil
import statistics
from typing import Callable, NamedTuple

import pytest
import torch
from torch.torch_version import TorchVersion

from conftest import TINY, compiles_in_a_run, compose_cfg, read_events
from ganlab import checkpoint, distributed, functional, loop
from ganlab.config import ConfigError
from ganlab.distributed import Placement
from ganlab.models import noise_sampler
from ganlab.member import build_gan, build_members
from ganlab.run import COMPILES_WHOLE, train
from ganlab.streams import Together, stream
from ganlab.summary import collect

MNIST = ["dataset=mnist", "dataset.n_train=64", "dataset.eval_samples=16"]
CASES = {
    "1-D default (R1, EMA, linear schedule)": [],
    "1-D seed recipe": ["experiment=seed_normal"],
    "SGD Nesterov, hinge, weight decay, 2+2 steps": [
        "optimizer=sgd_nesterov", "train.loss=hinge", "optimizer.d.weight_decay=0.01",
        "train.d_steps=2", "train.g_steps=2", "train.r1_gamma=0"],
    "MNIST DCGAN (BatchNorm buffers, EMA)": [*MNIST, "model.width=8"],
}


# The fast paths are checked on every kind of device this machine has.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


class Trained(NamedTuple):
    history: torch.Tensor  # (iterations, statistics)
    weights: dict
    gan: loop.GAN
    fused: functional.FusedIteration | None  # None: the plain loop


def losses_and_weights(overrides, fused: bool, iterations: int = 5, device: str = "cpu",
                       meanwhile: Callable[[int], None] = lambda it: None) -> Trained:
    """Train `iterations` steps from the same start and streams, plain or fused (compiled with
    train.compile=true, which also decides the models' memory layout: the same for both paths);
    `meanwhile` runs after each iteration."""
    cfg = compose_cfg(["train.batch_size=4", *overrides])
    gan = build_gan(cfg, iterations=100, placement=Placement(torch.device(device)))
    data, noise_gen = stream(0, "data"), stream(0, "noise")
    from ganlab.data import build_sampler

    sampler, draw_noise = build_sampler(cfg.dataset, data), noise_sampler(cfg.model, cfg.dataset)
    real, noise = (lambda: sampler.sample(4).to(device)), (lambda: draw_noise(4, noise_gen).to(device))
    d, g = cfg.train.d_steps, cfg.train.g_steps
    fused_iteration = None
    if fused:
        fused_iteration = functional.FusedIteration([gan], compile=cfg.train.compile, cuda_graph=cfg.train.cuda_graph)
        one = lambda batch: lambda: batch()[None]  # noqa: E731  (a population of one)
        step = lambda: fused_iteration(*(x[0] for x in functional.draw(one(real), one(noise), d, g)))  # noqa: E731
    else:
        step = lambda: loop.iteration(gan, real, noise, d, g)  # noqa: E731
    history = []
    def record(it: int, stats: dict) -> None:
        history.append(torch.stack([stats[k] for k in sorted(stats)]))
        meanwhile(it)

    loop.train(step, gan.schedulers, 0, iterations, record)
    nets = {"G": gan.G, "D": gan.D, **({"G_ema": gan.ema.model} if gan.ema else {})}
    return Trained(torch.stack(history), {name: net.state_dict() for name, net in nets.items()}, gan, fused_iteration)


def assert_close_runs(a, b, tol: float = 1e-4):
    """Same losses and weights up to float rounding (summation order differs between the paths)."""
    torch.testing.assert_close(a.history, b.history, rtol=tol, atol=tol / 10)
    for name in a.weights:
        for key in a.weights[name]:
            torch.testing.assert_close(a.weights[name][key].float(), b.weights[name][key].float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_fused_iteration_matches_the_plain_loop(overrides, device):
    assert_close_runs(losses_and_weights(overrides, fused=False, device=device),
                      losses_and_weights(overrides, fused=True, device=device))


# The compiled MNIST iteration took 20-100 s to compile on CPUs: there it runs with -m slow.
# On a GPU, where Inductor's own choice of layout for the convolutions broke it
# (functional.compile_options), it always runs.
COMPILED_CASES = [
    pytest.param(device, overrides, id=f"{name}-{device}",
                 marks=pytest.mark.slow if device == "cpu" and name == "MNIST" else ())
    for device in DEVICES for name, overrides in (("1-D", []), ("MNIST", [*MNIST, "model.width=8"]))]


@pytest.mark.parametrize("device, overrides", COMPILED_CASES)
def test_compiled_iteration_matches_the_plain_loop(device, overrides):
    case = [*overrides, "train.compile=true"]
    plain = losses_and_weights(case, fused=False, iterations=8, device=device)
    compiled = losses_and_weights(case, fused=True, iterations=8, device=device)
    assert_close_runs(plain, compiled)
    if device == "cuda":  # iterations 4-8 were replays of one CUDA graph (train.cuda_graph)
        assert compiled.fused.step.graph is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_on_a_gpu_a_compiled_population_replays_one_cuda_graph_and_cuda_graph_false_turns_it_off(tmp_path):
    runs = {}
    for graph in (True, False):
        cfg = compose_cfg([*TINY, "train.population=2", "train.compile=true", "logger.tensorboard=false"])
        members = build_members(cfg, tmp_path / str(graph), Placement(torch.device("cuda")))
        fused = functional.FusedIteration([m.gan for m in members], compile=True, cuda_graph=graph)
        real, noise = Together([m.real for m in members]), Together([m.noise for m in members])
        runs[graph] = torch.stack([torch.stack(list(fused(*functional.draw(real, noise, 1, 1)).values()))
                                   for _ in range(6)])
        assert isinstance(fused.step, functional.GraphReplay) == graph
    torch.testing.assert_close(runs[True], runs[False], rtol=1e-4, atol=1e-5)


def test_the_compiled_iteration_runs_where_torch_cannot_skip_guards(monkeypatch):
    """torch before 2.6 has no set_stance: the guards then run, and the results are the same."""
    monkeypatch.delattr(torch.compiler, "set_stance", raising=False)  # (absent there already)
    plain = losses_and_weights(["train.compile=true"], fused=False, iterations=3)
    compiled = losses_and_weights(["train.compile=true"], fused=True, iterations=3)
    assert_close_runs(plain, compiled)


def test_an_older_torch_trains_the_plain_loop_and_says_why(tmp_path, caplog, monkeypatch):
    # torch 2.4.1's Dynamo broke the fused iteration into many small graphs: the book's 1-D preset
    # (compiled by its preset) ran 3x slower than the plain loop there.
    monkeypatch.setattr(torch, "__version__", TorchVersion("2.4.1"))
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg([*TINY, "experiment=seed_normal", "train.population=2"]), run_dir=tmp_path / "run")
    assert f"train.compile=true needs torch {COMPILES_WHOLE} or later (torch 2.4.1 breaks" in caplog.text
    assert "compiling the training iteration" not in caplog.text
    assert "add train.compile=true" not in caplog.text  # (the advice to eager vmap's copies)
    assert "compile: false" in (tmp_path / "run" / "seed_1" / "config.yaml").read_text()  # what it ran
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["iteration"] == 40


def bfloat16_here(device: str) -> bool:
    return torch.cuda.is_bf16_supported() if device == "cuda" else bool(distributed.cpu_has_native_bfloat16())


@pytest.mark.parametrize("compile", [False, True], ids=["fused", "compiled"])
@pytest.mark.parametrize("device", DEVICES)
def test_amp_computes_in_bfloat16_and_the_fast_paths_agree(device, compile):
    """train.amp=true: G and D really run in bfloat16 (on CPUs that have it), the losses stay near
    float32's, and the fused and compiled iterations give what the plain loop gives under amp."""
    if not bfloat16_here(device):
        pytest.skip(f"no native bfloat16 on this {device}: train.amp refuses it (tested below)")
    case = [*MNIST, "model.width=8", f"train.compile={str(compile).lower()}"]
    fp32 = losses_and_weights(case, fused=False, device=device)
    plain = losses_and_weights([*case, "train.amp=true"], fused=False, device=device)
    fast = losses_and_weights([*case, "train.amp=true"], fused=True, device=device)
    assert not torch.equal(plain.history, fp32.history)
    torch.testing.assert_close(plain.history, fp32.history, rtol=1e-2, atol=1e-2)
    assert_close_runs(plain, fast, tol=1e-3)  # bfloat16 rounds coarser than float32
    gan = plain.gan
    with torch.no_grad(), gan.autocast():
        assert gan.G.eval()(torch.randn(2, compose_cfg(case).model.z_dim, device=device)).dtype == torch.bfloat16


def test_amp_on_a_cpu_without_bfloat16_stops_with_one_line(monkeypatch):
    monkeypatch.setattr(distributed, "cpu_has_native_bfloat16", lambda: False)
    with pytest.raises(ConfigError, match=r"needs native bfloat16 .*which this CPU lacks; drop train.amp$"):
        build_gan(compose_cfg(["train.amp=true"]), iterations=10, placement=Placement(torch.device("cpu")))
    with pytest.raises(ConfigError, match=r"which this CPU lacks; drop train.amp$"):  # a sweep's check of each job
        distributed.check_machine("cpu", amp=True)
    distributed.check_machine("cpu", amp=False)


@compiles_in_a_run
def test_a_compiled_run_says_that_it_compiles_and_how_long_it_took(tmp_path, caplog):
    with caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg([*TINY, "train.iterations=2", "train.compile=true"]), run_dir=tmp_path)
    assert "compiling the training iteration" in caplog.text
    seconds = float(caplog.text.split("compiled in ")[1].split(" s")[0])
    assert seconds == pytest.approx(json.loads((tmp_path / "timing.json").read_text())["first_iteration_s"], abs=0.05)


@compiles_in_a_run
def test_compiled_runs_one_after_another_in_a_process_each_compile_their_own_iteration(tmp_path):
    """A sweep's jobs share a process (Hydra's basic launcher, Optuna's trials, joblib's workers).
    Dynamo kept every job's compiled versions of the one iteration function: past its limit of 8
    (1 here, so that the second job reaches it) it ran the next job eagerly, whose second
    iteration then failed ("Recompilation triggered with skip_guard_eval_unsafe stance")."""
    from torch._dynamo import config as dynamo_config

    limit = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    with dynamo_config.patch({limit: 1}):  # (torch's own patch: pytest 9.2's monkeypatch hid the setting on undo)
        for batch in (4, 8, 4):
            run = tmp_path / f"batch_{batch}"
            shutil.rmtree(run, ignore_errors=True)
            train(compose_cfg([*TINY, "train.iterations=3", "train.compile=true", f"train.batch_size={batch}"]),
                  run_dir=run)
            assert json.loads((run / "metrics.json").read_text())["final"]["iteration"] == 3


@compiles_in_a_run
def test_a_compiled_iteration_goes_on_correctly_after_another_is_compiled():
    """Compiling clears Dynamo's caches (above). An iteration compiled before, still in use, must
    check its guards again rather than skip them: with them skipped, it ran another's code."""
    def compile_another(it: int) -> None:
        if it == 2:
            losses_and_weights(["train.compile=true", "train.d_steps=2"], fused=True, iterations=1)

    plain = losses_and_weights(["train.compile=true"], fused=False, iterations=4)
    assert_close_runs(plain, losses_and_weights(["train.compile=true"], fused=True, iterations=4,
                                                meanwhile=compile_another))


@compiles_in_a_run
def test_without_a_cpp_compiler_a_compiled_run_trains_the_plain_loop_and_says_so(tmp_path, caplog):
    # A machine without g++ (a slim container): Inductor cannot build CPU kernels, and the first
    # iteration ended in its traceback, the book's 1-D preset (compiled by its preset) among them.
    from torch._inductor import config as inductor_config

    # (torch's own patch: pytest 9.2's monkeypatch deleted the setting on undo, and later runs found no compiler)
    with inductor_config.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++"))}), caplog.at_level("INFO", logger="ganlab"):
        train(compose_cfg([*TINY, "experiment=seed_normal", "train.device=cpu"]), run_dir=tmp_path / "run")
    assert "train.compile=true needs a C++ compiler on a CPU" in caplog.text
    assert "compiling the training iteration" not in caplog.text
    assert "compile: false" in (tmp_path / "run" / "config.yaml").read_text()  # what it ran
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["iteration"] == 40


def test_fused_optimizer_state_is_torch_optims_own():
    """A checkpoint of the fused path continues in the plain loop exactly as the plain loop would."""
    fused = losses_and_weights([], fused=True).gan
    plain = losses_and_weights([], fused=False).gan
    for opt_f, opt_p in ((fused.opt_d, plain.opt_d), (fused.opt_g, plain.opt_g)):
        sf, sp = opt_f.state_dict(), opt_p.state_dict()
        assert sf["param_groups"] == sp["param_groups"]
        for i in sp["state"]:
            assert sf["state"][i].keys() == sp["state"][i].keys()
            for key in sp["state"][i]:
                torch.testing.assert_close(sf["state"][i][key], sp["state"][i][key], rtol=1e-4, atol=1e-6)


def final(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["final"]


def test_a_population_is_k_single_runs_each_its_own_tensorboard_run(tmp_path, caplog):
    population = tmp_path / "population"
    with caplog.at_level(logging.INFO, logger="ganlab"):
        train(compose_cfg([*TINY, "train.population=3", "seed=5"]), run_dir=population)
    # eager vmap: the user hears of the faster way, where this torch has it
    assert ("add train.compile=true" in caplog.text) == (torch.__version__ >= COMPILES_WHOLE)
    for seed in (5, 6, 7):
        single = tmp_path / f"single_{seed}"
        train(compose_cfg([*TINY, f"seed={seed}"]), run_dir=single)
        copy = population / f"seed_{seed}"
        a, b = final(single), final(copy)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-4) for k in a)
        ours, theirs = read_events(copy), read_events(single)
        assert [e.step for e in ours.Scalars("loss/d")] == [e.step for e in theirs.Scalars("loss/d")]
        torch.testing.assert_close(torch.tensor([e.value for e in ours.Scalars("loss/g")]),
                                   torch.tensor([e.value for e in theirs.Scalars("loss/g")]), rtol=1e-3, atol=1e-4)
        assert ours.Tags()["images"] and ours.Tags()["histograms"]
        # Each copy's checkpoint holds only its own tensors, in the single-run format.
        state = checkpoint.load(copy / "checkpoints" / "last.pt")
        assert state["config"]["seed"] == seed and state["G"]["net.0.weight"].shape == (50, 1)
    summary = final(population)
    ks = [final(population / f"seed_{s}")["ks"] for s in (5, 6, 7)]
    assert summary["copies"] == 3 and summary["ks"] == pytest.approx(sum(ks) / 3)
    assert "| seed |" in (population / "summary.md").read_text()
    # Each copy keeps its own best.pt; the population's table says where each is from and what it scored
    copies = json.loads((population / "metrics.json").read_text())["copies"]
    for row in copies:
        best = json.loads((population / f"seed_{row['seed']}" / "metrics.json").read_text())["best"]
        assert (row["best_ks"], row["best_at"]) == (best["ks"], best["iteration"])
        assert checkpoint.load(population / f"seed_{row['seed']}" / "checkpoints" / "best.pt")["iteration"] == best["iteration"]
    assert "best_ks" in (population / "summary.md").read_text()
    # The spread over the copies at every evaluation: in metrics.json, and as a TensorBoard run
    # of its own (the mean among the copies' curves, mean ± std as a Custom Scalars band)
    histories = [json.loads((population / f"seed_{s}" / "metrics.json").read_text())["history"] for s in (5, 6, 7)]
    spread = json.loads((population / "metrics.json").read_text())["history"]
    assert [h["iteration"] for h in spread] == [h["iteration"] for h in histories[0]] == [20, 40]
    for at, entries in zip(spread, zip(*histories)):
        values = [e["ks"] for e in entries]
        assert at["copies"] == 3 and at["ks"] == pytest.approx(statistics.fmean(values))
        assert at["ks_std"] == pytest.approx(statistics.stdev(values))
    events = read_events(population / "population")
    assert [e.value for e in events.Scalars("eval/ks")] == pytest.approx([h["ks"] for h in spread])
    assert [e.value for e in events.Scalars("eval_band/ks_upper")] == pytest.approx(
        [h["ks"] + h["ks_std"] for h in spread])
    assert "custom_scalars__config__" in events.Tags()["tensors"]
    # experiments/summarize.py lists the copies, not their mean as one more run
    assert [row["run"] for row in collect(population)] == ["seed_5", "seed_6", "seed_7"]
    with pytest.raises(checkpoint.CheckpointError, match="holds a population.*seed_5"):
        checkpoint.last_in(population)  # generate.py run=POPULATION: the user hears to give one copy
    # The console's last line is the population's, not its first copy's
    assert "final: 3 copies (0 failed), iteration 40," in caplog.text
    assert f"ks {summary['ks']:.4g} ± {summary['ks_std']:.2g}" in caplog.text


def test_a_population_resumes_where_it_stopped(tmp_path):
    args = [*TINY, "train.population=2", "train.lr_schedule=constant", "train.g_ema=0.9"]
    train(compose_cfg([*args, "train.iterations=40"]), run_dir=tmp_path / "long")
    train(compose_cfg([*args, "train.iterations=20"]), run_dir=tmp_path / "short")
    checkpoint.check_resumable(tmp_path / "short")  # what train.py checks before Hydra starts
    single = [a for a in args if a != "train.population=2"]
    with pytest.raises(ConfigError, match="population of 2 copies .*train.population=2") as whole:
        train(compose_cfg([*single, f"resume={tmp_path / 'short'}"]))
    assert str(whole.value).endswith(f"or one copy with resume={tmp_path / 'short' / 'seed_0'} seed=0")
    with pytest.raises(checkpoint.CheckpointError, match=r"trained with seed=1 \(this command gives seed=0\), .*"
                       r"resume it with the command that started it plus resume=\S+ \(or add seed=1\), "
                       r"or start a new run"):
        train(compose_cfg([*single, f"resume={tmp_path / 'short' / 'seed_1'}"]))  # a copy needs its own seed
    with pytest.raises(ConfigError, match="single run, not a population"):
        train(compose_cfg([*args, f"resume={tmp_path / 'short' / 'seed_0'}"]))
    # Another number of copies, or other seeds: one more would find no checkpoint, and a
    # population of 3 resumed as 2 would train two copies on and leave the third behind.
    with pytest.raises(ConfigError, match=r"holds a population of 2 copies \(seed_0 to seed_1\), and this command "
                                          r"gives train.population=3 seed=0 \(seed_0 to seed_2\); resume it with "
                                          r"train.population=2 seed=0 \(more seeds: a new run from seed=2\)$"):
        train(compose_cfg([*single, "train.population=3", f"resume={tmp_path / 'short'}"]))
    with pytest.raises(ConfigError, match=r"gives train.population=2 seed=1 \(seed_1 to seed_2\)"):
        train(compose_cfg([*args, "seed=1", f"resume={tmp_path / 'short'}"]))
    train(compose_cfg([*args, "train.iterations=40", f"resume={tmp_path / 'short'}"]))
    for seed in (0, 1):
        a, b = final(tmp_path / "long" / f"seed_{seed}"), final(tmp_path / "short" / f"seed_{seed}")
        assert all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5) for k in a)
    # The population's own curve goes on where it stopped, one point an evaluation
    long, short = (json.loads((tmp_path / name / "metrics.json").read_text())["history"] for name in ("long", "short"))
    assert [h["iteration"] for h in short] == [h["iteration"] for h in long] == [20, 40]
    assert short[-1]["ks"] == pytest.approx(long[-1]["ks"], rel=1e-4, abs=1e-5)
    assert [e.step for e in read_events(tmp_path / "short" / "population").Scalars("eval/ks")] == [20, 40]


def test_a_resumed_population_leaves_out_the_copies_that_failed_before(tmp_path):
    args = [*TINY, "train.population=3", "train.lr_schedule=constant", "train.checkpoint_every=10"]
    train(compose_cfg([*args, "train.iterations=40"]), run_dir=tmp_path / "long")
    train(compose_cfg([*args, "train.iterations=20"]), run_dir=tmp_path / "short")
    # seed 1 as if it had diverged at iteration 15: marked failed, its last good checkpoint at 10
    failed = tmp_path / "short" / "seed_1"
    (failed / "failure.txt").write_text("diverged: (made up by the test)\n")
    (failed / "metrics.json").unlink()  # a copy that fails writes none
    shutil.copy(failed / "checkpoints" / "iter_00000010.pt", failed / "checkpoints" / "last.pt")
    kept = (failed / "checkpoints" / "last.pt").read_bytes()
    train(compose_cfg([*args, "train.iterations=40", f"resume={tmp_path / 'short'}"]))
    for seed in (0, 2):
        a, b = final(tmp_path / "long" / f"seed_{seed}"), final(tmp_path / "short" / f"seed_{seed}")
        assert all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5) for k in a)
    assert (failed / "checkpoints" / "last.pt").read_bytes() == kept and not (failed / "metrics.json").exists()
    summary = final(tmp_path / "short")
    assert (summary["copies"], summary["failed"]) == (2, 1)
    assert "Population of 3 seeds (1 failed)" in (tmp_path / "short" / "summary.md").read_text()
    history = json.loads((tmp_path / "short" / "metrics.json").read_text())["history"]
    assert [(h["iteration"], h["copies"]) for h in history] == [(20, 2), (40, 2)]


def test_a_population_resumes_past_a_copy_that_diverged_before_its_first_checkpoint(tmp_path):
    """Before, the resume stopped on that copy: "seed_2/checkpoints/last.pt: no checkpoint there"."""
    from ganlab.errors import Diverged

    args = [*TINY, "train.population=3", "train.lr_schedule=constant", "train.checkpoint_every=10"]
    population = tmp_path / "population"
    train(compose_cfg([*args, "train.iterations=20"]), run_dir=population)
    for seed in (2, 0, 1):  # seed 2 as if it had diverged at iteration 5, then (below) the others
        failed = population / f"seed_{seed}"
        (failed / "failure.txt").write_text("diverged: (made up by the test)\n")
        (failed / "metrics.json").unlink()  # a copy that fails writes none, and this one no checkpoint
        shutil.rmtree(failed / "checkpoints")
        if seed == 2:
            train(compose_cfg([*args, "train.iterations=40", f"resume={population}"]))
            summary = final(population)
            assert (summary["iteration"], summary["copies"], summary["failed"]) == (40, 2, 1)
            assert "Population of 3 seeds (1 failed)" in (population / "summary.md").read_text()
    # Every copy failed: a result, which a resume (a sweep's resume=auto among them) reports as such
    with pytest.raises(Diverged, match=r"ended in an earlier process \(every copy diverged: seed_0/failure.txt, "
                                       r"seed_1/failure.txt, seed_2/failure.txt\); resumed, it would repeat"):
        train(compose_cfg([*args, "train.iterations=60", f"resume={population}"]))


@pytest.mark.slow
def test_compiled_population_matches_single_runs(tmp_path):
    train(compose_cfg([*TINY, "train.population=2", "train.compile=true"]), run_dir=tmp_path / "population")
    for seed in (0, 1):
        train(compose_cfg([*TINY, f"seed={seed}"]), run_dir=tmp_path / f"single_{seed}")
        a, b = final(tmp_path / f"single_{seed}"), final(tmp_path / "population" / f"seed_{seed}")
        assert all(a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-4) for k in a)


def test_diverged_copies_are_marked_failed_and_the_run_says_so_when_all_are(tmp_path):
    from ganlab.errors import Diverged

    blow_up = ["train.r1_gamma=0", "train.lr_schedule=constant", "optimizer=sgd_nesterov", "optimizer.d.lr=1",
               "optimizer.g.lr=1", "train.loss=lsgan", "train.checkpoint_every=1", "train.iterations=200"]
    with pytest.raises(Diverged, match="every copy of the population diverged"):
        train(compose_cfg([*TINY, *blow_up, "train.population=2"]), run_dir=tmp_path / "population")
    # the population's too: a sweep's summary read it as "did not finish"
    assert (tmp_path / "population" / "failure.txt").read_text().startswith(
        "diverged: every copy of the population diverged")
    for seed in (0, 1):
        copy = tmp_path / "population" / f"seed_{seed}"
        assert (copy / "failure.txt").read_text().startswith("diverged: the losses became NaN or infinite")
        state = checkpoint.load(copy / "checkpoints" / "last.pt")  # the last good state, not NaN
        assert all(torch.isfinite(t).all() for t in state["G"].values())
