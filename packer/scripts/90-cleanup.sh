#!/usr/bin/env bash
# Leaves the image clean for cloud reuse: no build password, no cloud-init, no caches, no
# machine identity.
set -euo pipefail

lock_build_access() {
  passwd -l root >/dev/null
  rm -f /etc/ssh/sshd_config.d/00-packer-build.conf
}

remove_build_tools() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get purge -y -qq cloud-init snapd fwupd >/dev/null 2>&1 || true
  apt-get autoremove -y -qq --purge >/dev/null 2>&1 || true
  apt-get clean -y
  rm -rf /var/lib/apt/lists/* /var/lib/cloud /etc/cloud
}

# forget_identity clears what must differ per VM; sshd makes new host keys at first boot.
forget_identity() {
  truncate -s 0 /etc/machine-id
  rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
  install -d -m 0755 /etc/systemd/system/ssh.service.d
  printf '[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n' >/etc/systemd/system/ssh.service.d/10-host-keys.conf
  rm -rf /tmp/* /var/tmp/*
}

# trim_free_space hands every free block back to the qcow2 (the disk has discard=unmap), so
# what the build downloaded and deleted does not stay in the image. It runs last.
trim_free_space() {
  sync
  fstrim -av
}

main() {
  lock_build_access
  remove_build_tools
  forget_identity
  printf '%s\n' "${APPLIANCE_VERSION:-unknown}" >/etc/one-appliance/slm-copilot-version
  echo "cleanup: build password locked, cloud-init removed, identity cleared"
  trim_free_space
}

main "$@"
