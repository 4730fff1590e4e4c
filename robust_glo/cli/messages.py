"""Message constants of the command line, in a module with no imports, so that `robust_glo.cli` can print
an error or a Ctrl-C line before anything heavy (torch) is loaded."""

ERROR_PREFIX = "robust-glo: error: "  # every CLI error: usage errors and RobustGloErrors alike
