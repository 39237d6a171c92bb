"""MNIST through the real IDX loader, the shipped subset, the conv GANs and the digit metrics."""

import gzip
import hashlib
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MNIST_TINY, ROOT, TINY, read_events, run_cli
from ganlab.config import ConfigError
from ganlab.data import mnist
from ganlab.data.mnist import DataError, load_mnist, write_idx
from ganlab.generate import load_generator, main as generate_main, walks

SHARED_CSV = ROOT.parent / "shared" / "data" / "mnist_5k.csv.gz"


@pytest.fixture(scope="module")
def digits():
    """300 real digits and labels from the shared CSV (the source of the shipped subset), or
    from the shipped subset itself where the CSV is not beside the checkout."""
    if not SHARED_CSV.exists():
        images, labels, _ = load_mnist(None)
        return images[:300], labels[:300]
    rows = np.loadtxt(gzip.open(SHARED_CSV), delimiter=",", dtype=np.int64, max_rows=300)
    return rows[:, :784].reshape(-1, 28, 28).astype(np.uint8), rows[:, 784].astype(np.uint8)


def write_mnist(root, images, labels, suffix=".gz"):
    root.mkdir(parents=True, exist_ok=True)
    write_idx(images, root / f"train-images-idx3-ubyte{suffix}")
    write_idx(labels, root / f"train-labels-idx1-ubyte{suffix}")
    return root


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_files_load_through_the_real_loader(tmp_path, digits, suffix):
    images, labels = digits
    root = write_mnist(tmp_path / "mnist", images, labels, suffix)
    got_images, got_labels, source = load_mnist(str(root))
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert source.endswith("train-images-idx3-ubyte" + suffix)
    # the same files as some copies of MNIST name them (it said "no train-images-idx3-ubyte[.gz] found")
    for file in root.iterdir():
        file.rename(file.with_name(file.name.replace("-idx", ".idx")))
    got_images, got_labels, source = load_mnist(str(root))
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert source.endswith("train-images.idx3-ubyte" + suffix)


def test_shipped_subset_is_real_mnist():
    images, labels, source = load_mnist(None)
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert "mnist_subset" in source


def test_asking_for_more_digits_than_there_are_says_so(caplog):
    from omegaconf import OmegaConf

    from ganlab.data import build_sampler

    dataset = OmegaConf.create({"name": "mnist", "root": None, "download": False, "n_train": 60000, "shuffle": True,
                                "eval_samples": 2000})
    with caplog.at_level("INFO", logger="ganlab"):
        sampler = build_sampler(dataset, torch.Generator())
    assert len(sampler.data) == 5000
    assert "dataset.n_train=60000 asks for more digits than" in caplog.text and "all 5000 are used" in caplog.text
    assert "eval_samples" not in caplog.text
    # an evaluation's real digits are drawn from the training digits: no more than there are (it said nothing)
    dataset.update(n_train=100, eval_samples=150)
    with caplog.at_level("INFO", logger="ganlab"):
        assert len(build_sampler(dataset, torch.Generator()).reference(150, torch.Generator())) == 100
    assert "dataset.eval_samples=150 is more than the 100 training digits: each evaluation compares its generated " \
           "digits with all of them" in caplog.text


def corrupt(root, images, labels, case):
    name = root / "train-images-idx3-ubyte.gz"
    if case == "truncated":
        raw = gzip.decompress(name.read_bytes())
        name.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif case == "bad magic":
        name.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + b"\0" * 100))
    elif case == "not gzip":
        name.write_bytes(b"this is not a gzip file")
    elif case == "wrong size":
        write_idx(images[:, :20, :20], name)
    elif case == "label count":
        write_idx(labels[:10], root / "train-labels-idx1-ubyte.gz")
    elif case == "missing":
        (root / "train-labels-idx1-ubyte.gz").unlink()
    elif case == "header too short":
        name.write_bytes(gzip.compress(b"\0\0\x08\x03\0\0"))
    elif case == "a folder":  # where the file should be (it read "cannot be read as gzip (...Is a directory)")
        name.unlink()
        (root / "train-images-idx3-ubyte").mkdir()
        return root / "train-images-idx3-ubyte"
    return name



@pytest.mark.parametrize("length", [["train.epochs=1"], ["train.epochs=0", "train.eval_every_epochs=0"]],
                         ids=["epochs", "iterations"])
