"""A turn outlives the transcriber replica it was sent to.

Ray Serve retries nothing once a request has reached a replica: when the replica dies
under it (its worker killed, its node lost) the caller gets ActorDiedError. The gateway
still holds the sealed turn, so it sends the same request again. Serve's router drops a
replica as soon as one of its requests ends in ActorDiedError, before the controller
notices the death (seconds later), so the next send goes to a live replica, or waits in
the router until Serve has started a replacement. A turn carries no state on a replica
and a transcript is a pure function of it, so sending it twice is harmless: the gateway
keeps the first answer, and finals still leave in turn order (serve/emitter.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ray.exceptions import RayActorError

from serve.core.config import TranscriberConfig
from serve.core.errors import EngineUnavailable

Request = TypeVar("Request")
Response = TypeVar("Response")

REPLICA_LOST = RayActorError
"""What a send raises when its replica died (ActorDiedError) or cannot be reached
(ActorUnavailableError). An engine's own error arrives as RayTaskError and is not
resent: it would fail again."""


class ReplicaLost(EngineUnavailable):
    """Replicas died under a turn until its tries or its deadline ran out."""


@dataclass(frozen=True)
class Resubmission:
    attempts: int = 1
    """Sends of one request in all; 1 sends it once."""
    deadline_seconds: float = 30.0
    """From the first replica's death: how long the resent request may take."""

    @classmethod
    def of(cls, config: TranscriberConfig) -> Resubmission:
        return cls(config.resubmit_attempts, config.replica_loss_deadline_seconds)

    async def send(
        self,
        send: Callable[[Request], Awaitable[Response]],
        request: Request,
        resent: Callable[[], None] = lambda: None,
    ) -> Response:
        """`send(request)`, sent again while replicas die under it; `resent` is called
        before each new send. Raises ReplicaLost when the tries or the deadline run out."""
        try:
            return await send(request)
        except REPLICA_LOST:
            if self.attempts <= 1:
                raise
        deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        for attempt in range(2, self.attempts + 1):
            resent()
            try:
                async with asyncio.timeout_at(deadline):
                    return await send(request)
            except TimeoutError:
                break
            except REPLICA_LOST:
                if attempt == self.attempts:
                    break
        raise ReplicaLost(
            f"the transcriber replica was lost; no live replica took the turn within "
            f"{self.attempts} tries and {self.deadline_seconds:g} s"
        )
