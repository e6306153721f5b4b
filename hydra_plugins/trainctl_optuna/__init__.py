"""trainctl's Optuna sweeper for Hydra (`hydra/sweeper=optuna`); the work is done in `trainctl.sweep`."""
