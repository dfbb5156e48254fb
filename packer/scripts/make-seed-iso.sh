#!/usr/bin/env bash
# Writes the cloud-init seed ISO (SEED_ISO) from cloud-init.yml with the build password's
# hash, so the password itself never lands in a file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly HERE

render_user_data() {
  local out="$1" hash
  hash="$(openssl passwd -6 -stdin <<<"${BUILD_PASSWORD}")"
  sed "s|@ROOT_PASSWORD_HASH@|${hash}|" "${HERE}/cloud-init.yml" >"${out}"
}

main() {
  : "${BUILD_PASSWORD:?BUILD_PASSWORD must be set}" "${SEED_ISO:?SEED_ISO must be set}"
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "${work}"' EXIT
  render_user_data "${work}/user-data"
  printf 'instance-id: slm-copilot-build\nlocal-hostname: slm-copilot-build\n' >"${work}/meta-data"
  cloud-localds "${SEED_ISO}" "${work}/user-data" "${work}/meta-data"
  echo "seed ISO written: ${SEED_ISO}"
}

main "$@"
