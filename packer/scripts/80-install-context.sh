#!/usr/bin/env bash
# Installs the one-context package uploaded to /tmp/one-context.deb, replacing cloud-init's
# role at boot.
set -euo pipefail

readonly PACKAGE=/tmp/one-context.deb

main() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${PACKAGE}"
  rm -f "${PACKAGE}"
}

main "$@"
