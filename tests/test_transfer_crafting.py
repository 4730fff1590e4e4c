"""The transfer examples are crafted by the source network's own piece (in parallel with the other pieces)
and give the same transfer rows as crafting them after every piece."""

from __future__ import annotations

import pandas as pd

from robust_glo.comparison import CompareConfig, layout, run_comparison


def _config(**extra):
    return CompareConfig(
        dataset="digits",
        losses=["ce", "label_smoothing:0.2"],
        seeds=[0],
        steps=40,
        attacks=["fgsm", "pgd:steps=3"],
        eps=[0.0, 0.1],
        test_size=60,
        diagnostics={"n": 10},
        device="cpu",
        **extra,
    )


def _transfer(result) -> pd.DataFrame:
    rows = result.diagnostics[result.diagnostics["check"] == "transfer"]
    return rows.drop(columns=["detail"], errors="ignore").reset_index(drop=True)


def test_the_source_piece_crafts_and_the_end_only_reads(tmp_path):
    out = tmp_path / "cmp"
    lines: list[str] = []
    first = run_comparison(_config(), out, echo=lines.append)
    crafted = layout.crafted_file(out, 0)
    assert crafted.is_file()
    assert any("transfer examples crafted" in line for line in lines if line.startswith("ce seed 0"))
    table, _ = layout.transfer_files(out, 0)
    table.unlink()  # the diagnostic is recomputed from the stored examples ...
    before = crafted.stat().st_mtime_ns
    again = run_comparison(_config(), out, echo=lambda _: None)
    assert crafted.stat().st_mtime_ns == before  # ... which are read, not crafted again
    pd.testing.assert_frame_equal(_transfer(first), _transfer(again))
    assert len(_transfer(first)) >= 1

    crafted.unlink()  # without them, the diagnostic crafts on its own and finds the same
    table.unlink()
    third = run_comparison(_config(), out, echo=lambda _: None)
    pd.testing.assert_frame_equal(_transfer(first), _transfer(third))
