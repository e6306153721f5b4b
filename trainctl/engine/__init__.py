"""The training engine: the fit loop, the hot step, named events, checkpoint state, resume, cross-validation,
EMA and signals. Everything that watches training rather than doing it lives in `trainctl.callbacks`."""