def test_a_batch_larger_than_the_data_is_one_line_however_the_length_is_given(train_tiny, tmp_path, digits, length):
    # Counted in iterations (debug=fast, say), it ended in a RuntimeError traceback from the data stream.
    # (A dataset.n_train below the batch is refused by the config's check; here the files hold 10 digits.)
    root = write_mnist(tmp_path / "ten", digits[0][:10], digits[1][:10])
    with pytest.raises(ConfigError, match=r"^train.batch_size=16 is larger than the 10 training digits; lower it"):
        train_tiny(*TINY, "dataset=mnist", f"dataset.root={root}", "train.batch_size=16", *length)


@pytest.mark.parametrize("case,words", [
    ("truncated", "truncated"), ("bad magic", "not an IDX file"), ("not gzip", "gzip"),
    ("wrong size", "not 28 x 28"), ("label count", "do not belong together"),
    ("missing", "no train-labels-idx1-ubyte"), ("header too short", "truncated IDX header"),
    ("a folder", r"cannot be read \(Is a directory\); it should be the MNIST file itself"),
])
def test_bad_data_files_name_the_file_and_the_problem(tmp_path, digits, case, words):
    root = write_mnist(tmp_path / "mnist", *digits)
    corrupt(root, *digits, case)
    with pytest.raises(DataError, match=words) as info:
        load_mnist(str(root))
    assert str(root) in str(info.value)
    if case in ("truncated", "not gzip", "header too short"):  # download=true fetches only a missing file
        assert str(info.value).endswith("delete it and run with dataset.download=true, or copy it there again")


