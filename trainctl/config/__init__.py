"""Config: typed schemas in Hydra's ConfigStore, the one `compose()`, range validation and override checks.
No torch here: help, `list`, `--cfg` and config errors stay fast."""
