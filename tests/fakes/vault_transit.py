"""A small local HTTP fake of Vault's Transit secrets engine, for the contract tests
(no Vault binary installs here). It speaks the same JSON over HTTP that hvac sends:
keys (create, read, rotate, config, delete), encrypt and decrypt with derived keys, and
403 for a key that policy denies. The same tests run against a real Vault when
VAULT_ADDR is set.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN = "fake-root-token"
_ROUTE = re.compile(r"^/v1/transit/(keys|encrypt|decrypt)/([A-Za-z0-9_.-]+)(/rotate|/config)?$")


class FakeTransit:
    def __init__(self) -> None:
        self.keys: dict[str, dict] = {}
        self.denied: set[str] = set()
        self.down = False
        """While set, every request gets 503, as from a sealed or failing Vault."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeTransit:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- Transit semantics --------------------------------------------------------------

    @staticmethod
    def _derived(master: bytes, context: str) -> AESGCM:
        info = base64.b64decode(context)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)
        return AESGCM(key)

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict | None]:
        if self.down:
            return 503, {"errors": ["Vault is sealed"]}
        match = _ROUTE.match(path)
        if not match:
            return 404, {"errors": ["no handler for route"]}
        kind, name, action = match.groups()
        if name in self.denied:
            return 403, {"errors": ["permission denied"]}
        with self._lock:
            key = self.keys.get(name)
            if kind == "keys" and action is None and method == "POST":
                self.keys.setdefault(
                    name,
                    {
                        "versions": {1: os.urandom(32)},
                        "derived": bool(body.get("derived")),
                        "deletion_allowed": False,
                    },
                )
                return 204, None
            if key is None:
                return 404, {"errors": [f"key {name} not found"]}
            if kind == "keys" and action is None and method == "GET":
                return 200, {
                    "data": {
                        "name": name,
                        "derived": key["derived"],
                        "type": "aes256-gcm96",
                        "latest_version": max(key["versions"]),
                        "deletion_allowed": key["deletion_allowed"],
                    }
                }
            if kind == "keys" and action is None and method == "DELETE":
                if not key["deletion_allowed"]:
                    return 400, {"errors": ["deletion is not allowed for this key"]}
                del self.keys[name]
                return 204, None
            if action == "/rotate":
                key["versions"][max(key["versions"]) + 1] = os.urandom(32)
                return 204, None
            if action == "/config":
                if "deletion_allowed" in body:
                    key["deletion_allowed"] = bool(body["deletion_allowed"])
                return 204, None
            if key["derived"] and not body.get("context"):
                return 400, {"errors": ["missing 'context' for key derivation"]}
            if kind == "encrypt":
                version = int(body.get("key_version") or max(key["versions"]))
                if version not in key["versions"]:
                    return 400, {"errors": ["invalid key version"]}
                nonce = os.urandom(12)
                sealed = self._derived(key["versions"][version], body["context"]).encrypt(
                    nonce, base64.b64decode(body["plaintext"]), None
                )
                ciphertext = f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()
                return 200, {"data": {"ciphertext": ciphertext, "key_version": version}}
            if kind == "decrypt":
                found = re.match(r"^vault:v(\d+):(.+)$", body.get("ciphertext", ""))
                if not found or int(found.group(1)) not in key["versions"]:
                    return 400, {"errors": ["invalid ciphertext"]}
                raw = base64.b64decode(found.group(2))
                try:
                    plaintext = self._derived(
                        key["versions"][int(found.group(1))], body["context"]
                    ).decrypt(raw[:12], raw[12:], None)
                except (InvalidTag, ValueError):
                    return 400, {"errors": ["cipher: message authentication failed"]}
                return 200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}}
        return 405, {"errors": ["unsupported"]}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                if self.headers.get("X-Vault-Token") != TOKEN:
                    status, payload = 403, {"errors": ["permission denied"]}
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                    status, payload = fake.handle(self.command, self.path, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        return Handler
