"""Transcriber autoscaling on how long finals wait (serve/autoscaling.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ray.serve.config import AutoscalingConfig as ServeAutoscalingConfig

from serve.autoscaling import BUSY, FINAL_WAIT, FinalWaitPolicy, desired_replicas
from serve.core.config import TranscriberConfig


@pytest.mark.parametrize(
    ("replicas", "wait", "busy", "expected"),
    [
        (1, 2.0, 1.0, 2),  # finals wait 4x the target: double, at most
        (2, 0.75, 1.0, 3),  # 1.5x the target: one more, at least
        (4, 0.6, 1.0, 5),
        (2, 0.3, 0.9, 2),  # within the target, threads busy: hold
        (2, 0.1, 0.1, 1),  # idle threads, finals do not wait: one fewer
        (2, 0.4, 0.1, 2),  # idle but finals wait near the target: hold
    ],
)
def test_replicas_follow_how_long_finals_wait(replicas, wait, busy, expected):
    assert desired_replicas(replicas, wait, busy, target=0.5, idle=0.3) == expected


def test_the_policy_reads_the_replicas_reports_from_serve():
    policy = FinalWaitPolicy(target_final_wait_seconds=0.5, scale_down_busy_fraction=0.3)
    context = SimpleNamespace(
        current_num_replicas=2,
        target_num_replicas=2,
        policy_state={},
        aggregated_metrics={
            FINAL_WAIT: {"replica-a": 1.5, "replica-b": 0.5},
            BUSY: {"replica-a": 1.0, "replica-b": 0.9},
        },
    )
    assert policy(context) == (4, {})
    context.aggregated_metrics = {}  # no report yet: keep Serve's target
    assert policy(context) == (2, {})


def test_the_config_gives_serve_a_policy_it_accepts_and_loads():
    config = TranscriberConfig(autoscaling={"max_replicas": 4})
    options = config.replica_options()["autoscaling_config"]
    serve = ServeAutoscalingConfig(**options)
    assert serve.policy.policy_function == "serve.autoscaling:FinalWaitPolicy"
    assert serve.upscale_delay_s == 10 and serve.max_replicas == 4
    default = TranscriberConfig(autoscaling={"signal": "ongoing_requests"})
    assert "policy" not in default.replica_options()["autoscaling_config"]
