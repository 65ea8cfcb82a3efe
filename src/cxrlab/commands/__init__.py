"""CLI verbs, one module per area. Each module has ``register(subparsers, data_subparsers)`` and keeps each
verb to a few lines that call one library function."""
