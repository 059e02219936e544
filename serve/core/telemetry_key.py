"""The key that turns identifiers (call ids, tenant names) into HMACs in telemetry.

32 random bytes, sealed by the configured KMS provider in state_dir/keys and created by
the first process that needs it: every replica, and `confide telemetry hash`, read the
same key, so an id hashes alike everywhere. Destroying its KEK makes past hashes
unlinkable.
"""

from __future__ import annotations

import os
from pathlib import Path

from serve.core.config import KeysConfig
from serve.core.envelope import Binding
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.core.secret_files import write_secret

# Not a valid tenant name (see TENANT_NAME_PATTERN), so never a tenant's KEK.
_KEY_BINDING = Binding("_telemetry", "hmac", "telemetry-hmac-key")


def telemetry_key(keys: KeysConfig, state_dir: Path) -> bytes:
    path = state_dir / "keys" / "telemetry-hmac.sealed"
    sealer = Sealer(key_provider(keys, state_dir))
    if not path.exists():
        staged = path.with_name(f".{path.name}.{os.getpid()}")
        write_secret(staged, sealer.seal(os.urandom(32), _KEY_BINDING))
        try:
            os.link(staged, path)  # create-if-absent: concurrent replicas agree on one key
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    return sealer.open(path.read_bytes(), _KEY_BINDING)