def test_bad_data_files_stop_train_py_with_one_line(tmp_path, digits):
    root = write_mnist(tmp_path / "mnist", *digits)
    corrupt(root, *digits, "truncated")
    result = run_cli("dataset=mnist", f"dataset.root={root}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte.gz" in lines[0] and "truncated" in lines[0]


def test_relative_paths_mean_where_the_command_was_typed_with_hydra_job_chdir(tmp_path, digits):
    # hydra.job.chdir=true (Hydra's default before 1.2) runs the job inside its run directory;
    # dataset.root= and resume= still name what they named in the folder the command ran in.
    write_mnist(tmp_path / "idx", *digits)
    args = [*MNIST_TINY, "dataset.n_train=200", "dataset.root=idx", "hydra.job.chdir=true"]
    first = run_cli(*args, "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "train-images-idx3-ubyte.gz" in (tmp_path / "run" / "train.log").read_text()
    again = run_cli(*args, "train.iterations=60", "resume=run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["iteration"] == 60


def test_a_download_folder_that_cannot_be_made_is_one_line_naming_dataset_root(tmp_path):
    # It got Hydra's "Error executing job" line, then "cannot write ...; choose a writable directory
    # with hydra.run.dir=DIR": the wrong setting.
    (tmp_path / "a_file").write_text("")
    root = tmp_path / "a_file" / "mnist"
    result = run_cli(*MNIST_TINY, f"dataset.root={root}", "dataset.download=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ganlab: error: {root}: cannot make this folder to download MNIST into (Not a directory); "
        "set dataset.root to a folder you can write"]


def test_download_checks_the_checksum_before_keeping_a_file(tmp_path, digits, monkeypatch):
    mirror = write_mnist(tmp_path / "mirror", *digits)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    monkeypatch.setattr(mnist, "MIRRORS", (mirror.as_uri() + "/",))
    monkeypatch.setattr(mnist, "MD5", {**md5, "train-images-idx3-ubyte.gz": "0" * 32})
    with pytest.raises(DataError, match="valid checksum .*: checksum mismatch, file discarded"):
        load_mnist(str(tmp_path / "bad"), download_missing=True)
    assert not (tmp_path / "bad" / "train-images-idx3-ubyte.gz").exists()

    monkeypatch.setattr(mnist, "MD5", md5)
    images, labels, _ = load_mnist(str(tmp_path / "good"), download_missing=True)
    assert np.array_equal(images, digits[0])


def test_mnist_run_logs_digit_grids_and_metrics(train_tiny):
    run_dir = train_tiny(*MNIST_TINY, "model=mnist")
    events = read_events(run_dir)
    assert "samples" in events.Tags()["images"]
    assert {"loss/d", "loss/g", "d_out/real", "eval/fd", "eval/score", "eval/coverage",
            "eval/class_kl"} <= set(events.Tags()["scalars"])
    assert {"real", "generated", "noise"} <= set(events.Tags()["histograms"])
    assert sorted(p.name for p in (run_dir / "images" / "samples").iterdir()) == \
        ["00000020.png", "00000040.png"]
    saved = Image.open(run_dir / "images" / "samples" / "00000040.png")
    logged = Image.open(io.BytesIO(events.Images("samples")[-1].encoded_image_string))
    assert saved.mode == logged.mode == "L" and saved.size == logged.size  # one grey PNG for both
    assert np.array_equal(np.asarray(saved), np.asarray(logged))
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert {"fd", "score", "coverage", "class_kl"} <= set(final)


def test_iterations_on_the_command_line_override_the_recipes_epochs(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("dataset=mnist", "train.iterations=3", "train.eval_every=3", "dataset.n_train=64",
                     "dataset.eval_samples=32", "train.progress=false", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "counting in iterations, not the config's train.epochs=40" in (run_dir / "train.log").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["iteration"] for h in metrics["history"]] == [3]


def test_seed_mnist_preset_runs_in_epochs_and_saves_losses_and_weights(train_tiny):
    run_dir = train_tiny("experiment=seed_mnist", *TINY, "dataset.n_train=64",
                         "dataset.eval_samples=16", "train.batch_size=16", "train.epochs=2",
                         "train.eval_every_epochs=1")
    timing = json.loads((run_dir / "timing.json").read_text())
    assert timing["iterations"] == 8  # 2 epochs x 64 // 16
    assert 0 < timing["first_iteration_s"] < timing["wall_time_s"]
    losses = (run_dir / "losses.csv").read_text().splitlines()
    assert losses[0] == "iteration,d_loss,g_loss" and len(losses) == 9
    assert (run_dir / "generator.pt").exists() and (run_dir / "discriminator.pt").exists()
    assert len(json.loads((run_dir / "metrics.json").read_text())["history"]) == 2


def test_generate_writes_the_same_samples_for_the_same_seed(train_tiny, tmp_path):
    runs = {"mnist": train_tiny(*MNIST_TINY, "model=mnist", name="m"), "normal": train_tiny(name="n")}
    for name, run_dir in runs.items():
        outs = []
        for i, seed in enumerate((7, 7, 8)):
            out = tmp_path / f"{name}{i}"
            result = run_cli(f"run={run_dir}", "num_samples=10", f"seed={seed}",
                             f"out={out}", script="generate.py")
            assert result.returncode == 0, result.stderr
            assert out.with_suffix(".png").exists()
            outs.append(np.load(out.with_suffix(".npy")))
        if name == "mnist":
            assert outs[0].shape == (10, 28, 28) and outs[0].dtype == np.uint8
        else:
            assert outs[0].shape == (10,) and outs[0].dtype == np.float32
        assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_the_readmes_python_sampling_gives_the_digits_generate_writes(train_tiny, tmp_path, monkeypatch):
    """The snippet under "Sampling from a run", run as written in a run's parent directory."""
    section = (ROOT / "README.md").read_text().split("## Sampling from a run")[1].split("\n## ")[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    work = tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    train_tiny(*MNIST_TINY, "model=mnist", name="digits").rename(work / "runs" / "digits")
    monkeypatch.chdir(work)
    names: dict = {}
    exec(snippet, names)  # noqa: S102  (our own README)
    result = run_cli("run=runs/digits", "checkpoint=best", "num_samples=16", "seed=0", f"out={tmp_path / 'g'}",
                     script="generate.py", cwd=work)
    assert result.returncode == 0, result.stderr
    from ganlab.generate import to_uint8

    assert names["digits"].shape == (16, 1, 28, 28)
    assert np.array_equal(to_uint8(names["digits"]), np.load(tmp_path / "g.npy"))


def test_generate_samples_the_best_evaluation_with_checkpoint_best(train_tiny, tmp_path):
    # At these rates the seed's ReLU D overshoots: KS falls, then rises before iteration 40
    run_dir = train_tiny("optimizer.g.lr=0.02", "optimizer.d.lr=0.02", "model.d_negative_slope=0",
                         "train.eval_every=5", name="b")
    best = json.loads((run_dir / "metrics.json").read_text())["best"]["iteration"]
    samples = {}
    for which in ("last", "best"):
        out = tmp_path / which
        result = run_cli(f"run={run_dir}", f"checkpoint={which}", f"out={out}", script="generate.py")
        assert result.returncode == 0, result.stderr
        samples[which] = np.load(out.with_suffix(".npy"))
    assert best < 40 and not np.array_equal(samples["last"], samples["best"])
    # The numbered checkpoints (train.checkpoint_every=20, the newest two kept): G as it was then
    for which in ("iter_20", "iter_40"):
        out = tmp_path / which
        result = run_cli(f"run={run_dir}", f"checkpoint={which}", f"out={out}", script="generate.py")
        assert result.returncode == 0, result.stderr
        samples[which] = np.load(out.with_suffix(".npy"))
    assert np.array_equal(samples["iter_40"], samples["last"]) and not np.array_equal(samples["iter_20"], samples["last"])
    result = run_cli(f"run={run_dir}", "checkpoint=iter_7", script="generate.py")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no checkpoint of iteration 7 (kept: iter_20, iter_40;" in result.stderr
    no_best = train_tiny("train.keep_best=false", "train.keep_checkpoints=0", name="no_best")
    result = run_cli(f"run={no_best}", "checkpoint=best", script="generate.py")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no best checkpoint" in result.stderr and "use checkpoint=last" in result.stderr
    result = run_cli(f"run={no_best}", "checkpoint=iter_20", script="generate.py")  # (it said "use one of those")
    assert result.stderr.strip().endswith("(kept: none; train.keep_checkpoints decides how many); use checkpoint=last")


@pytest.mark.parametrize("model, spherical", [("mnist", True), ("mnist_seed", False)])  # normal and uniform noise
def test_generate_walks_from_one_noise_vector_to_another(train_tiny, tmp_path, model, spherical):
    run_dir = train_tiny(*MNIST_TINY, f"model={model}", "train.iterations=10", "train.eval_every=10", name="m")
    generate_main([f"run={run_dir}", "num_samples=3", "seed=4", "walk=6", f"out={tmp_path / 'walk'}"])
    generate_main([f"run={run_dir}", "num_samples=3", "seed=4", f"out={tmp_path / 'samples'}"])
    walk, samples = np.load(tmp_path / "walk.npy"), np.load(tmp_path / "samples.npy")
    assert walk.shape == (3, 6, 28, 28) and walk.dtype == np.uint8
    assert np.array_equal(walk[:, 0], samples)  # each walk starts at the sample its seed draws first
    assert Image.open(tmp_path / "walk.png").size == (6 * 30 + 2, 3 * 30 + 2)  # a row a walk
    # The path: both ends exactly; between vectors of one length, normal noise's keeps that length
    # (the great circle), where the straight line would cut through shorter vectors
    start, end = torch.randn(2, 5, 10, generator=torch.Generator().manual_seed(0))
    start, end = (torch.nn.functional.normalize(z, dim=-1) * 3 for z in (start, end))
    path = walks(start, end, 7, spherical)
    torch.testing.assert_close(path[:, 0], start)
    torch.testing.assert_close(path[:, -1], end)
    if spherical:
        torch.testing.assert_close(path.norm(dim=-1), torch.full((5, 7), 3.0))
    else:
        torch.testing.assert_close(path[:, 3], (start + end) / 2)


def test_many_digits_go_to_the_npy_and_the_first_1024_to_the_picture(train_tiny, tmp_path, capsys):
    run_dir = train_tiny(*MNIST_TINY, "model=mnist", "train.iterations=2", "train.eval_every=2", name="m")
    generate_main([f"run={run_dir}", "num_samples=1100", f"out={tmp_path / 'many'}"])
    generate_main([f"run={run_dir}", "num_samples=30", "walk=100", f"out={tmp_path / 'walks'}"])
    said = capsys.readouterr().out.splitlines()
    assert np.load(tmp_path / "many.npy").shape == (1100, 28, 28)
    assert Image.open(tmp_path / "many.png").size == (32 * 30 + 2, 32 * 30 + 2)  # 1,024 digits
    assert said[0].endswith("(the picture: the first 1024 of the 1100 digits)")
    assert np.load(tmp_path / "walks.npy").shape == (30, 100, 28, 28)
    assert Image.open(tmp_path / "walks.png").size == (100 * 30 + 2, 10 * 30 + 2)  # 10 walks of 100
    assert said[1].endswith("(the picture: the first 10 of the 30 walks)")


def test_a_1d_walk_is_gs_map_from_its_noise_next_to_the_targets_quantiles(train_tiny, tmp_path, monkeypatch):
    run_dir = train_tiny(name="ラン 1")  # named in the picture's title, which the bitmap font cannot draw whole
    generate_main([f"run='{run_dir}'", "walk=50", f"out={tmp_path / 'map'}"])
    u, x = np.load(tmp_path / "map.npy")
    assert np.allclose(u, (np.arange(50) + 0.5) / 50)
    _, G = load_generator(run_dir)
    with torch.inference_mode():
        torch.testing.assert_close(torch.from_numpy(x), G(torch.from_numpy(u)[None]).flatten())
    assert Image.open(tmp_path / "map.png").size == (640, 400)
    generate_main([f"run='{run_dir}'", "num_samples=500", f"out={tmp_path / 'samples'}"])  # its histogram
    assert Image.open(tmp_path / "samples.png").size == (640, 400)
    # out=OUT writes OUT.npy and OUT.png, a dot in OUT too (run1.best wrote run1.npy and run1.png); out=x.npy: x.*
    for out, written in (("run1.best", "run1.best"), ("x.npy", "x"), ("y.png", "y")):
        generate_main([f"run='{run_dir}'", "num_samples=5", f"out={tmp_path / 'outs' / out}"])
        assert np.load(tmp_path / "outs" / f"{written}.npy").shape == (5,)
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == [
        "run1.best.npy", "run1.best.png", "x.npy", "x.png", "y.npy", "y.png"]
    # out=~/x as zsh passes it on, unexpanded: into the home directory (it made a folder named ~ here)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    generate_main([f"run='{run_dir}'", "num_samples=5", "out=~/x"])
    assert (tmp_path / "home" / "x.npy").exists() and not (tmp_path / "~").exists()


def test_recalibrate_batchnorm_scores_both_generators_as_the_run_did(train_tiny):
    run_dir = train_tiny(*MNIST_TINY, "model=mnist", "train.g_ema=0.9", name="m")
    result = run_cli(str(run_dir), script="experiments/recalibrate_batchnorm.py")
    assert result.returncode == 0, result.stderr
    trained, averaged = result.stdout.splitlines()
    logged = json.loads((run_dir / "metrics.json").read_text())["final"]["fd"]
    assert averaged.startswith(f"averaged G: fd {logged:.4g} with the statistics as saved, ")
    assert trained.startswith("G that trained: fd ") and trained != averaged


def test_generate_bad_run_dir_is_one_line(tmp_path):
    result = run_cli(f"run={tmp_path}", script="generate.py")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no checkpoint there" in result.stderr


def test_classifier_is_accurate_and_metrics_separate_real_from_noise():
    from ganlab.metrics.mnist import DigitMetrics, features_and_probs, load_classifier

    images, labels, _ = load_mnist(None)
    x = (torch.from_numpy(images).float().unsqueeze(1) - 127.5) / 127.5
    classifier = load_classifier()
    _, probs = features_and_probs(classifier, x[4000:])  # the held-out 1,000
    accuracy = (probs.argmax(1).numpy() == labels[4000:]).mean()
    assert accuracy > 0.95
    metrics = DigitMetrics(x[:2000], classifier)
    real = metrics(x[2000:4000])
    noise = metrics(torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert real["fd"] < 0.1 * noise["fd"]
    assert real["score"] > 8 and real["coverage"] == 10
    assert noise["score"] < 3


@pytest.mark.parametrize("argv,words", [
    ([], "run= is missing"),
    (["run=x", "num_samples=abc"], "num_samples='abc' is not a valid num_samples"),
    (["run="], "run= is empty; num_samples, seed and walk take integers, run and out paths"),
    (["run=x", "bogus=1"], "'bogus' is not an option of generate.py"),
    (["run=x", "checkpoint=worst"], "checkpoint=worst is not one generate.py reads; use checkpoint=last, best or iter_N"),
    (["run=x", "walk=1"], "walk=1 is not a number of steps; use walk=2 or more"),
    (["run=x", "seed=99999999999999999999"], "seed=99999999999999999999 is too large for torch's random generators"),
])
def test_generate_bad_arguments_name_the_argument(argv, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        generate_main(argv)


def test_generate_help_unwritable_out_and_too_many_samples(train_tiny, tmp_path, capsys):
    generate_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python generate.py run=RUN_DIR")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli(f"run={train_tiny(name='n')}", f"out={blocker / 'samples'}", script="generate.py")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "choose another out=PATH" in result.stderr
    # out= an existing folder: the files go into it (before: FOLDER.npy beside it)
    folder = tmp_path / "samples_here"
    folder.mkdir()
    result = run_cli(f"run={tmp_path / 'n'}", f"out={folder}", script="generate.py")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["samples.npy", "samples.png"]
    # out= a folder that does not exist yet, ending in /: made, and the files go into it
    result = run_cli(f"run={tmp_path / 'n'}", f"out={tmp_path / 'new' / 'folder'}/", script="generate.py")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "new" / "folder").iterdir()) == ["samples.npy", "samples.png"]
    # More samples than memory holds: the allocator's error ended in a traceback
    for too_many in ("num_samples=10000000000000", "walk=10000000000000"):
        result = run_cli(f"run={tmp_path / 'n'}", too_many, f"out={tmp_path / 'too_many'}", script="generate.py")
        assert result.returncode == 2 and re.fullmatch(
            r"ganlab: error: out of memory on cpu \(an allocation of [\d.]+ \w+ failed\); ask for fewer samples "
            r"\(num_samples=, walk=\)", result.stderr.strip()), result.stderr
    assert not any(tmp_path.glob("too_many*"))
