"""The `edgebert` command: one file per command group, each command a thin wrapper
that parses arguments, calls one library function and prints its result."""
