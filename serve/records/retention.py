"""Retention: which calls lose their text, which tenant-months are shredded, and the run.

A call's text goes `text_days` (the tenant's window, or its compliance period) after
the call ended, unless it is on legal hold. With `keep_aggregates` its row stays, its
sealed details blanked (selective archival). A tenant-month's key-encryption key is
destroyed once the month is over and every call sealed under it is past its time and not
on hold: then backups and stray copies of those rows can never be opened again.

Every decision takes "now" from one injectable clock. A run is idempotent and crash-safe
(each call's text goes in its own transaction; a key already destroyed counts as done),
and a lease in the store keeps a second runner out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from serve.audit import Actor, AuditEvent, AuditLog, events
from serve.core.config import ConfideConfig, RetentionConfig
from serve.core.keys import KeyDestroyed, KeyProvider, KmsUnavailable, period_kek_id
from serve.records.codec import RecordCodec
from serve.records.errors import UnreadableRecord
from serve.records.model import CallRow
from serve.records.store import RecordStore

DAY = 86_400.0
LOCK = "purge"
LEASE_SECONDS = 600.0
Clock = Callable[[], float]
"""Epoch seconds; tests move it forward instead of sleeping."""


@dataclass(frozen=True)
class TextExpiry:
    tenant: str
    call_key: str
    reason: str
    keep_row: bool
    details: bytes = field(default=b"", repr=False)
    """The call's sealed details: opened through the KMS before its text goes."""


@dataclass(frozen=True)
class Shredding:
    tenant: str
    period: str
    calls: int


@dataclass
class PurgePlan:
    expire: list[TextExpiry] = field(default_factory=list)
    shred: list[Shredding] = field(default_factory=list)
    held: int = 0

    def describe(self) -> list[str]:
        lines = [
            f"delete text of {e.tenant}/{e.call_key}: {e.reason}"
            + (" (aggregates kept)" if e.keep_row else "")
            for e in self.expire
        ]
        lines += [
            f"destroy key {period_kek_id(s.tenant, _month(s.period))}: {s.calls} calls, "
            "all past retention, none on hold"
            for s in self.shred
        ]
        lines.append(f"{self.held} calls on legal hold are kept")
        return lines


@dataclass
class PurgeReport:
    ran: bool
    """False when another runner held the lease."""
    expired: int = 0
    shredded: int = 0
    unreadable: int = 0


def _month(period: str) -> dt.datetime:
    return dt.datetime.strptime(period, "%Y-%m").replace(tzinfo=dt.UTC)


def _month_over(period: str, now: float) -> bool:
    start = _month(period)
    following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return now >= following.timestamp()


def _retention(config: ConfideConfig, tenant: str) -> RetentionConfig:
    try:
        return config.tenant(tenant).retention
    except KeyError:  # a tenant since removed from the config: the default window applies
        return RetentionConfig()


def _expires_at(row: CallRow, retention: RetentionConfig) -> float:
    ended = row.ended_at if row.ended_at is not None else row.started_at
    return ended + retention.text_days * DAY


def plan_purge(store: RecordStore, config: ConfideConfig, now: float) -> PurgePlan:
    plan = PurgePlan()
    months: dict[tuple[str, str], list[CallRow]] = defaultdict(list)
    for row in store.calls():
        months[row.tenant, row.period].append(row)
        retention = _retention(config, row.tenant)
        if row.legal_hold:
            plan.held += 1
        elif row.text_purged_at is None and now >= _expires_at(row, retention):
            reason = f"{retention.text_days} days after the call ended ({retention.mode})"
            plan.expire.append(
                TextExpiry(row.tenant, row.call_key, reason, retention.keep_aggregates, row.details)
            )
    shredded = store.shredded_periods()
    for (tenant, period), rows in sorted(months.items()):
        retention = _retention(config, tenant)
        if (tenant, period) in shredded or not _month_over(period, now):
            continue
        if all(not r.legal_hold and now >= _expires_at(r, retention) for r in rows):
            plan.shred.append(Shredding(tenant, period, len(rows)))
    return plan


class Purger:
    def __init__(
        self,
        store: RecordStore,
        config: ConfideConfig,
        provider: KeyProvider,
        codec: RecordCodec,
        clock: Clock,
        audit: AuditLog | None = None,
        actor: Actor | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._provider = provider
        self._codec = codec
        self._clock = clock
        self._audit = audit
        self._actor = actor or Actor.system("purge-loop")
        self._holder = uuid.uuid4().hex

    def _audited(self, action: str, tenant: str, target: str, **detail) -> None:
        """Write the audit record before the deletion or destruction it describes; an
        audit log that cannot record stops the purge (AuditUnavailable)."""
        if self._audit is not None:
            self._audit.record(AuditEvent(self._actor, action, tenant, target, detail=detail))

    def plan(self) -> PurgePlan:
        return plan_purge(self._store, self._config, self._clock())

    def run(self) -> PurgeReport:
        """One pass. KmsUnavailable (or a store failure) stops it: whatever it did not
        reach is retried next time, and no text goes whose key was not checked."""
        now = self._clock()
        if not self._store.try_lock(LOCK, self._holder, now, LEASE_SECONDS):
            return PurgeReport(ran=False)
        report = PurgeReport(ran=True)
        try:
            plan = plan_purge(self._store, self._config, now)
            for expiry in plan.expire:
                report.unreadable += self._check_key(expiry)
                self._audited(
                    events.RECORD_PURGE, expiry.tenant, expiry.call_key, keep_row=expiry.keep_row
                )
                self._store.delete_text(expiry.tenant, expiry.call_key, now, expiry.keep_row)
                report.expired += 1
            for shredding in plan.shred:
                kek_id = period_kek_id(shredding.tenant, _month(shredding.period))
                self._audited(events.KEY_DESTROY, shredding.tenant, kek_id, calls=shredding.calls)
                # Already destroyed: an earlier run stopped before recording it.
                with contextlib.suppress(KeyDestroyed):
                    self._provider.destroy(kek_id)
                self._store.mark_shredded(shredding.tenant, shredding.period, now)
                report.shredded += 1
        finally:
            self._store.unlock(LOCK, self._holder)
        return report

    def _check_key(self, row: TextExpiry) -> int:
        """Open the call's sealed details through the KMS before its text goes: a KMS
        that does not answer raises here. A row that does not open (corrupt, foreign,
        already shredded) is counted and its text still goes."""
        if not row.details:
            return 0
        try:
            self._codec.open(row.tenant, row.call_key, row.details)
        except UnreadableRecord as error:
            if isinstance(error.__cause__, KmsUnavailable):
                raise error.__cause__ from None
            return 1
        return 0


def record_retention_changes(audit: AuditLog, config: ConfideConfig, actor: Actor) -> int:
    """Audit each tenant's retention settings where they differ from the last ones
    audited (retention lives in the config file, so a change shows when a process that
    enforces it starts). Returns how many tenants changed."""
    changed = 0
    for tenant in config.tenants:
        settings = tenant.retention.model_dump(mode="json")
        settings["text_days"] = tenant.retention.text_days
        last = audit.latest(tenant.name, events.RETENTION_CHANGE)
        if last is None or json.loads(last.detail) != settings:
            audit.record(AuditEvent(actor, events.RETENTION_CHANGE, tenant.name, detail=settings))
            changed += 1
    return changed
