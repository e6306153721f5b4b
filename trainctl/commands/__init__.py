"""One module per subcommand; `trainctl.cli` imports them lazily, so `trainctl --help` never loads torch."""
