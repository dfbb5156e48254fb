#!/usr/bin/env bash
# Puts the one-apps framework in place: the service entry point, its libraries and the
# context hooks that run configure and bootstrap at boot and report READY.
set -euo pipefail

readonly LIB=/etc/one-appliance/lib

main() {
  install -m 0755 "${LIB}/service.sh" /etc/one-appliance/service
  rm -f "${LIB}/service.sh"
  install -d -m 0755 /etc/one-context.d
  install -m 0755 "${LIB}/net-90-service-appliance" /etc/one-context.d/net-90-service-appliance
  install -m 0755 "${LIB}/net-99-report-ready" /etc/one-context.d/net-99-report-ready
  rm -f "${LIB}/net-90-service-appliance" "${LIB}/net-99-report-ready"
  chmod 0755 /etc/one-appliance/service.d/slm-copilot-ready
}

main "$@"
