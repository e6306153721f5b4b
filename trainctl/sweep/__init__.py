"""Hyperparameter search on Optuna (>= 4) behind trainctl's Hydra sweeper plugin (`hydra/sweeper=optuna`)."""
