"""Cluster jobs that survive preemption (conf/hydra/launcher/slurm.yaml).

On preemption or at its time limit, submitit signals the job, calls hydra-submitit-launcher's
``checkpoint`` hook, which resubmits the same job with the same overrides, and requeues it
(submitit docs, "checkpointing"). SLURM counts the restarts in ``SLURM_RESTART_COUNT``; a job
that sees a count above 0 is a requeued one and resumes its run from the last complete
checkpoint instead of starting over, whatever ``train.resume`` says.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig


def requeued() -> bool:
    """True in a SLURM job that has been requeued (preempted, or past its time limit)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def resume_if_requeued(cfg: DictConfig, log=print) -> DictConfig:
    """``cfg`` with ``train.resume=true`` when this job is a requeued one."""
    if requeued() and not cfg.train.resume:
        cfg.train.resume = True
        log(f"requeued job (SLURM restart {os.environ['SLURM_RESTART_COUNT']}): resuming")
    return cfg
