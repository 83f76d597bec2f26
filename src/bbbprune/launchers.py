"""Submitit launchers whose requeued jobs resume (conf/hydra/launcher/slurm.yaml).

On preemption or at its time limit, submitit signals the job, calls the launcher's
``checkpoint`` hook and requeues what the hook returns (submitit docs, "checkpointing"). Hydra's
launcher resubmits the same job with the same overrides; ours adds ``train.resume=true`` so the
rerun continues from the run's last complete checkpoint instead of starting over.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

RESUME = "train.resume=true"


def resume_overrides(sweep_overrides: list[str]) -> list[str]:
    """The job's overrides with any ``train.resume=...`` replaced by ``train.resume=true``."""
    kept = [o for o in sweep_overrides if o.split("=")[0].lstrip("+~") != "train.resume"]
    return [*kept, RESUME]


class _ResumeOnRequeue:
    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        return super().checkpoint(resume_overrides(list(sweep_overrides)), *args, **kwargs)


class ResumingSlurmLauncher(_ResumeOnRequeue, SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher; a requeued job resumes its run."""


class ResumingLocalLauncher(_ResumeOnRequeue, LocalLauncher):
    """The same for submitit's local executor (what the tests exercise)."""
