"""One module per ``ragline`` subcommand, each with its ``cmd_*`` function.

``ragline.dev.cli`` holds the parser and dispatches to them. Each command imports the
library lazily, after it has put its options in the environment.
"""
