# Makes the config tree importable as `trainctl.conf`, so it ships inside the wheel and Hydra finds it anywhere.
