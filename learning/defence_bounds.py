"""When a robust aggregator's guarantee holds, and which strategies an optimiser breaks.

Pure functions of plain values (no config import), so the config validator can ask
before round 1 (n = clients-per-round, also the expected size of a Poisson round) and
the server loop again each round with the replies actually received (crashes, Poisson
sampling and deadlines shrink n). Each returns None or a one-line reason with a fix.

Bounds, with f Byzantine clients among n:
- Krum / MultiKrum  n >= 2f + 3 (Blanchard et al. 2017, Prop. 1);
- Bulyan            n >= 4f + 3 (El Mhamdi et al. 2018);
- trimmed mean      2 beta < 1 and floor(beta n) >= f: each end cut must hold every
                    Byzantine value (Yin et al. 2018);
- median, RFA       n >= 2f + 1: breakdown point 1/2 (a majority must be honest).
"""

from __future__ import annotations

import math


def defence_bound(strategy: str, f: int) -> int:
    """The fewest updates `strategy` needs to tolerate f Byzantine ones (1 if no rule)."""
    if strategy in ("krum", "multikrum"):
        return 2 * f + 3
    if strategy == "bulyan":
        return 4 * f + 3
    if strategy in ("fedmedian", "rfa"):
        return 2 * f + 1
    return 1


def defence_bound_error(strategy: str, n: float, f: int, beta: float = 0.0) -> str | None:
    """Why `strategy` cannot tolerate f Byzantine updates among n (None if it can)."""
    need = defence_bound(strategy, f)
    if n < need:
        return (
            f"strategy {strategy!r} with num-malicious={f} needs at least {need} updates "
            f"per round, got {n:g}; raise clients-per-round or lower num-malicious"
        )
    if strategy == "fedtrimmedavg":
        if not 2 * beta < 1:
            return f"trim-beta ({beta:g}) must be < 0.5: both ends cut leave nothing"
        if math.floor(beta * n) < f:
            return (
                f"fedtrimmedavg cuts floor(trim-beta x n) = {math.floor(beta * n)} updates "
                f"from each end of n={n:g}, fewer than num-malicious={f}; raise trim-beta "
                "or clients-per-round"
            )
    return None


def optimizer_error(strategy: str, optimizer: str, momentum: float) -> str | None:
    """Strategies whose server step assumes plain local SGD steps."""
    if strategy in ("scaffold", "fednova") and optimizer != "sgd":
        return (
            f"strategy {strategy!r} assumes local SGD steps (its "
            f"{'control variates' if strategy == 'scaffold' else 'normalisation'} count "
            f'them), not {optimizer!r}; set optimizer="sgd"'
        )
    if strategy == "feddyn" and (optimizer != "sgd" or momentum > 0):
        return (
            "strategy 'feddyn' needs plain SGD: its linear term -<g, w> is not sent through "
            'a momentum or Adam buffer here; set optimizer="sgd" momentum=0'
        )
    return None


def strategy_error(
    strategy: str, n: float, f: int, beta: float, optimizer: str, momentum: float
) -> str | None:
    """The first of the two checks above that fails (what config validation calls)."""
    return defence_bound_error(strategy, n, f, beta) or optimizer_error(
        strategy, optimizer, momentum
    )
