"""One module per ``ragline`` subcommand: ``register`` adds its parser and options,
``cmd_*`` runs it.

``ragline.dev.cli`` lists the modules and dispatches. Each command imports the library
lazily, after it has put its options in the environment.
"""
