#!/bin/sh
# Makes a test CA and --tls-dir directories for a migration source and destination
# (ca.pem, cert.pem, key.pem each) with `ferry tls gen`. Usage:
#   tools/scripts/make-test-certs.sh [OUT_DIR] [FERRY_BINARY]
# OUT_DIR defaults to ./test-certs; the result is OUT_DIR/{ca,src,dst}. Both host
# certificates also carry 127.0.0.1 and localhost, so loopback migrations can use
# --tls-name 127.0.0.1 or --tls-name localhost.
set -eu
out=${1:-test-certs}
ferry=${2:-$(command -v ferry || echo build/tools/ferry)}
if [ ! -x "$ferry" ]; then
  echo "make-test-certs.sh: no ferry binary at '$ferry' (pass it as the second argument)" >&2
  exit 1
fi
"$ferry" tls gen --ca-dir "$out/ca" --out "$out/src" --name src.ferry.test \
  --alt-name localhost --alt-name 127.0.0.1
"$ferry" tls gen --ca-dir "$out/ca" --out "$out/dst" --name dst.ferry.test \
  --alt-name localhost --alt-name 127.0.0.1
echo "source:      --tls-dir $out/src --tls-name dst.ferry.test"
echo "destination: --tls-dir $out/dst --tls-name src.ferry.test"
