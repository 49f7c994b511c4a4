"""One module per ``opsdeck`` verb; each has ``register(subparsers)``."""
