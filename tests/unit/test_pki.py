import stat

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from cluster.pki import DevPki
from serve.access.identity import spiffe_id


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_pki_writes_private_keys_0600(tmp_path):
    state = tmp_path / "state"
    pki = DevPki.ensure(state, ["acme"], "confide.local", hosts=["localhost", "127.0.0.1"])
    for key in (pki.ca_key, pki.server_key, pki.client_key("acme")):
        assert _mode(key) == 0o600, key
    assert _mode(state) == 0o700


def test_certificates_chain_to_the_ca_and_carry_identities(tmp_path):
    pki = DevPki.ensure(tmp_path, ["acme"], "confide.local", hosts=["localhost", "127.0.0.1"])
    ca = pki.ca()
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(pki.client_cert("acme").read_bytes())
    for cert in (server, client):
        cert.verify_directly_issued_by(ca.cert)
    server_sans = server.extensions.get_extension_for_oid(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    ).value
    assert "localhost" in server_sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in server_sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    client_sans = client.extensions.get_extension_for_oid(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    ).value
    assert client_sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        spiffe_id("confide.local", "acme")
    ]
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)


def test_ensure_is_idempotent_and_issues_new_tenants(tmp_path):
    pki = DevPki.ensure(tmp_path, ["acme"], "confide.local")
    ca_before = pki.ca_cert.read_bytes()
    DevPki.ensure(tmp_path, ["acme", "globex"], "confide.local")
    assert pki.ca_cert.read_bytes() == ca_before
    assert pki.client_cert("globex").exists()


def test_the_gateway_certificate_names_every_address_of_the_machine(tmp_path):
    import ipaddress

    from cryptography import x509

    from cluster.pki import node_hosts
    from serve.core.config import ConfideConfig

    config = ConfideConfig.model_validate(
        {"state_dir": str(tmp_path), "gateway": {"certificate_hosts": ["gw.example.net"]}}
    )
    pki = DevPki.for_config(config)
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    listed = set(names.get_values_for_type(x509.DNSName))
    listed |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    expected = {
        str(ipaddress.ip_address(h)) if h[0].isdigit() or ":" in h else h for h in node_hosts()
    }
    assert expected | {"gw.example.net"} <= listed
