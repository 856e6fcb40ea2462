"""singa_dsl.runtime: devices, executor, data, updaters, trainer, checkpoints (no lark, no passes)."""
