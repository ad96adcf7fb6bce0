"""What the optimizer tests share."""

from __future__ import annotations

from ferry.optimizer import TimingSettings

FAST = TimingSettings(repeats=1, max_repeats=1, slices=2, min_slice_s=0.005, min_calls=2,
                      warmup_s=0.0, warmup_calls=1)
"""One short repeat: the tests check what is timed and chosen, not the figures."""
