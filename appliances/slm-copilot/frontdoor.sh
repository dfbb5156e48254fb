#!/usr/bin/env bash
# SLM-Copilot front door: TLS material, credentials and the nginx site in front of the engine.
#
# appliance.sh sources this file and calls the frontdoor_* functions; the reference appliance
# runs it as `frontdoor.sh tls|credentials|site ...`. Every function is idempotent: an unchanged
# input leaves the files byte-identical. Passwords are read from stdin, never from arguments.

FRONTDOOR_NGINX_GROUP="${FRONTDOOR_NGINX_GROUP:-www-data}"
readonly FRONTDOOR_CERT_DAYS=3650
readonly FRONTDOOR_RENEW_SECONDS=2592000
readonly FRONTDOOR_PASSWORD_MAX=72 # bcrypt (htpasswd -B) reads no further

frontdoor_fail() {
  printf 'frontdoor: %s\n' "$*" >&2
  return 1
}

# frontdoor_san_entry prints the subjectAltName entry for one address or DNS name.
frontdoor_san_entry() {
  local name="$1"
  if [[ "${name}" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "${name}" == *:* ]]; then
    printf 'IP:%s' "${name}"
  elif [[ "${name}" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    printf 'DNS:%s' "${name}"
  else
    frontdoor_fail "not an IP address or DNS name: '${name}'"
  fi
}

# frontdoor_tls_selfsigned CERT KEY NAME... makes a self-signed certificate whose
# subjectAltName covers every NAME (IP addresses and DNS names). An existing pair for the
# same names that is not about to expire is kept.
frontdoor_tls_selfsigned() {
  local cert="$1" key="$2"
  shift 2
  [[ "$#" -gt 0 ]] || frontdoor_fail "tls: at least one name for the certificate is required" || return
  local san="" name entry
  for name in "$@"; do
    entry="$(frontdoor_san_entry "${name}")" || return
    san="${san:+${san},}${entry}"
  done
  if [[ -s "${cert}" && -s "${key}" && "$(cat "${cert}.names" 2>/dev/null)" == "${san}" ]] &&
    openssl x509 -in "${cert}" -noout -checkend "${FRONTDOOR_RENEW_SECONDS}" >/dev/null 2>&1; then
    return 0
  fi
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days "${FRONTDOOR_CERT_DAYS}" -subj "/O=SLM-Copilot/CN=$1" \
    -addext "subjectAltName=${san}" \
    -keyout "${key}.tmp" -out "${cert}.tmp" >/dev/null 2>&1 ||
    frontdoor_fail "tls: openssl could not make a certificate for ${san}" || return
  chmod 0600 "${key}.tmp"
  chmod 0644 "${cert}.tmp"
  mv -f "${key}.tmp" "${key}"
  mv -f "${cert}.tmp" "${cert}"
  printf '%s\n' "${san}" >"${cert}.names"
}

# frontdoor_regex_literal escapes a string so PCRE matches it literally inside a
# single-quoted nginx string.
frontdoor_regex_literal() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "${c}" in
    [A-Za-z0-9]) out+="${c}" ;;
    \\) out+="\\\\\\\\" ;;
    "'") out+="\\'" ;;
    *) out+="\\${c}" ;;
    esac
  done
  printf '%s' "${out}"
}

