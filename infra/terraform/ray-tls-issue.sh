#!/bin/sh
# Init container of every Ray pod: a key and a certificate for this pod's IP, signed by
# the CA in /etc/ray/ca (ca.crt, ca.key), written to the memory-backed /etc/ray/tls.
set -eu
out=/etc/ray/tls
umask 077
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$out/tls.key" -subj "/CN=ray-node" -out "$out/tls.csr"
printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
  "$POD_IP" > "$out/ext.cnf"
openssl x509 -req -in "$out/tls.csr" -CA /etc/ray/ca/ca.crt -CAkey /etc/ray/ca/ca.key \
  -CAcreateserial -days 30 -sha256 -extfile "$out/ext.cnf" -out "$out/tls.crt"
cp /etc/ray/ca/ca.crt "$out/ca.crt"
rm -f "$out/tls.csr" "$out/ext.cnf"
