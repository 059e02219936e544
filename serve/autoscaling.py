"""Transcriber autoscaling on how long finals wait, not on requests in flight.

Serve's default policy scales on ongoing requests per replica. For a transcriber that
is the wrong signal: every live channel keeps an interim or a final in flight, a
replica decoding short turns quickly holds as many requests as one falling behind, and
skipped interims count like real work. What a caller feels is how long a final waits
for a decoding thread. Each replica reports that (and how busy its threads were) through
Serve's custom metrics (`record_autoscaling_stats`); this policy, run by Serve's
controller, adds replicas when finals wait longer than the target and removes one when
threads are mostly idle and finals do not wait. Serve applies min/max replicas and the
up/downscale delays around it.

Ray Serve's custom autoscaling policies are alpha (Ray 2.60); the default signal is
still there (transcriber.autoscaling.signal: ongoing_requests).
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

FINAL_WAIT = "final_wait_seconds"
"""Per replica: mean wait of the finals its threads took since the last report, or the
age of its oldest waiting final, whichever is longer."""
BUSY = "busy_fraction"
"""Per replica: the fraction of its decoding threads' time spent decoding."""


class FinalWaitPolicy:
    """Serve custom autoscaling policy (a class: Serve passes policy_kwargs to it);
    named in TranscriberAutoscaling.serve_config."""

    def __init__(self, target_final_wait_seconds: float, scale_down_busy_fraction: float):
        self.target = target_final_wait_seconds
        self.idle = scale_down_busy_fraction

    def __call__(self, ctx) -> tuple[int, dict[str, Any]]:
        replicas = ctx.current_num_replicas
        waits = ctx.aggregated_metrics.get(FINAL_WAIT, {})
        busy = ctx.aggregated_metrics.get(BUSY, {})
        if replicas == 0 or not waits:
            return ctx.target_num_replicas, ctx.policy_state
        return desired_replicas(
            replicas, fmean(waits.values()), fmean(busy.values() or [1.0]), self.target, self.idle
        ), ctx.policy_state


def desired_replicas(
    replicas: int, final_wait: float, busy: float, target: float, idle: float
) -> int:
    """Scale up in proportion to how far finals wait past the target (at most double
    per decision); one down when threads are mostly idle and finals do not wait."""
    if final_wait > target:
        return max(replicas + 1, min(2 * replicas, math.ceil(replicas * final_wait / target)))
    if busy < idle and final_wait < target / 2:
        return replicas - 1
    return replicas
