"""The command line as a user meets it: every mistake is one line and exit status 2, found before
torch, data or checkpoints load and before anything is written; per-command help; --version;
``bbbprune runs``; files written with the umask's permissions; no leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import smoke_overrides, write_tiny_idx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "bbbprune"

# Calls the CLI in a fresh interpreter, then reports whether torch was imported on the way.
PROBE = """
import sys
from bbbprune.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(code)
"""


def probe(args, cwd: Path):
    env = {**os.environ, "BBBPRUNE_RUNS": str(cwd / "runs"), "BBBPRUNE_DATA": str(cwd / "data")}
    env["BBBPRUNE_RESULTS"] = str(cwd / "results")
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


BAD_INPUTS = [
    (["train", "method=foo"], "unknown method 'foo'; choose from: ard, bbb, dropout,"),
    (["train", "train.epoch=3"], "unknown option 'train.epoch'; did you mean train.epochs?"),
    (["train", "+train.epoch=3"], "unknown option 'train.epoch'; did you mean train.epochs?"),
    (["train", "train.epochs=abc"], "train.epochs expects an integer, got 'abc'"),
    (["train", "train.epochs=2.5"], "train.epochs expects an integer, got 2.5"),
    (["train", "train.epochs=0"], "train.epochs must be >= 1, got 0"),
    (["prune", "prune.fraction=abc"], "prune.fraction expects a number, got 'abc'"),
    (["prune", "prune.fraction=1.5"], "prune.fraction must be in [0, 1), got 1.5"),
    (["prune", "prune.fraction=-0.1"], "prune.fraction must be in [0, 1), got -0.1"),
    (["train", "prune.fractions=[0.5,1.0]"], "prune.fractions must be in [0, 1), got 1.0"),
    (["train", "-m", "prune.fraction=0.5,1.2"], "prune.fraction must be in [0, 1), got 1.2"),
    (["train", "-m", "method=bbb,nope"], "unknown method 'nope'; choose from:"),
    (["train", "train.resume=maybe"], "train.resume expects true or false, got 'maybe'"),
    (["train", "train.distributed=maybe"], "unknown train.distributed 'maybe'; choose from:"),
    (["train", "experiment=nope"], "unknown experiment 'nope'; choose from: blundell_prior_grid"),
    (["train", "hydra/launcher=nope"], "unknown hydra/launcher 'nope'; choose from: basic,"),
    (["train", "logger=[csv,nope]"], "unknown logger 'nope'; choose from: csv,"),
    (["train", "prune.fraction=0.5,0.9"], "prune.fraction=0.5,0.9 is a sweep (one job per value)"),
    (["train", "method=[a"], "cannot read option 'method=[a'"),
    (["train", "--frob"], "unknown flag '--frob'"),
    (["train", "epochs"], "unexpected argument 'epochs': options are key=value"),
    (["prune"], "bbbprune prune needs run=<run directory>"),
    (["export", "run=nowhere"], "nowhere is not a run directory (no config.yaml)"),
    (["runs", "meth=bbb"], "unknown filter 'meth'; did you mean method?"),
    (["runs", "state=done"], "unknown state 'done'; choose from: finished, running, failed"),
    (["fly"], "unknown command 'fly'"),
    (["overview", "overview.experiments=[prasd]"], "unknown experiment 'prasd' in overview"),
    (["overview", "overview.experiments=prasad"], "overview.experiments expects a list of names"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_each_mistake_is_one_line_exit_2_before_torch_and_writes_nothing(tmp_path, args, message):
    out = probe(args, tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr  # exactly one line
    assert out.stderr.startswith("bbbprune: error: ") and message in out.stderr, out.stderr
    assert out.stdout.strip() == "torch not imported"
    assert files_under(tmp_path) == []


def test_prune_of_a_trained_run_checks_its_criterion_before_loading_it(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("method:\n  name: bbb\n  criteria: [snr, magnitude]\n")
    (run_dir / "checkpoint.pt").write_bytes(b"not read on the error path")
    out = probe(["prune", f"run={run_dir}", "prune.criterion=log_alpha"], tmp_path)
    assert out.returncode == 2
    assert "criterion 'log_alpha' does not apply to method bbb; choose from: snr, magnitude" in (
        out.stderr
    )
    assert out.stdout.strip() == "torch not imported"


def test_import_of_the_cli_does_not_import_torch():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, bbbprune.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False"


def test_suggestion_is_the_closest_existing_key():
    from bbbprune.cli.options import suggest

    keys = ["train.epochs", "train.batch_size", "prune.fraction", "prune.fractions"]
    assert suggest("train.epoch", keys) == "; did you mean train.epochs?"
    assert suggest("prune.fractio", keys) == "; did you mean prune.fraction?"
    assert suggest("zzz", keys) == ""


def test_help_of_each_command_lists_its_own_options_and_the_group_choices_on_disk():
    def help_of(command):
        out = subprocess.run(
            [str(BIN), command, "--help"], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    train, prune, data = help_of("train"), help_of("prune"), help_of("data")
    assert train != prune != data
    methods = sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml"))
    section = train.split("method=<choice>")[1].split("\n\n")[0]
    listed = [line.split()[0] for line in section.splitlines()[1:]]
    assert listed == methods
    # descriptions come from the comments in conf/config.yaml and in each choice's file
    assert "train.resume=false" in train and "continue from the run's checkpoint" in train
    assert "bbb  " in section and "Bayes by Backprop" in section
    assert "prune.fraction=0.9" in prune and "method=<choice>" not in prune
    assert "data.refetch=false" in data and "mnist" in data
    assert "hydra/sweeper" not in train  # set by conf/config.yaml; users do not choose it
    runs = help_of("runs")
    assert "state" in runs and "interrupted" in runs


def test_version():
    out = subprocess.run([str(BIN), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"bbbprune {version('bbbprune')}"


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_the_umask_gives(tmp_path, umask, mode):
    from bbbprune.storage import save_checkpoint, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        save_checkpoint(tmp_path / "c.pt", {"a": 1})
        with open(tmp_path / "plain", "w") as fh:  # what a plain open gives, for comparison
            fh.write("x")
    finally:
        os.umask(old)
    for name in ("m.json", "c.pt", "plain"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def _fake_run(root: Path, name: str, method="bbb", epochs=3, **files) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(
        f"method:\n  name: {method}\ndataset:\n  name: mnist\nmodel:\n  name: mlp\n"
        f"  hidden: [100, 100]\nscale:\n  name: smoke\nseed: 0\ntrain:\n  epochs: {epochs}\n"
        "table:\n  name: vidlicka\n"
    )
    for file, content in files.items():
        (d / file.replace("_", ".")).write_text(content)
    return d


def test_runs_lists_state_and_epochs_and_filters(tmp_path):
    from bbbprune.cli.runs import list_runs

    root = tmp_path / "runs"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    history = json.dumps({"finished": True, "history": [{}, {}, {}]})
    _fake_run(root, "a-finished", metrics_json=history)
    _fake_run(root, "b-failed", method="sgd", failed_json='{"reason": "x"}')
    # the training lock names its holder (run/lock.py): running while that process lives
    _fake_run(root, "c-running", **{"_lock": f"pid={os.getpid()}\nhost={os.uname()[1]}\n"})
    _fake_run(root, "d-killed", **{"_lock": f"pid={gone.pid}\nhost={os.uname()[1]}\n"})
    _fake_run(root, "e-stopped", train_log="epoch 1 ...\nepoch 2 ...\n", checkpoint_pt="x")
    (root / "not-a-run").mkdir()

    table = list_runs([f"paths.runs={root}"])
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:-1]}
    assert set(rows) == {"a-finished", "b-failed", "c-running", "d-killed", "e-stopped"}
    assert rows["a-finished"][-2:] == ["3/3", "finished"]
    assert rows["b-failed"][-1] == "failed"
    assert rows["c-running"][-1] == "running"
    assert rows["d-killed"][-1] == "interrupted"
    assert rows["e-stopped"][-2:] == ["2/3", "interrupted"]
    assert rows["a-finished"][1:7] == ["vidlicka", "bbb", "mnist", "mlp-100-100", "smoke", "0"]
    assert table.splitlines()[-1].startswith("5 runs under")

    only = list_runs([f"paths.runs={root}", "method=sgd"]).splitlines()
    assert len(only) == 3 and only[1].startswith("b-failed")
    none = list_runs([f"paths.runs={root}", "state=running", "method=sgd"])
    assert none.startswith("no runs under") and "match the filters" in none


def test_runs_command_reads_the_runs_folder(tmp_path):
    _fake_run(tmp_path / "runs", "a-finished", metrics_json='{"finished": true, "history": [{}]}')
    out = probe(["runs", "state=finished"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "a-finished" in out.stdout and "1 finished" in out.stdout


def test_failed_train_leaves_no_run_directory_and_no_hydra_folder(tmp_path):
    """Data missing: the job fails before training anything, so nothing is left behind."""
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    common = smoke_overrides(tmp_path, tmp_path / "no-data")
    out = subprocess.run(
        [str(BIN), "train", *common], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "not available offline" in out.stderr
    assert files_under(tmp_path) == []


@pytest.mark.slow  # end to end through the command line (about 20 s): make test-all
def test_corrupted_data_offers_to_fetch_again(tmp_path):
    data = tmp_path / "data"
    write_tiny_idx(data / "MNIST" / "raw")  # not the published files: every checksum fails
    common = [f"paths.data={data}", "dataset=mnist"]
    out = subprocess.run(
        [str(BIN), "data", *common], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 2 and "checksum mismatch" in out.stderr
    assert out.stderr.strip().endswith(
        "to fetch it again: bbbprune data dataset=mnist data.refetch=true"
    )
    assert out.stderr.strip().count("\n") == 0
    out = subprocess.run(
        [str(BIN), "data", *common, "data.refetch=true", "dataset.sources=[]"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    # the damaged files are gone; with no source to fetch from, provisioning says so
    assert "removed damaged train-images-idx3-ubyte" in out.stdout
    assert out.returncode == 2 and "not available offline" in out.stderr
    assert not list((data / "MNIST" / "raw").iterdir())


def test_published_numbers_are_cited_by_a_path_in_the_repository():
    cited = set()
    for path in (REPO / "conf" / "experiment").glob("*.yaml"):
        text = path.read_text()
        assert "shared/reference" not in text, path.name
        if "published.md" in text:
            cited.add(path.name)
    assert cited and (REPO / "docs" / "published.md").is_file()
    refs = (REPO / "docs" / "published.md").read_text().split("## References")[1]
    for author in ("Vidlička", "Prasad", "Molchanov", "Ke, Yanan Fan", "Saha", "Blundell"):
        assert author in refs


def test_dry_run_lists_jobs_marks_done_ones_and_estimates_from_epochs_seen(tmp_path):
    args = ["train", "-m", "experiment=prasad", "scale=smoke", f"paths.runs={tmp_path / 'runs'}"]
    out = subprocess.run(
        [str(BIN), *args, "--dry-run"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "12 jobs: 0 done, 12 to run"  # 5 methods x 2 datasets, BBB seeds 1, 2
    first = lines[1].split()[2]
    assert first.startswith("sgd-mnist-mlp-500-500-smoke-s0-")
    done = tmp_path / "runs" / first
    done.mkdir(parents=True)
    seen = {"finished": True, "method": "sgd", "dataset": "mnist", "model": "mlp-500-500"}
    (done / "metrics.json").write_text(
        json.dumps({**seen, "scale": "smoke", "wall_time_per_epoch_s": 2.0})
    )
    # a run of the same network at another scale (another training set size) is not counted
    other = tmp_path / "runs" / "sgd-mnist-mlp-500-500-small-s0-0000000000"
    other.mkdir()
    (other / "metrics.json").write_text(
        json.dumps({**seen, "scale": "small", "wall_time_per_epoch_s": 100.0})
    )
    out = subprocess.run(
        [str(BIN), *args, "--dry-run"], capture_output=True, text=True, timeout=600
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "12 jobs: 1 done, 11 to run"
    assert lines[1].split()[:2] == ["done", first]
    # 11 jobs of 1 epoch at the 2 s per epoch seen for this architecture at this scale
    assert lines[-1] == "estimate for the jobs to run: ~22 s, training only"
    assert not (tmp_path / "runs" / "hydra").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([first, other.name])


def test_dry_run_of_a_sweep_with_one_arm():
    """vidlicka sweeps one arm (BBB with the prior chosen on validation, pi = 3/4,
    sigma1 = e^-2, sigma2 = e^-7, seeds 0, 1, 2) and `dataset: mnist`: three jobs, told apart by
    their seed; `seed=0` on the command line picks one, whose run carries that prior."""

    def dry_run(*extra):
        out = subprocess.run(
            [str(BIN), "train", "-m", "experiment=vidlicka", "scale=smoke", *extra, "--dry-run"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    lines = dry_run()
    assert lines[0].startswith("3 jobs: ")
    for seed, line in enumerate(lines[1:4]):
        assert f"seed={seed}" in line.split()
    lines = dry_run("seed=0")
    assert lines[0].startswith("1 jobs: ")
    assert "method=bbb" in lines[1] and "dataset=mnist" in lines[1] and "seed=0" in lines[1]
    assert "method.prior.pi=0.75" in lines[1] and "method.prior.neg_log_sigma1=2" in lines[1]
    assert "method.prior.neg_log_sigma2=7" in lines[1]


def test_dry_run_option_is_the_same_switch_as_the_flag():
    """`train.dry_run=true` asks for the dry run like `--dry-run`, and is not passed on to Hydra
    as an option nothing reads."""
    from bbbprune.cli.options import split_arguments

    args = ["-m", "method=sgd,bbb", "scale=smoke"]
    flag = split_arguments("train", [*args, "--dry-run"])
    option = split_arguments("train", [*args, "train.dry_run=true"])
    assert flag.dry_run and option.dry_run
    assert option.overrides == flag.overrides == ["method=sgd,bbb", "scale=smoke"]
    assert not split_arguments("train", args).dry_run


def test_a_list_of_group_choices_passes_the_check():
    """`logger=[csv,mlflow]` picks two loggers: each is checked, and both are valid."""
    from bbbprune.cli.options import split_arguments, validate

    validate(split_arguments("train", ["logger=[csv,mlflow]", "scale=smoke"]))


def test_an_optional_argument_of_the_method_can_be_added_and_a_made_up_one_cannot():
    """``+method.moped_delta`` (an argument of Bayes by Backprop that bbb.yaml leaves out, used by
    pretrained_to_pruned's arms), ``+method.prior.neg_log_sigma`` with the Gaussian prior and a
    key inside a mapping argument pass the check; ``+method.moped_delt``, ``+train.epoch`` and a
    prior key that the prior's kind does not read are still unknown options."""
    from bbbprune.cli.options import Invocation, validate
    from bbbprune.errors import UserError

    for ok in (
        ["method=bbb", "+method.moped_delta=0.1"],
        ["method=bbb", "+method.kl_scale=0.00256"],
        ["method=bbb", "method.prior.kind=gaussian", "+method.prior.neg_log_sigma=0"],
        ["experiment=kefan_lenet5", "+method.layer_decays.conv.scale=0.5"],  # inside a mapping
    ):
        validate(Invocation("train", overrides=ok))
    for bad, message in (
        (["method=bbb", "+method.moped_delt=0.1"], "unknown option 'method.moped_delt'"),
        (["method=sgd", "+method.moped_delta=0.1"], "unknown option 'method.moped_delta'"),
        (["+train.epoch=3"], "unknown option 'train.epoch'"),
        # the scale mixture reads no neg_log_sigma; Sparse VD's prior is a name, SGD has none
        (["method=bbb", "+method.prior.neg_log_sigma=0"], "unknown option"),
        (["method=svd", "+method.prior.pi=0.5"], "unknown option"),
        (["method=sgd", "+method.prior.pi=0.5"], "unknown option"),
        (["method=bbb", "+method.name=x"], "unknown option|exists"),
    ):
        with pytest.raises(UserError, match=message):
            validate(Invocation("train", overrides=bad))


def test_dry_run_estimate_scales_a_seen_epoch_by_the_training_set_size(tmp_path):
    """A run seen on the whole split (50,000 images, 5 s per epoch) estimates 1 s per epoch for
    a job on a 10,000-image subset and 5 s for one on the whole split; a run whose size is not
    recorded stands for any size."""
    from bbbprune.cli.dryrun import EpochTimes, time_keys

    def seen_run(name, n_train, subset, per_epoch, model="mlp-300-100"):
        run = tmp_path / name
        run.mkdir()
        facts = {"method": "svd", "dataset": "mnist", "model": model, "scale": "small"}
        if n_train:
            facts["n_train"] = n_train
        (run / "metrics.json").write_text(json.dumps({**facts, "wall_time_per_epoch_s": per_epoch}))
        subset_text = "null" if subset is None else subset
        (run / "config.yaml").write_text(f"dataset:\n  train_subset: {subset_text}\n")

    seen_run("a", 50000, None, 5.0)
    seen_run("b", None, None, 7.0, model="mlp-400-400")
    times = EpochTimes(tmp_path)
    keys = time_keys("svd", "mnist", "mlp-300-100", "small")
    assert times.seconds_per_epoch(keys, "mnist", 10000) == pytest.approx(1.0)
    assert times.seconds_per_epoch(keys, "mnist", None) == pytest.approx(5.0)
    other = time_keys("svd", "mnist", "mlp-400-400", "small")
    assert times.seconds_per_epoch(other, "mnist", 10000) == pytest.approx(7.0)
    assert times.seconds_per_epoch(time_keys("svd", "mnist", "x", "small"), "mnist", None) is None
