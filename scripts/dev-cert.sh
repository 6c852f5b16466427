#!/usr/bin/env bash
# A local CA and a certificate for localhost signed by it, for `make run TLS=1` (HTTPS and HTTP/2
# on the node). Made once into TLS_DIR (.run/tls), kept across runs so a browser that trusts the CA
# keeps trusting the node:
#
#   TLS_DIR/ca.pem               the CA to trust (ca-key.pem stays next to it, private)
#   TLS_DIR/localhost.pem        leaf certificate, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   TLS_DIR/localhost-key.pem    its key: sse-broker --tls-cert TLS_DIR/localhost.pem --tls-key TLS_DIR/localhost-key.pem
#
# Prints how to make Chromium, Firefox or the OS trust the CA. Remove TLS_DIR to start over.
set -euo pipefail
cd "$(dirname "$0")/.."

TLS_DIR=${TLS_DIR:-$PWD/.run/tls}
DAYS=${DAYS:-825}

if [ ! -f "$TLS_DIR/localhost.pem" ] || [ ! -f "$TLS_DIR/localhost-key.pem" ] || [ ! -f "$TLS_DIR/ca.pem" ]; then
    command -v openssl >/dev/null || { echo "dev-cert.sh: openssl is needed (apt-get install openssl)" >&2; exit 1; }
    mkdir -p "$TLS_DIR"
    (umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -sha256 \
            -subj "/CN=sse-broker dev CA ($(hostname))" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
            -keyout "$TLS_DIR/localhost-key.pem" -out "$TLS_DIR/localhost.csr" 2>/dev/null
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$TLS_DIR/localhost.ext"
        openssl x509 -req -in "$TLS_DIR/localhost.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" \
            -CAcreateserial -days "$DAYS" -sha256 -extfile "$TLS_DIR/localhost.ext" -out "$TLS_DIR/localhost.pem" 2>/dev/null)
    rm -f "$TLS_DIR/localhost.csr" "$TLS_DIR/localhost.ext"
    chmod 644 "$TLS_DIR/ca.pem" "$TLS_DIR/localhost.pem"
    echo "dev-cert: made a local CA and a localhost certificate in $TLS_DIR"
else
    echo "dev-cert: using the certificate in $TLS_DIR"
fi

cat <<EOF
dev-cert: to trust it, add the CA $TLS_DIR/ca.pem (once; it signs only this machine's localhost certificate):
  Chromium/Chrome on Linux:  certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n sse-dev -i $TLS_DIR/ca.pem   (apt-get install libnss3-tools)
  Firefox:                   Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import
  Debian/Ubuntu (curl, ...): sudo cp $TLS_DIR/ca.pem /usr/local/share/ca-certificates/sse-dev.crt && sudo update-ca-certificates
  macOS:                     sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain $TLS_DIR/ca.pem
  or just:                   curl --cacert $TLS_DIR/ca.pem https://localhost:\${PORT:-5000}/healthz
EOF
