"""Board settings, one TOML file per board, installed as `edge.device_configs`."""
