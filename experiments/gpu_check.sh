#!/usr/bin/env bash
# GPU checks, for a machine with CUDA (none here; some sessions are lent one):
#   1. the default test suite, where train.device=auto picks CUDA for every run it trains;
#   2. a few short runs and their timing.json, on the GPU: one seed against 32 (train.population),
#      plain and compiled (with and without train.cuda_graph), for the book's 1-D recipe and the
#      default 1-D recipe; MNIST plain and compiled; and the single 1-D runs on the machine's CPU.
#
#   bash experiments/gpu_check.sh [OUT_DIR]   (writes env.txt, pytest.log, not_finished.txt, runs.txt)
#   (session 16, an H200: the tests 217 s with 8 workers, the runs about 4.5 minutes more)
#   (session 17, an H100: the tests 234 s, the whole script 504 s)
#   (session 22, an H200: 250 tests in 231 s; three compiled runs, 71 s)
#   (session 31, an H200: of 312 tests, 302 finished in 400 s with 8 workers, 266 in 225 s with
#    12; the files that check the GPU's own paths now go first)
#   (session 35, an H200: of 352 tests, 339 passed in 431 s with 10 workers, 3 failed, 9 not
#    finished; two compiled tests hung in Inductor's compile-worker pool, now off for the tests)
#
# The tests compile in each pytest process (TORCHINDUCTOR_COMPILE_THREADS=1, unless set): with
# PyTorch 2.11's pool of compile workers, two compiled tests (of 10 pytest workers) hung until
# their 150 s timeout, each blocked writing a job into its pool's pipe, beside the pool's idle
# timer sending its "quiesce"; without the pool they passed in 32 and 41 s.
# TESTS="tests/test_resume.py ..." limits the tests, RUNS="seed_one_compiled ..." the runs (names
# below), TEST_TIMEOUT the seconds the tests get (450: a device call lasts at most 600 s, so leave
# RUNS out or name a few), WORKERS pytest's processes (8). When the time runs out the tests are
# stopped as by a Ctrl-C, so pytest still names the failures, and not_finished.txt lists the
# tests that had not finished. Needs pytest-xdist and pytest-timeout
# besides the dev extras; Python packages the machine lacks can come in through EXTRA_PYTHONPATH
# (src/ is put first). For a GPU image with
# torch but without Hydra (session 15): on a machine with pip access, `pip wheel --no-deps
# antlr4-python3-runtime==4.9.3 -w W` (no wheel is published for it) and `pip download --no-deps
# --only-binary=:all: --python-version 3.12 --platform TAG ... -d W` (a --platform for each of
# manylinux2014_x86_64 and manylinux_2_N_x86_64, N = 17, 24, 27, 28, 31, 34) of hydra-core
# omegaconf hydra-joblib-launcher hydra-optuna-sweeper hydra-submitit-launcher optuna==2.10.1
# "sqlalchemy<2" greenlet alembic mako cliff autopage cmd2 pyperclip wcwidth rich-argparse
# prompt-toolkit rich stevedore cmaes colorlog submitit (cmd2 4 needs rich 15), at the versions that `pip install -e ".[dev]"`
# installs (`pip show NAME`); there,
# `pip install --no-deps --target DIR W/*.whl` and EXTRA_PYTHONPATH=DIR.
set -u
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"
  exit 0
fi
out=${1:-${OUT:-/tmp/gpu_check}}
runs=$(mktemp -d)
mkdir -p "$out"
export PYTHONPATH="$PWD/src${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

{ nvidia-smi -L; nproc; $py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } \
    >"$out/env.txt" 2>&1
cat "$out/env.txt"

echo "== tests (train.device=auto: CUDA)"
# The compiled, fused and resumed paths first (pytest skips a file named twice): they are what a GPU
# changes, and the time may run out before the rest.
tests=${TESTS:-tests/test_functional.py tests/test_resume.py tests/test_mnist.py tests}
start=$(date +%s)
TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-1} \
    timeout -s INT -k 30 ${TEST_TIMEOUT:-450} $py -m pytest -v -p no:cacheprovider -p no:benchmark -n ${WORKERS:-8} \
    --timeout=150 --durations=15 -rfE $tests >"$out/pytest.log" 2>&1
echo "pytest exit $? in $(( $(date +%s) - start )) s"
grep -E "^(FAILED|ERROR) " "$out/pytest.log"
$py -m pytest --collect-only -q -p no:cacheprovider $tests 2>/dev/null | grep :: | sort >"$runs/collected"
sed -nE 's/^\[gw[0-9]+\] \[ *[0-9]+%\] (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (.*\S) *$/\2/p' "$out/pytest.log" \
    | sort -u | comm -23 "$runs/collected" - >"$out/not_finished.txt"
echo "$(wc -l <"$out/not_finished.txt") of $(wc -l <"$runs/collected") tests did not finish (not_finished.txt)"
tail -1 "$out/pytest.log"

echo "== timed runs (on the GPU unless named _cpu; training wall time and first iteration from timing.json)"
run() {  # name, overrides...
    local name=$1; shift
    [ -z "${RUNS:-}" ] || [[ " $RUNS " == *" $name "* ]] || return 0
    local t0; t0=$(date +%s.%N)
    timeout 150 $py train.py train.device=${DEVICE:-cuda} train.progress=false "hydra.run.dir=$runs/$name" "$@" \
        >"$runs/$name.log" 2>&1
    local rc=$? t1; t1=$(date +%s.%N)
    $py - "$name" "$rc" "$t0" "$t1" "$runs/$name" <<'EOF' | tee -a "$out/runs.txt"
import json, sys
from pathlib import Path
name, rc, t0, t1, d = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5])
t = json.loads((d / "timing.json").read_text()) if (d / "timing.json").exists() else {}
m = json.loads((d / "metrics.json").read_text()).get("final", {}) if (d / "metrics.json").exists() else {}
metric = {k: round(v, 4) for k, v in m.items() if k in ("ks", "ks_std", "fd", "copies")}
print(f"{name}: exit {rc}, process {t1 - t0:.1f} s, training {t.get('wall_time_s', float('nan')):.1f} s, "
      f"first iteration {t.get('first_iteration_s', float('nan')):.1f} s, {metric}")
EOF
    [ "$rc" = 0 ] || tail -5 "$runs/$name.log"
}
seed="experiment=seed_normal train.iterations=2000"
run seed_one_plain $seed train.compile=false
run seed_one_compiled $seed train.compile=true
run seed_one_compiled_nograph $seed train.compile=true train.cuda_graph=false
run seed_32_compiled $seed train.compile=true train.population=32
run default_one train.iterations=1000
run default_one_compiled train.iterations=1000 train.compile=true
run default_32_compiled train.iterations=1000 train.compile=true train.population=32
# The same single 1-D runs on this machine's CPU: on an H200 they were 3.4-4.4x slower than on a
# 2-core CPU (experiments/README.md, "On a GPU"); the GPU machine's own CPU was not timed then.
DEVICE=cpu run seed_one_plain_cpu $seed train.compile=false
DEVICE=cpu run default_one_cpu train.iterations=1000
run mnist_fp32 dataset=mnist train.epochs=1
run mnist_compiled dataset=mnist train.epochs=1 train.compile=true
rm -rf "$runs"
