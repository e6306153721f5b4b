"""Config: typed schemas in Hydra's ConfigStore, the one `compose()`, range validation, override checks and the `_target_`
escape hatch (`targets`) with what a stored config may name (`trust`).
No torch here: help, `list`, `--cfg` and config errors stay fast."""
