"""scale=smoke means seconds: the work of every experiment's whole smoke sweep, counted from the
composed configs of its jobs (minibatch steps, images evaluated), stays within the budget that
conf/scale/smoke.yaml declares. Counting, not timing, so the test holds on any machine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from bbbprune.report.jobs import sweep_overrides

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml")
)


def smoke_jobs(experiment: str):
    with initialize_config_module(config_module="bbbprune.conf", version_base="1.3"):
        base = [f"experiment={experiment}", "scale=smoke"]
        top = compose("config", overrides=base, return_hydra_config=True)
        sweeper = top.hydra.sweeper
        params = OmegaConf.to_container(sweeper.params) if sweeper.params else {}
        arms = OmegaConf.to_container(sweeper.arms) if sweeper.arms else None
        return [
            compose("config", overrides=base + combo) for combo in sweep_overrides(params, arms)
        ]


def work(cfg) -> tuple[int, int]:
    """(minibatch steps, images through the network in evaluation) of one job."""
    ds = cfg.dataset
    n_train = ds.get("n_train") or None  # generated data: its own size
    images = ds.train_subset if n_train is None else min(n_train, ds.train_subset or n_train)
    assert images is not None, f"{ds.name}: smoke trains on the whole training set"
    m = cfg.method
    steps = math.ceil(images / cfg.train.batch_size) * cfg.train.epochs * m.get("train_samples", 1)
    criteria = cfg.prune.criteria or m.get("criteria") or ["magnitude"]
    n_eval = cfg.prune.eval_subset
    assert n_eval, "smoke evaluates on the whole test set"
    passes = 1 + (m.get("eval_samples") or 0)  # mean weights, plus the sampled predictive
    records = len(criteria) * len(cfg.prune.fractions) + 1  # + a method's own rule
    splits = 3 if cfg.get("ood") else 2  # test and validation images, and the OOD test images
    return steps, records * passes * splits * n_eval


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_whole_smoke_sweep_stays_within_the_declared_budget(experiment):
    jobs = smoke_jobs(experiment)
    budget = jobs[0].scale.budget
    steps = sum(work(job)[0] for job in jobs)
    images = sum(work(job)[1] for job in jobs)
    print(f"{experiment}: {len(jobs)} jobs, {steps} steps, {images} evaluation images")
    assert all(job.train.epochs == 1 for job in jobs)
    assert steps <= budget.train_batches, (experiment, len(jobs), steps)
    assert images <= budget.eval_images, (experiment, len(jobs), images)
