"""The shipped benchmark suites, one `NAME.toml` per suite, as package data: `robust-glo benchmark NAME`
and `robust_glo.benchmark.load_suite(NAME)` read them through `importlib.resources`, so an installed wheel
has them too. This folder is their one copy; a source checkout links each from `evaluations/NAME.toml`.
The keys are described in docs/suites.md."""