frontdoor_check_password() {
  local password="$1"
  [[ -n "${password}" ]] || frontdoor_fail "credentials: empty password on stdin" || return
  local LC_ALL=C
  [[ "${password}" =~ ^[[:print:]]+$ ]] ||
    frontdoor_fail "credentials: the password must be printable ASCII (no control or non-ASCII characters)" || return
  # htpasswd -B is bcrypt, which reads only the first 72 bytes: a longer password would let
  # Basic authentication accept anything after its 72nd character.
  ((${#password} <= FRONTDOOR_PASSWORD_MAX)) ||
    frontdoor_fail "credentials: the password must be at most ${FRONTDOOR_PASSWORD_MAX} characters (bcrypt ignores the rest)"
}

# frontdoor_write_if_changed FILE MODE writes stdin to FILE atomically, leaving FILE
# untouched (same bytes, same mtime) when the content is already the same.
frontdoor_write_if_changed() {
  local file="$1" mode="$2"
  cat >"${file}.tmp" && chmod "${mode}" "${file}.tmp" || frontdoor_fail "cannot write ${file}" || return
  if cmp -s "${file}.tmp" "${file}"; then
    rm -f "${file}.tmp"
  else
    mv -f "${file}.tmp" "${file}"
  fi
}

# frontdoor_credentials DIR USER reads the password from stdin and writes, in DIR:
#   htpasswd      HTTP Basic credentials (bcrypt), readable by nginx's workers;
#   secrets.conf  nginx maps for the Bearer check and the engine's key (root only);
#   engine.key    the key nginx presents to the engine, so the client's credentials
#                 never travel upstream (root only; the engine gets it from its unit's
#                 environment file).
frontdoor_credentials() {
  local dir="$1" user="$2" password engine_key
  IFS= read -r password || [[ -n "${password}" ]] || true
  frontdoor_check_password "${password}" || return
  [[ "${user}" =~ ^[A-Za-z0-9._-]+$ ]] || frontdoor_fail "credentials: bad user name '${user}'" || return
  mkdir -p "${dir}"
  chmod 0750 "${dir}"
  if [[ "$(id -u)" -eq 0 ]]; then
    chgrp "${FRONTDOOR_NGINX_GROUP}" "${dir}" ||
      frontdoor_fail "credentials: group '${FRONTDOOR_NGINX_GROUP}' (FRONTDOOR_NGINX_GROUP) must exist" || return
  fi
  if ! htpasswd -vi "${dir}/htpasswd" "${user}" <<<"${password}" >/dev/null 2>&1; then
    htpasswd -ciB "${dir}/htpasswd.tmp" "${user}" <<<"${password}" >/dev/null 2>&1 ||
      frontdoor_fail "credentials: htpasswd failed" || return
    mv -f "${dir}/htpasswd.tmp" "${dir}/htpasswd"
  fi
  chmod 0640 "${dir}/htpasswd"
  if [[ "$(id -u)" -eq 0 ]]; then
    chgrp "${FRONTDOOR_NGINX_GROUP}" "${dir}/htpasswd"
  fi
  if [[ ! -s "${dir}/engine.key" ]]; then
    openssl rand -hex 32 >"${dir}/engine.key.tmp"
    chmod 0600 "${dir}/engine.key.tmp"
    mv -f "${dir}/engine.key.tmp" "${dir}/engine.key"
  fi
  engine_key="$(cat "${dir}/engine.key")"
  frontdoor_write_if_changed "${dir}/secrets.conf" 0600 <<CONF
# Generated by frontdoor.sh: holds secrets, keep it root-only.
map \$http_authorization \$slm_copilot_bearer_ok {
    default 0;
    '~^Bearer\\ $(frontdoor_regex_literal "${password}")\$' 1;
}
map \$host \$slm_copilot_engine_auth {
    default "Bearer ${engine_key}";
}
CONF
}

# frontdoor_render_site TEMPLATE OUT NAME=VALUE... fills every @NAME@ in TEMPLATE and
# writes OUT; a placeholder left without a value is an error.
frontdoor_render_site() {
  local template="$1" out="$2" content pair name value left
  shift 2
  content="$(<"${template}")" || frontdoor_fail "site: cannot read ${template}" || return
  for pair in "$@"; do
    name="${pair%%=*}"
    value="${pair#*=}"
    [[ "${pair}" == *=* && "${name}" =~ ^[A-Z_]+$ ]] || frontdoor_fail "site: bad setting '${pair}', want NAME=VALUE" || return
    content="${content//"@${name}@"/"${value}"}"
  done
  left="$(grep -o '@[A-Z_]*@' <<<"${content}" | sort -u | tr '\n' ' ')" || true
  [[ -z "${left}" ]] || frontdoor_fail "site: no value for ${left}in ${template}" || return
  frontdoor_write_if_changed "${out}" 0644 <<<"${content}"
}

frontdoor_usage() {
  cat >&2 <<'USAGE'
usage: frontdoor.sh tls CERT KEY NAME...              self-signed certificate, SAN = NAMEs
       frontdoor.sh credentials DIR USER <password    htpasswd, secrets.conf, engine.key
       frontdoor.sh site TEMPLATE OUT NAME=VALUE...    render the nginx site
USAGE
}

frontdoor_main() {
  local cmd="${1:-}"
  shift || true
  case "${cmd}" in
  tls) frontdoor_tls_selfsigned "$@" ;;
  credentials) frontdoor_credentials "$@" ;;
  site) frontdoor_render_site "$@" ;;
  *)
    frontdoor_usage
    return 2
    ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  umask 0077
  frontdoor_main "$@"
fi
