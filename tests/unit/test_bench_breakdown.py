"""The call benchmark's breakdown of a final's time (loadtests/bench.py --breakdown),
from spans as the OTLP receiver hands them over."""

from __future__ import annotations

from cluster.trace_receiver import ReceivedSpan
from loadtests.bench import print_breakdown

MS = 1_000_000


def _span(name, span_id, start_ms, end_ms, parent="", **attributes) -> ReceivedSpan:
    return ReceivedSpan(
        service="confide-gateway",
        scope="confide",
        name=name,
        trace_id="t1",
        span_id=span_id,
        parent_span_id=parent,
        start_ns=start_ms * MS,
        end_ns=end_ms * MS,
        status_code=0,
        status_message="",
        attributes={"confide.channel": 0, "confide.turn_index": 3, **attributes},
        resource={},
        events=0,
        links=0,
    )


def test_a_finals_time_is_split_between_the_gateway_and_the_replica(capsys):
    spans = [
        _span("confide.vad", "v", 0, 1000, **{"confide.audio_lag_ms": 40.0}),
        _span("confide.final", "f", 1001, 1500),
        _span("confide.transcribe", "c", 1002, 1402, "f"),
        _span("confide.transcriber.decode", "s", 1022, 1382, "c", **{"confide.decode_ms": 300.0}),
        _span("confide.redact", "r", 1403, 1433, "f"),
        _span("confide.record", "w1", 1434, 1444, "f"),
        _span("confide.record", "w2", 1445, 1450, "f"),  # the raw text's row too
        # An interim of the same turn is not a final's time.
        _span("confide.transcribe", "i", 900, 990, **{"confide.interim": True}),
    ]
    print_breakdown(spans, [("4 calls", 0, 2000 * MS), ("8 calls", 5000 * MS, 6000 * MS)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  4 calls: where finals' time went (ms, 1 finals)"
    parts = {line[:30].strip(): line[30:].split() for line in lines[1:12]}
    assert parts == {
        "audio lag at the cut": ["p50", "40.0", "p95", "40.0"],
        "cut -> sent": ["p50", "2.0", "p95", "2.0"],
        "to the replica": ["p50", "20.0", "p95", "20.0"],
        "queue, open, seal": ["p50", "60.0", "p95", "60.0"],
        "decode": ["p50", "300.0", "p95", "300.0"],
        "back to the gateway": ["p50", "20.0", "p95", "20.0"],
        "redaction": ["p50", "30.0", "p95", "30.0"],
        "cut -> redacted": ["p50", "433.0", "p95", "433.0"],
        "record": ["p50", "15.0", "p95", "15.0"],
        "waiting its turn": ["p50", "50.0", "p95", "50.0"],
        "cut -> out to the client": ["p50", "500.0", "p95", "500.0"],
    }
    assert lines[12] == "  8 calls: where finals' time went (ms, 0 finals)"  # outside its window
