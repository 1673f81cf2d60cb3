"""The arithmetic of a subject test: rates with their uncertainty, and whether a lead is real.

Pure: counts in, numbers and a sentence out. Two textbook formulas, written out with `math`:

- the Wilson score interval (95%) of a rate k/n, which stays inside 0..1 and behaves at
  small counts where the "rate ± 1.96 standard errors" interval does not;
- the two-proportion z-test (pooled), two-sided, its p-value from the normal tail
  (`math.erfc`).

The decision compares the leader with the FIRST subject, the one the author would have
sent anyway: the leader wins only when its rate is higher with p at most 0.05 divided by
the number of challengers (Bonferroni: with three challengers, one would look better by
chance far more often than 1 in 20). Anything else keeps the first subject and says why:
a tie, or too few copies or too few clicks (opens) for the test to mean anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "MIN_COPIES",
    "MIN_EVENTS",
    "Decision",
    "VariantFigures",
    "decide",
    "two_proportion_p",
    "wilson",
]

Z95 = 1.959963984540054
ALPHA = 0.05
MIN_COPIES = 50
"""Fewer copies delivered of a variant than this: too small a sample to choose by."""
MIN_EVENTS = 5
"""The normal approximation behind the test wants at least this many successes and
failures expected in each variant compared."""


def wilson(successes: int, trials: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of successes/trials; (0.0, 1.0) when there were no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    denominator = 1 + z2 / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test; 1.0 when it cannot be made."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class VariantFigures:
    """One subject's numbers: copies delivered, readers who opened or clicked, and the rate."""

    variant: int
    subject: str
    sent: int
    opens: int
    clicks: int
    metric: str

    @property
    def successes(self) -> int:
        return self.clicks if self.metric == "clicks" else self.opens

    @property
    def rate(self) -> float:
        return self.successes / self.sent if self.sent else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.successes, self.sent)

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "variant": self.variant, "subject": self.subject, "sent": self.sent, "opens": self.opens,
            "clicks": self.clicks, "metric": self.metric, "rate": self.rate, "low": low, "high": high,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The winner (a variant number; 0 is the first subject), why, and the p-value behind it."""

    winner: int
    reason: str
    p_value: float | None
    margin: float
    """The winner's rate minus the first subject's (0.0 when the first is kept)."""


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def decide(figures: Sequence[VariantFigures]) -> Decision:
    """Choose between the variants (see the module's rule); `figures` in variant order."""
    if len(figures) < 2:
        return Decision(0, "only one subject: nothing to compare", None, 0.0)
    first = figures[0]
    metric = first.metric
    small = [f for f in figures if f.sent < MIN_COPIES]
    if small:
        names = ", ".join(f"{f.subject!r} ({f.sent})" for f in small)
        return Decision(
            0,
            f"too small a sample: {names} reached fewer than {MIN_COPIES} readers; "
            f"the first subject is kept",
            None, 0.0,
        )
    leader = max(figures, key=lambda f: (f.rate, -f.variant))
    if leader.variant == first.variant:
        return Decision(
            0, f"the first subject had the highest {metric} rate ({_pct(first.rate)}): it is kept", None, 0.0
        )
    pooled = (leader.successes + first.successes) / (leader.sent + first.sent)
    smaller = min(leader.sent, first.sent)
    if pooled * smaller < MIN_EVENTS or (1 - pooled) * smaller < MIN_EVENTS:
        return Decision(
            0,
            f"too few {metric} to tell ({leader.successes} and {first.successes}): the first subject is kept",
            None, 0.0,
        )
    alpha = ALPHA / (len(figures) - 1)
    p = two_proportion_p(leader.successes, leader.sent, first.successes, first.sent)
    if p > alpha:
        return Decision(
            0,
            f"a tie: {leader.subject!r} {_pct(leader.rate)} against {_pct(first.rate)} could be chance "
            f"(p = {p:.3f}, more than {alpha:.3g}); the first subject is kept",
            p, 0.0,
        )
    return Decision(
        leader.variant,
        f"{leader.subject!r} won by {metric}: {_pct(leader.rate)} against {_pct(first.rate)} for the first "
        f"subject (p = {p:.2g}, at most {alpha:.3g})",
        p, leader.rate - first.rate,
    )
