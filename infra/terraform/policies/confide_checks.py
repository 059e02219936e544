"""Checkov checks for what the built-in ones miss in Confide's Terraform.

Loaded with `checkov --external-checks-dir infra/terraform/policies`. Each check fails
closed: a value that Checkov cannot resolve is a failure, not a pass.
"""

from __future__ import annotations

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

WORLD = {"0.0.0.0/0", "::/0"}
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 7, 30


def _first(conf: dict, key: str):
    value = conf.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _flatten(value) -> list:
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    return [value]


class GatewayNeverOpenToTheWorld(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="No ingress rule admits 0.0.0.0/0 or ::/0 (the gateway serves named platforms)",
            id="CKV_CONFIDE_1",
            categories=[CheckCategories.NETWORKING],
            supported_resources=[
                "aws_vpc_security_group_ingress_rule",
                "aws_security_group_rule",
                "aws_security_group",
            ],
        )

    def scan_resource_conf(self, conf: dict) -> CheckResult:
        sources: list = []
        if self.entity_type == "aws_security_group":
            for ingress in _flatten(conf.get("ingress", [])):
                if isinstance(ingress, dict):
                    sources += _flatten(ingress.get("cidr_blocks", []))
                    sources += _flatten(ingress.get("ipv6_cidr_blocks", []))
        elif self.entity_type == "aws_security_group_rule":
            if _first(conf, "type") != "ingress":
                return CheckResult.PASSED
            sources = _flatten(conf.get("cidr_blocks", [])) + _flatten(
                conf.get("ipv6_cidr_blocks", [])
            )
        else:
            sources = [_first(conf, "cidr_ipv4"), _first(conf, "cidr_ipv6")]
        return CheckResult.FAILED if WORLD & {str(s) for s in sources} else CheckResult.PASSED


class LoadBalancerPassesTlsThrough(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Load balancer listeners are plain TCP: TLS passes through to Confide's gateway",
            id="CKV_CONFIDE_2",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["aws_lb_listener"],
        )

    def scan_resource_conf(self, conf: dict) -> CheckResult:
        terminates_tls = conf.get("certificate_arn") or conf.get("ssl_policy")
        if _first(conf, "protocol") == "TCP" and not terminates_tls:
            return CheckResult.PASSED
        return CheckResult.FAILED


class TranscriptRetentionIsBounded(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name=(
                f"Transcripts expire after {MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS} days, "
                "noncurrent versions included"
            ),
            id="CKV_CONFIDE_3",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["aws_s3_bucket_lifecycle_configuration"],
        )

    def scan_resource_conf(self, conf: dict) -> CheckResult:
        bucket = str(_first(conf, "bucket"))
        if "transcripts" not in bucket:
            return CheckResult.UNKNOWN  # not the transcript bucket
        rules = [r for r in _flatten(conf.get("rule", [])) if isinstance(r, dict)]
        for rule in rules:
            if _first(rule, "status") != "Enabled":
                continue
            for expiration in _flatten(rule.get("expiration", [])):
                days = _first(expiration, "days") if isinstance(expiration, dict) else None
                if days is None:
                    continue
                try:
                    days = int(days)
                except (TypeError, ValueError):
                    return CheckResult.FAILED  # unresolved: fail closed
                versions = _flatten(rule.get("noncurrent_version_expiration", []))
                if MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS and versions:
                    return CheckResult.PASSED
                return CheckResult.FAILED
        return CheckResult.FAILED


class KmsKeyRotatesWithExplicitPolicy(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Every KMS key rotates and carries an explicit key policy",
            id="CKV_CONFIDE_4",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["aws_kms_key"],
        )

    def scan_resource_conf(self, conf: dict) -> CheckResult:
        rotates = _first(conf, "enable_key_rotation") is True
        return CheckResult.PASSED if rotates and conf.get("policy") else CheckResult.FAILED


checks = [
    GatewayNeverOpenToTheWorld(),
    LoadBalancerPassesTlsThrough(),
    TranscriptRetentionIsBounded(),
    KmsKeyRotatesWithExplicitPolicy(),
]
