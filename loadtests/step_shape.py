"""A load step for Locust, used with locustfile.py by loadtests/step.py: --step-from calls,
then --step-to calls from --step-at seconds on. Also logs every final's end-of-turn ->
final latency with its wall-clock time (--finals-log, CSV), so the step benchmark can
show latency over time next to the replica count."""

from __future__ import annotations

import csv
import time

from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--step-from", type=int, default=4, help="calls before the step")
    parser.add_argument("--step-to", type=int, default=16, help="calls after the step")
    parser.add_argument("--step-at", type=float, default=60, help="seconds before the step")
    parser.add_argument("--step-run-time", type=float, default=240, help="seconds in all")
    parser.add_argument("--finals-log", required=True, help="CSV: epoch seconds, latency ms")


class StepShape(LoadTestShape):
    def tick(self):
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        if elapsed >= options.step_run_time:
            return None
        calls = options.step_from if elapsed < options.step_at else options.step_to
        return calls, calls  # all of a level's calls start at once (each spreads itself)


_file = None
_log = None


@events.test_start.add_listener
def _open_log(environment, **_) -> None:
    global _file, _log
    _file = open(environment.parsed_options.finals_log, "w", newline="")  # noqa: SIM115
    _log = csv.writer(_file)


@events.quitting.add_listener
def _close_log(**_) -> None:
    if _file is not None:
        _file.close()


@events.request.add_listener
def _final(name, response_time, exception, **_) -> None:
    if name == "end_of_turn_to_final" and exception is None and _log is not None:
        _log.writerow([round(time.time(), 3), round(response_time, 1)])
