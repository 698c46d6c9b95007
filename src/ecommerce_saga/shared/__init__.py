"""The shared kernel: base models, errors, ids and pagination every module may use. No I/O."""
