import pytest
from pydantic import ValidationError

from serve.core.config import (
    DEFAULTS_FILE,
    ConfideConfig,
    TranscriberConfig,
    documented_defaults,
    load_config,
)


def test_shipped_defaults_file_is_generated_from_the_model():
    assert DEFAULTS_FILE.read_text() == documented_defaults(), (
        "serve/core/confide.yaml is stale: run `confide config defaults > serve/core/confide.yaml`"
    )
    assert load_config(DEFAULTS_FILE) == ConfideConfig()


def test_every_field_is_documented():
    from pydantic import BaseModel

    from serve.core.config import AutoscalingConfig, TenantConfig

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"
            nested = field.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                walk(nested)

    for model in (ConfideConfig, AutoscalingConfig, TenantConfig):
        walk(model)


@pytest.mark.parametrize(
    "data",
    [
        {"gateway": {"max_chunk_bytes": 70000}},
        {"gateway": {"port": 70000}},
        {"tenants": []},
        {"tenants": [{"name": "Bad Name"}]},
        {"tenants": [{"name": "a"}, {"name": "a"}]},
        {"transcriber": {"device": "cuda"}},
        {"transcriber": {"autoscaling": {"min_replicas": 3, "max_replicas": 1}}},
        {"gateway": {"tls": {"cert": "/x.pem"}}},
        {"dialogue": {"max_model_len": 256, "max_reply_tokens": 256}},
        {"unknown_section": {}},
    ],
)
def test_invalid_configs_are_rejected(data):
    with pytest.raises(ValidationError):
        ConfideConfig.model_validate(data)


def test_file_then_environment(tmp_path, monkeypatch):
    path = tmp_path / "confide.yaml"
    path.write_text("gateway:\n  port: 6000\ntenants:\n  - name: acme\n")
    monkeypatch.setenv("CONFIDE_CONFIG", str(path))
    monkeypatch.setenv("CONFIDE_STATE_DIR", str(tmp_path / "state"))
    config = load_config()
    assert config.gateway.port == 6000
    assert config.tenant_names == {"acme"}
    assert config.state_path == tmp_path / "state"


def test_replica_spread_and_count_reach_serve():
    assert TranscriberConfig().replica_options() == {"num_replicas": 1}
    spread = TranscriberConfig(num_replicas=2, max_replicas_per_node=1).replica_options()
    assert spread == {"num_replicas": 2, "max_replicas_per_node": 1}
    scaled = TranscriberConfig(autoscaling={"min_replicas": 1, "max_replicas": 3})
    assert "num_replicas" not in scaled.replica_options()
    assert scaled.replica_options()["autoscaling_config"]["max_replicas"] == 3
