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

WORK=""
remove_work() {
  [[ -z "${WORK}" ]] || rm -rf "${WORK}"
}

main() {
  : "${BUILD_PASSWORD:?BUILD_PASSWORD must be set}" "${SEED_ISO:?SEED_ISO must be set}"
  WORK="$(mktemp -d)"
  trap remove_work EXIT
  render_user_data "${WORK}/user-data"
  printf 'instance-id: slm-copilot-build\nlocal-hostname: slm-copilot-build\n' >"${WORK}/meta-data"
  cloud-localds "${SEED_ISO}" "${WORK}/user-data" "${WORK}/meta-data"
  echo "seed ISO written: ${SEED_ISO}"
}

main "$@"
