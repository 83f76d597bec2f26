"""Running a training job: the loop, run identity and checkpoints, initialisation from another run, distributed training, launchers, failures, schedules."""
