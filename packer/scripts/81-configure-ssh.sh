#!/usr/bin/env bash
# SSH hardening for the saved image: keys only, root by key only. Takes effect at the next
# boot, so the build's own session keeps working.
set -euo pipefail

readonly HARDENING=/etc/ssh/sshd_config.d/10-slm-copilot.conf

main() {
  install -d -m 0755 /etc/ssh/sshd_config.d
  cat >"${HARDENING}" <<'CONF'
# SLM-Copilot appliance: log in with the SSH key from the VM's context.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
CONF
  chmod 0644 "${HARDENING}"
}

main "$@"
