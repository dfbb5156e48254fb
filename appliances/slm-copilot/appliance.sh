#!/usr/bin/env bash
# SLM-Copilot appliance for the one-apps lifecycle: a CPU coding copilot (Devstral Small 2 on
# LocalAI) behind an nginx front door with TLS and credentials, for Cline in VS Code.
#
# one-apps installs this file as /etc/one-appliance/service.d/appliance.sh and calls
# service_install (image build), service_configure and service_bootstrap (every boot).
# SLM_ROOT prefixes every path, so the configure stage can run in a sandbox; the other SLM_*
# layout variables exist for that sandbox and keep their defaults on a VM.

# shellcheck disable=SC2034 # ONE_SERVICE_* are read by the one-apps framework
ONE_SERVICE_NAME='SLM-Copilot'
ONE_SERVICE_VERSION='1.0.0'
ONE_SERVICE_BUILD=$(date +%s)
ONE_SERVICE_SHORT_DESCRIPTION='CPU coding copilot: Devstral Small 2 on LocalAI, OpenAI API for Cline'
ONE_SERVICE_DESCRIPTION='Devstral Small 2 (24B, Q4_K_M) served by LocalAI through an OpenAI-compatible
API on HTTPS, with password authentication (HTTP Basic or Bearer), SSE streaming and a
ready-to-paste Cline configuration in /etc/one-appliance/config.'
ONE_SERVICE_RECONFIGURABLE=true

# Four entries per variable: name, stage, description, user-input spec.
# shellcheck disable=SC2034
ONE_SERVICE_PARAMS=(
    'ONEAPP_COPILOT_PASSWORD'          'configure' 'API password (user copilot, also the Bearer API key); empty: generated and kept' 'O|password'
    'ONEAPP_COPILOT_CONTEXT_SIZE'      'configure' 'Context window in tokens, 2048-131072 (Cline sends about 10k on its first request)' 'O|number'
    'ONEAPP_COPILOT_THREADS'           'configure' 'CPU threads for inference, 0 = all cores' 'O|number'
    'ONEAPP_COPILOT_DOMAIN'            'configure' 'DNS name of the VM: added to the certificate; enables Lets Encrypt' 'O|text'
    'ONEAPP_COPILOT_LETSENCRYPT_EMAIL' 'bootstrap' 'E-mail for Lets Encrypt expiry notices (with ONEAPP_COPILOT_DOMAIN)' 'O|text'
    'ONEAPP_COPILOT_TLS_CERT'          'configure' 'Your TLS certificate chain (PEM, base64); empty: self-signed' 'O|text64'
    'ONEAPP_COPILOT_TLS_KEY'           'configure' 'Private key of ONEAPP_COPILOT_TLS_CERT (PEM, base64)' 'O|text64'
    'ONEAPP_COPILOT_MODEL_URL'         'bootstrap' 'https URL of the GGUF to serve instead of the pinned model (with ONEAPP_COPILOT_MODEL_SHA256)' 'O|text'
    'ONEAPP_COPILOT_MODEL_SHA256'      'bootstrap' 'sha256 of the file at ONEAPP_COPILOT_MODEL_URL (64 hex digits)' 'O|text'
)

ONEAPP_COPILOT_PASSWORD="${ONEAPP_COPILOT_PASSWORD:-}"
ONEAPP_COPILOT_CONTEXT_SIZE="${ONEAPP_COPILOT_CONTEXT_SIZE:-32768}"
ONEAPP_COPILOT_THREADS="${ONEAPP_COPILOT_THREADS:-0}"
ONEAPP_COPILOT_DOMAIN="${ONEAPP_COPILOT_DOMAIN:-}"
ONEAPP_COPILOT_LETSENCRYPT_EMAIL="${ONEAPP_COPILOT_LETSENCRYPT_EMAIL:-}"
ONEAPP_COPILOT_TLS_CERT="${ONEAPP_COPILOT_TLS_CERT:-}"
ONEAPP_COPILOT_TLS_KEY="${ONEAPP_COPILOT_TLS_KEY:-}"
ONEAPP_COPILOT_MODEL_URL="${ONEAPP_COPILOT_MODEL_URL:-}"
ONEAPP_COPILOT_MODEL_SHA256="${ONEAPP_COPILOT_MODEL_SHA256:-}"

# Build-time sources: override any of them to build from a mirror or local files (file://).
# LocalAI release asset names: .goreleaser.yaml at v4.9.0 (archives and checksum name_template).
LOCALAI_VERSION="${LOCALAI_VERSION:-v4.9.0}"
LOCALAI_BASE_URL="${LOCALAI_BASE_URL:-https://github.com/mudler/LocalAI/releases/download/${LOCALAI_VERSION}}"
LOCALAI_ASSET="${LOCALAI_ASSET:-local-ai-${LOCALAI_VERSION}-linux-amd64}"
LOCALAI_CHECKSUMS_ASSET="${LOCALAI_CHECKSUMS_ASSET:-LocalAI-${LOCALAI_VERSION}-checksums.txt}"
# The CPU llama.cpp backend as LocalAI's release tags it (.github/workflows/backend_merge.yml:
# semver tag + tag-suffix '-cpu-llama-cpp' of .github/backend-matrix.yml).
LOCALAI_BACKEND_IMAGE="${LOCALAI_BACKEND_IMAGE:-quay.io/go-skynet/local-ai-backends:${LOCALAI_VERSION}-cpu-llama-cpp}"
# The name it is installed under, which the model YAML's `backend:` names (core/gallery/backends.go
# finds installed backends by directory name).
readonly LOCALAI_BACKEND_NAME='llama-cpp'

# The model, pinned by Hugging Face commit, sha256 and size. The build passes all three (they
# could not be read where this was written); the install stage refuses an unpinned model.
readonly MODEL_REPO='unsloth/Devstral-Small-2-24B-Instruct-2512-GGUF'
readonly MODEL_REMOTE_FILE='Devstral-Small-2-24B-Instruct-2512-Q4_K_M.gguf'
MODEL_COMMIT="${MODEL_COMMIT:-}"
MODEL_URL="${MODEL_URL:-https://huggingface.co/${MODEL_REPO}/resolve/${MODEL_COMMIT:-main}/${MODEL_REMOTE_FILE}}"
MODEL_SHA256="${MODEL_SHA256:-}"
MODEL_SIZE="${MODEL_SIZE:-}"
MODEL_FILE="${MODEL_FILE:-devstral-small-2-Q4_K_M.gguf}"
MODEL_ID="${MODEL_ID:-devstral-small-2}"

# Build switches (Packer passes them to the install stage): bake the weights into the image
# (false: the small image, which downloads them at first boot), and the pre-warm's context
# (small, so the build VM needs little more than the weights' RAM).
SLM_BAKE_MODEL="${SLM_BAKE_MODEL:-true}"
SLM_PREWARM_CONTEXT="${SLM_PREWARM_CONTEXT:-4096}"
# Seconds between progress lines of a download.
SLM_PROGRESS_SECONDS="${SLM_PROGRESS_SECONDS:-30}"

# Layout. On a VM these keep their defaults.
SLM_ROOT="${SLM_ROOT:-}"
SLM_HTTP_LISTEN="${SLM_HTTP_LISTEN:-80}"
SLM_HTTPS_LISTEN="${SLM_HTTPS_LISTEN:-443}"
SLM_ENGINE_ADDR="${SLM_ENGINE_ADDR:-127.0.0.1:8080}"
SLM_ENGINE_HEALTH_PATH="${SLM_ENGINE_HEALTH_PATH:-/readyz}"
SLM_ENGINE_TOKENIZE_PATH="${SLM_ENGINE_TOKENIZE_PATH:-/v1/tokenize}"
SLM_NGINX_CONF="${SLM_NGINX_CONF:-/etc/nginx/nginx.conf}"
SLM_ADDRESSES="${SLM_ADDRESSES:-}"

readonly COPILOT_USER='copilot'
readonly LOCALAI_USER='local-ai'
readonly CONTEXT_MIN=2048 CONTEXT_MAX=131072 THREADS_MAX=256

APPLIANCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Paths, all under SLM_ROOT.
slm_paths() {
    P_STATE="${SLM_ROOT}/var/lib/slm-copilot"
    P_NGINX="${SLM_ROOT}/etc/nginx/slm-copilot"
    P_TLS="${P_NGINX}/tls"
    P_SITE="${SLM_ROOT}/etc/nginx/sites-available/slm-copilot.conf"
    P_SITE_LINK="${SLM_ROOT}/etc/nginx/sites-enabled/slm-copilot.conf"
    P_ENGINE_ENV="${SLM_ROOT}/etc/slm-copilot/local-ai.env"
    P_MODELS="${SLM_ROOT}/opt/local-ai/models"
    P_BACKENDS="${SLM_ROOT}/opt/local-ai/backends"
    P_READY="${SLM_ROOT}/run/slm-copilot/ready"
    P_ACME="${SLM_ROOT}/var/www/acme"
    P_REPORT="${SLM_ROOT}/etc/one-appliance/config"
    P_LOG="${SLM_ROOT}/var/log/one-appliance/slm-copilot.log"
    P_SHARE="${SLM_ROOT}/usr/local/share/slm-copilot"
    P_PIN="${P_SHARE}/model.pin"
    P_VERIFIED="${P_SHARE}/model.verified"
    P_STATUS="${P_STATE}/status"
    P_BIN="${SLM_ROOT}/usr/local/bin"
    P_SBIN="${SLM_ROOT}/usr/local/sbin"
    P_UNITS="${SLM_ROOT}/etc/systemd/system"
}
slm_paths

# --- logging ------------------------------------------------------------------------------

# log LEVEL MESSAGE... writes a timestamped line to the appliance log and stderr.
log() {
    local level="$1" line
    shift
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) [${level}] $*"
    mkdir -p "$(dirname "${P_LOG}")"
    printf '%s\n' "${line}" >>"${P_LOG}"
    printf '%s\n' "${line}" >&2
}

# fail logs an error and aborts the stage.
fail() {
    log error "$*"
    return 1
}

# --- validation (configure touches nothing until every value is valid) ---------------------

invalid() {
    fail "$1='$2' is invalid: $3"
}

validate_integer() {
    local name="$1" min="$2" max="$3" what="$4" value="${!1}"
    if [[ "${value}" =~ ^[0-9]{1,9}$ ]] && ((10#${value} >= min && 10#${value} <= max)); then
        return 0
    fi
    invalid "${name}" "${value}" "want an integer from ${min} to ${max} (${what})"
}

validate_password() {
    local value="${ONEAPP_COPILOT_PASSWORD}" LC_ALL=C
    [[ -z "${value}" ]] && return 0
    # At most 72: the front door's htpasswd is bcrypt, which ignores what follows.
    [[ "${value}" =~ ^[!-~][\ -~]{6,70}[!-~]$ ]] ||
        fail "ONEAPP_COPILOT_PASSWORD is invalid: want 8 to 72 printable ASCII characters, not starting or ending with a space, or empty to generate one (the value is not shown)"
}

validate_domain() {
    local value="${ONEAPP_COPILOT_DOMAIN}"
    [[ -z "${value}" ]] && return 0
    [[ "${#value}" -le 253 && "${value}" =~ ^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$ ]] ||
        invalid ONEAPP_COPILOT_DOMAIN "${value}" "want a fully qualified DNS name such as copilot.example.com, or empty"
}

validate_email() {
    local value="${ONEAPP_COPILOT_LETSENCRYPT_EMAIL}"
    [[ -z "${value}" ]] && return 0
    [[ "${value}" =~ ^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$ ]] ||
        invalid ONEAPP_COPILOT_LETSENCRYPT_EMAIL "${value}" "want an e-mail address, or empty"
}

# validate_user_tls decodes the user's certificate and key into DIR and checks they belong together.
validate_user_tls() {
    local dir="$1" cert_pub key_pub
    if [[ -z "${ONEAPP_COPILOT_TLS_CERT}" && -z "${ONEAPP_COPILOT_TLS_KEY}" ]]; then
        return 0
    fi
    [[ -n "${ONEAPP_COPILOT_TLS_CERT}" && -n "${ONEAPP_COPILOT_TLS_KEY}" ]] ||
        fail "ONEAPP_COPILOT_TLS_CERT and ONEAPP_COPILOT_TLS_KEY go together: set both (base64 PEM) or neither" || return
    base64 -d <<<"${ONEAPP_COPILOT_TLS_CERT}" >"${dir}/cert.pem" 2>/dev/null &&
        openssl x509 -in "${dir}/cert.pem" -noout 2>/dev/null ||
        fail "ONEAPP_COPILOT_TLS_CERT is invalid: want a base64-encoded PEM certificate (base64 -w0 cert.pem)" || return
    base64 -d <<<"${ONEAPP_COPILOT_TLS_KEY}" >"${dir}/key.pem" 2>/dev/null &&
        openssl pkey -in "${dir}/key.pem" -noout 2>/dev/null ||
        fail "ONEAPP_COPILOT_TLS_KEY is invalid: want a base64-encoded PEM private key without passphrase (the value is not shown)" || return
    cert_pub="$(openssl x509 -in "${dir}/cert.pem" -noout -pubkey)"
    key_pub="$(openssl pkey -in "${dir}/key.pem" -pubout)"
    [[ "${cert_pub}" == "${key_pub}" ]] ||
        fail "ONEAPP_COPILOT_TLS_KEY does not belong to ONEAPP_COPILOT_TLS_CERT: the certificate's public key differs from the key's" || return
    openssl x509 -in "${dir}/cert.pem" -noout -checkend 0 >/dev/null ||
        fail "ONEAPP_COPILOT_TLS_CERT has expired ($(openssl x509 -in "${dir}/cert.pem" -noout -enddate))"
}

# validate_model_source checks the context's model override: both or neither, https, 64 hex.
validate_model_source() {
    local url="${ONEAPP_COPILOT_MODEL_URL}" sha="${ONEAPP_COPILOT_MODEL_SHA256}"
    [[ -z "${url}" && -z "${sha}" ]] && return 0
    [[ -n "${url}" && -n "${sha}" ]] ||
        fail "ONEAPP_COPILOT_MODEL_URL and ONEAPP_COPILOT_MODEL_SHA256 go together: set both or neither" || return
    [[ "${url}" =~ ^https://[^/[:space:]]+/[^[:space:]]+$ ]] ||
        invalid ONEAPP_COPILOT_MODEL_URL "${url}" "want an https:// URL of a GGUF file" || return
    [[ "${sha}" =~ ^[0-9a-fA-F]{64}$ ]] ||
        invalid ONEAPP_COPILOT_MODEL_SHA256 "${sha}" "want the file's sha256, 64 hex digits (sha256sum FILE)"
}

validate_all() {
    local tls_dir="$1"
    validate_password &&
        validate_integer ONEAPP_COPILOT_CONTEXT_SIZE "${CONTEXT_MIN}" "${CONTEXT_MAX}" "tokens" &&
        validate_integer ONEAPP_COPILOT_THREADS 0 "${THREADS_MAX}" "0 = all cores" &&
        validate_domain &&
        validate_email &&
        validate_model_source &&
        validate_user_tls "${tls_dir}"
}

# --- configure ----------------------------------------------------------------------------

# shellcheck source=appliances/slm-copilot/frontdoor.sh
source "${APPLIANCE_DIR}/frontdoor.sh"

# write_file FILE MODE writes stdin to FILE, leaving it untouched when unchanged.
write_file() {
    mkdir -p "$(dirname "$1")"
    frontdoor_write_if_changed "$1" "$2"
}

# vm_addresses lists the addresses users reach the VM at: the context's ETHx_IP values, else
# the global-scope addresses of the interfaces.
vm_addresses() {
    if [[ -n "${SLM_ADDRESSES}" ]]; then
        tr ' ' '\n' <<<"${SLM_ADDRESSES}"
        return
    fi
    local var found=""
    for var in $(compgen -v | grep -E '^ETH[0-9]+_IP6?$' | sort); do
        [[ -n "${!var}" ]] && printf '%s\n' "${!var}" && found=1
    done
    [[ -n "${found}" ]] && return
    ip -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4}'
}

# current_password prints the password: the context's, else the one kept from an earlier
# boot, else a new one (24 characters); configure persists it so reboots keep it.
current_password() {
    local saved="${P_STATE}/password"
    if [[ -n "${ONEAPP_COPILOT_PASSWORD}" ]]; then
        printf '%s' "${ONEAPP_COPILOT_PASSWORD}"
    elif [[ -s "${saved}" ]]; then
        cat "${saved}"
    else
        openssl rand -hex 12
    fi
}

persist_password() {
    mkdir -p "${P_STATE}"
    chmod 0700 "${P_STATE}"
    printf '%s' "$1" | write_file "${P_STATE}/password" 0600
}

threads() {
    if [[ "$((10#${ONEAPP_COPILOT_THREADS}))" -eq 0 ]]; then
        nproc
    else
        printf '%d' "$((10#${ONEAPP_COPILOT_THREADS}))"
    fi
}

# write_model_config writes the model's LocalAI config (keys of core/config/model_config.go at
# v4.9.0; a test checks each). Tool calls go through the GGUF's jinja template, not LocalAI's
# JSON grammar, as LocalAI's own importer sets it (core/gallery/importers/llama-cpp.go).
write_model_config() {
    write_file "${P_MODELS}/${MODEL_ID}.yaml" 0644 <<YAML
# Generated by appliance.sh from the context; edits are overwritten at boot.
name: ${MODEL_ID}
backend: ${LOCALAI_BACKEND_NAME}
context_size: $((10#${ONEAPP_COPILOT_CONTEXT_SIZE}))
threads: $(threads)
mmap: true
f16: true
parameters:
  model: ${MODEL_FILE}
  temperature: 0.15
template:
  use_tokenizer_template: true
function:
  grammar:
    disable: true
options:
  - use_jinja:true
YAML
}

# write_engine_env writes LocalAI's settings (env names of core/cli/run.go at v4.9.0).
write_engine_env() {
    write_file "${P_ENGINE_ENV}" 0600 <<ENV
# Generated by appliance.sh: LocalAI's settings, read by local-ai.service (root only: it holds a key).
LOCALAI_ADDRESS=${SLM_ENGINE_ADDR}
LOCALAI_MODELS_PATH=/opt/local-ai/models
LOCALAI_BACKENDS_PATH=/opt/local-ai/backends
LOCALAI_THREADS=$(threads)
LOCALAI_CONTEXT_SIZE=$((10#${ONEAPP_COPILOT_CONTEXT_SIZE}))
LOCALAI_DISABLE_WEBUI=true
# What the front door accepts (client_max_body_size 50m); LocalAI's default is 15 MB (core/http/app.go BodyLimit).
LOCALAI_UPLOAD_LIMIT=50
LOCALAI_LOAD_TO_MEMORY=${MODEL_ID}
LOCALAI_API_KEY=$(cat "${P_NGINX}/engine.key")
SLM_MODEL_ID=${MODEL_ID}
ENV
}

# set_status records what the appliance is doing, for the report's status line.
set_status() {
    mkdir -p "${P_STATE}" && chmod 0700 "${P_STATE}" &&
        printf '%s\n' "$1" | write_file "${P_STATUS}" 0600 || return
    [[ -f "${P_REPORT}" ]] || return 0
    awk -v status="$1" '/^status / {print "status       = " status; next} {print}' "${P_REPORT}" | write_file "${P_REPORT}" 0600
}

current_status() {
    cat "${P_STATUS}" 2>/dev/null || echo "configured"
}

# tls_mode prints which certificate the site uses: user, letsencrypt or self-signed.
tls_mode() {
    if [[ -n "${ONEAPP_COPILOT_TLS_CERT}" ]]; then
        echo user
    elif [[ -n "${ONEAPP_COPILOT_DOMAIN}" && -s "${SLM_ROOT}/etc/letsencrypt/live/${ONEAPP_COPILOT_DOMAIN}/fullchain.pem" ]]; then
        echo letsencrypt
    else
        echo self-signed
    fi
}

# configure_tls puts the certificate in place and prints "CERT KEY" for the site.
configure_tls() {
    local staged="$1" names=()
    mkdir -p "${P_TLS}"
    case "$(tls_mode)" in
    user)
        frontdoor_write_if_changed "${P_TLS}/user-cert.pem" 0644 <"${staged}/cert.pem"
        frontdoor_write_if_changed "${P_TLS}/user-key.pem" 0600 <"${staged}/key.pem"
        printf '%s %s' "${P_TLS}/user-cert.pem" "${P_TLS}/user-key.pem"
        ;;
    letsencrypt)
        printf '%s %s' "${SLM_ROOT}/etc/letsencrypt/live/${ONEAPP_COPILOT_DOMAIN}/fullchain.pem" "${SLM_ROOT}/etc/letsencrypt/live/${ONEAPP_COPILOT_DOMAIN}/privkey.pem"
        ;;
    self-signed)
        mapfile -t names < <(vm_addresses)
        [[ -n "${ONEAPP_COPILOT_DOMAIN}" ]] && names=("${ONEAPP_COPILOT_DOMAIN}" "${names[@]}")
        [[ "${#names[@]}" -gt 0 ]] || fail "no IP address found for the certificate: is the network up?" || return
        frontdoor_tls_selfsigned "${P_TLS}/cert.pem" "${P_TLS}/key.pem" "${names[@]}" || return
        printf '%s %s' "${P_TLS}/cert.pem" "${P_TLS}/key.pem"
        ;;
    esac
}

# render_site writes the nginx site for the certificate pair CERT KEY (paths as nginx sees them).
render_site() {
    local cert="$1" key="$2" redirect_port=""
    [[ "${SLM_HTTPS_LISTEN##*:}" == "443" ]] || redirect_port=":${SLM_HTTPS_LISTEN##*:}"
    mkdir -p "$(dirname "${P_SITE}")" "$(dirname "${P_SITE_LINK}")"
    install -d -m 0755 "${P_ACME}" # nginx's workers serve the ACME challenges from it
    install -D -m 0644 "${APPLIANCE_DIR}/context-guard.js" "${P_NGINX}/context-guard.js" || return
    frontdoor_render_site "${APPLIANCE_DIR}/site.conf.tmpl" "${P_SITE}" \
        "SECRETS_CONF=${P_NGINX}/secrets.conf" \
        "HTPASSWD_FILE=${P_NGINX}/htpasswd" \
        "TLS_CERT=${cert}" \
        "TLS_KEY=${key}" \
        "ENGINE_ADDR=${SLM_ENGINE_ADDR}" \
        "ENGINE_HEALTH_PATH=${SLM_ENGINE_HEALTH_PATH}" \
        "ENGINE_TOKENIZE_PATH=${SLM_ENGINE_TOKENIZE_PATH}" \
        "CONTEXT_GUARD=${P_NGINX}/context-guard.js" \
        "CONTEXT_SIZE=$((10#${ONEAPP_COPILOT_CONTEXT_SIZE}))" \
        "MODEL_ID=${MODEL_ID}" \
        "READY_MARKER=${P_READY}" \
        "ACME_ROOT=${P_ACME}" \
        "HTTP_LISTEN=${SLM_HTTP_LISTEN}" \
        "HTTPS_LISTEN=${SLM_HTTPS_LISTEN}" \
        "HTTPS_REDIRECT_PORT=${redirect_port}" || return
    ln -sfn "${P_SITE}" "${P_SITE_LINK}"
    rm -f "${SLM_ROOT}/etc/nginx/sites-enabled/default"
}

check_nginx() {
    local out
    out="$(nginx -t -q -c "${SLM_NGINX_CONF}" 2>&1)" || fail "nginx rejects the configuration: ${out}"
}

# endpoint prints the URL users connect to.
endpoint() {
    local host port="${SLM_HTTPS_LISTEN##*:}"
    host="${ONEAPP_COPILOT_DOMAIN:-$(vm_addresses | head -n 1)}"
    [[ "${host}" == *:* ]] && host="[${host}]"
    if [[ "${port}" == "443" ]]; then
        printf 'https://%s' "${host}"
    else
        printf 'https://%s:%s' "${host}" "${port}"
    fi
}

# write_report writes the report users read for the endpoint, credentials and Cline settings.
write_report() {
    local password="$1" url trust
    url="$(endpoint)"
    case "$(tls_mode)" in
    self-signed)
        trust="The certificate is self-signed. Trust it before using Cline:
  scp root@VM:/etc/nginx/slm-copilot/tls/cert.pem slm-copilot.pem
  then start VS Code with NODE_EXTRA_CA_CERTS=/path/to/slm-copilot.pem
  (curl: --cacert slm-copilot.pem; acceptance suite: -ca-cert slm-copilot.pem)"
        ;;
    *) trust="The certificate is signed by a CA ($(tls_mode)): no extra trust needed." ;;
    esac
    mkdir -p "$(dirname "${P_REPORT}")"
    write_file "${P_REPORT}" 0600 <<REPORT
[SLM-Copilot]
endpoint     = ${url}
username     = ${COPILOT_USER}
password     = ${password}
model        = ${MODEL_ID}
status       = $(current_status)
context_size = $((10#${ONEAPP_COPILOT_CONTEXT_SIZE}))
threads      = $(threads)
tls_mode     = $(tls_mode)

[Cline: API Provider "OpenAI Compatible"]
base_url       = ${url}/v1
api_key        = ${password}
model_id       = ${MODEL_ID}
context_window = $((10#${ONEAPP_COPILOT_CONTEXT_SIZE}))

[TLS]
${trust}

[Check]
  curl -u ${COPILOT_USER}:PASSWORD ${url}/v1/models
  go test ./acceptance -endpoint=${url} -password=PASSWORD
REPORT
}

service_configure() {
    local staged password pair cert key
    log info "configure: validating context"
    staged="$(mktemp -d "${TMPDIR:-/tmp}/slm-copilot-stage.XXXXXX")"
    if ! validate_all "${staged}"; then
        rm -rf "${staged}"
        fail "configure: nothing was changed; fix the context variable and reboot (or re-run the configure stage)"
        return 1
    fi
    password="$(current_password)"
    persist_password "${password}" || return
    frontdoor_credentials "${P_NGINX}" "${COPILOT_USER}" <<<"${password}" || return
    write_model_config || return
    write_engine_env || return
    set_status "configured; the bootstrap stage starts the engine" || return
    pair="$(configure_tls "${staged}")" || return
    rm -rf "${staged}"
    read -r cert key <<<"${pair}"
    render_site "${cert}" "${key}" || return
    check_nginx || return
    write_report "${password}" || return
    log info "configure: done (context ${ONEAPP_COPILOT_CONTEXT_SIZE}, threads $(threads), TLS $(tls_mode), endpoint $(endpoint))"
}

# --- install (inside the image build, with internet) ----------------------------------------

# model_commit prints the Hugging Face commit MODEL_URL resolves at, if it names one.
model_commit() {
    if [[ "${MODEL_URL}" =~ /resolve/([0-9a-f]{40})/ ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# print_sources prints the build's sources as NAME=VALUE lines, for the build manifest.
print_sources() {
    local name
    MODEL_COMMIT="$(model_commit)"
    for name in LOCALAI_VERSION LOCALAI_ASSET LOCALAI_CHECKSUMS_ASSET LOCALAI_BACKEND_IMAGE LOCALAI_BACKEND_NAME \
        MODEL_URL MODEL_COMMIT MODEL_FILE MODEL_SIZE MODEL_SHA256 SLM_BAKE_MODEL; do
        printf '%s=%s\n' "${name}" "${!name}"
    done
}

# download_progress PART SIZE logs how much of a download has arrived (SIZE may be empty).
download_progress() {
    local got
    got="$(stat -c %s "$1" 2>/dev/null || echo 0)"
    if [[ -n "$2" ]]; then
        set_status "downloading the model: $((got * 100 / $2))% (${got} of $2 bytes)"
        log info "download: ${got} of $2 bytes ($((got * 100 / $2))%)"
    else
        log info "download: ${got} bytes"
    fi
}

# download_verified URL DEST SHA256 [SIZE] downloads with resume into DEST.part, logging
# progress, and moves it to DEST only when size and sha256 match; an interrupted download
# resumes on the next run.
download_verified() {
    local url="$1" dest="$2" sha="${3,,}" size="${4:-}" part="$2.part" got pid
    [[ "${sha}" =~ ^[0-9a-f]{64}$ ]] || fail "download ${url}: no valid sha256 to verify against ('${sha}')" || return
    [[ "${SLM_PROGRESS_SECONDS}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || invalid SLM_PROGRESS_SECONDS "${SLM_PROGRESS_SECONDS}" "want seconds" || return
    if [[ -f "${dest}" ]] && sha256sum -c --status <<<"${sha}  ${dest}"; then
        log info "download: ${dest} already verified"
        return 0
    fi
    mkdir -p "$(dirname "${dest}")" || return
    got=""
    if [[ -s "${part}" ]]; then
        got=", resuming at $(stat -c %s "${part}") bytes"
    fi
    log info "download: ${url} -> ${dest}${size:+ (${size} bytes)}${got}"
    curl -fsSL --retry 5 --retry-delay 5 --continue-at - -o "${part}" "${url}" &
    pid=$!
    while kill -0 "${pid}" 2>/dev/null; do
        timeout "${SLM_PROGRESS_SECONDS}" tail -s 0.2 --pid="${pid}" -f /dev/null && break
        download_progress "${part}" "${size}"
    done
    if ! wait "${pid}"; then
        fail "download ${url} failed or was cut; ${part} is kept and the next run resumes it"
        return 1
    fi
    download_progress "${part}" "${size}"
    got="$(stat -c %s "${part}")"
    if [[ -n "${size}" && "${got}" != "${size}" ]]; then
        rm -f "${part}"
        fail "download ${url}: got ${got} bytes, want ${size}; removed the partial file"
        return 1
    fi
    if ! sha256sum -c --status <<<"${sha}  ${part}"; then
        got="$(sha256sum "${part}" | cut -d' ' -f1)"
        rm -f "${part}"
        fail "download ${url}: sha256 ${got} does not match ${sha}; removed the file (mirror corrupt or wrong pin)"
        return 1
    fi
    mv -f "${part}" "${dest}"
}

# release_checksum CHECKSUMS_URL ASSET prints ASSET's sha256 from a release checksums file.
release_checksum() {
    local sums sha
    sums="$(curl -fsSL --retry 5 "$1")" || fail "download checksums $1 failed" || return
    sha="$(awk -v a="$2" '$2 == a || $2 == "*" a {print $1; exit}' <<<"${sums}")"
    [[ -n "${sha}" ]] || fail "checksums $1 list no ${2}" || return
    printf '%s' "${sha}"
}

# install_localai downloads the release binary straight to its place (one copy in the image).
install_localai() {
    local sha
    sha="$(release_checksum "${LOCALAI_BASE_URL}/${LOCALAI_CHECKSUMS_ASSET}" "${LOCALAI_ASSET}")" || return
    download_verified "${LOCALAI_BASE_URL}/${LOCALAI_ASSET}" "${P_BIN}/local-ai" "${sha}" || return
    chmod 0755 "${P_BIN}/local-ai" || return
    log info "install: LocalAI ${LOCALAI_VERSION} (sha256 ${sha})"
}

# require_pinned_model refuses a model source that is not pinned by commit, sha256 and size.
require_pinned_model() {
    if [[ "${MODEL_SHA256,,}" =~ ^[0-9a-f]{64}$ && "${MODEL_SIZE}" =~ ^[1-9][0-9]*$ ]] &&
        ! [[ "${MODEL_URL}" == https://huggingface.co/* && ! "${MODEL_URL}" =~ /resolve/[0-9a-f]{40}/ ]]; then
        return 0
    fi
    fail "install: refusing to download an unpinned model (MODEL_URL=${MODEL_URL} MODEL_SHA256=${MODEL_SHA256:-unset} MODEL_SIZE=${MODEL_SIZE:-unset}).
A Hugging Face MODEL_URL must name a commit (resolve/<40-hex commit>/, not resolve/main), and MODEL_SHA256 and MODEL_SIZE must be set. Compute them once:
  commit=\$(curl -fsS https://huggingface.co/api/models/${MODEL_REPO}/revision/main | jq -r .sha)
  curl -fL -o model.gguf https://huggingface.co/${MODEL_REPO}/resolve/\$commit/${MODEL_REMOTE_FILE} && sha256sum model.gguf && stat -c %s model.gguf
and pass MODEL_URL=https://huggingface.co/${MODEL_REPO}/resolve/<commit>/${MODEL_REMOTE_FILE} MODEL_SHA256=<sha256> MODEL_SIZE=<bytes>"
}

# record_model_pin keeps the pinned source in the image: the small image's first boot downloads it.
record_model_pin() {
    write_file "${P_PIN}" 0644 <<PIN
MODEL_URL=${MODEL_URL}
MODEL_SHA256=${MODEL_SHA256,,}
MODEL_SIZE=${MODEL_SIZE}
PIN
}

# install_model_file downloads URL (SHA256, SIZE may be empty) as the served model file and
# marks it verified, so later boots need not hash 14 GB again.
install_model_file() {
    local url="$1" sha="${2,,}" size="$3" dest="${P_MODELS}/${MODEL_FILE}"
    if [[ -f "${dest}" && "$(cat "${P_VERIFIED}" 2>/dev/null)" == "${sha}" ]]; then
        log info "model: ${dest} present (sha256 ${sha} verified earlier)"
        return 0
    fi
    download_verified "${url}" "${dest}" "${sha}" "${size}" || return
    chown "${LOCALAI_USER}:${LOCALAI_USER}" "${dest}" && chmod 0644 "${dest}" || return
    printf '%s\n' "${sha}" | write_file "${P_VERIFIED}" 0644
}

install_model() {
    record_model_pin || return
    if [[ "${SLM_BAKE_MODEL}" == false ]]; then
        log info "install: SLM_BAKE_MODEL=false: the model is not baked; the first boot downloads ${MODEL_URL} (sha256 ${MODEL_SHA256,,}, ${MODEL_SIZE} bytes)"
        return 0
    fi
    install_model_file "${MODEL_URL}" "${MODEL_SHA256}" "${MODEL_SIZE}"
}

# install_backend installs the pinned backend image under the name the model YAML uses: an OCI
# reference needs that name (core/cli/backends.go BACKEND [NAME [ALIAS]];
# core/services/galleryop/backends.go: "specifying a name is required for OCI images").
install_backend() {
    local out
    log info "install: ${LOCALAI_BACKEND_NAME} backend from ${LOCALAI_BACKEND_IMAGE}"
    mkdir -p "${P_BACKENDS}" || return
    out="$(LOCALAI_BACKENDS_PATH="${P_BACKENDS}" "${P_BIN}/local-ai" backends install "${LOCALAI_BACKEND_IMAGE}" "${LOCALAI_BACKEND_NAME}" 2>&1)" ||
        fail "install: the backend ${LOCALAI_BACKEND_IMAGE} did not install: ${out}" || return
    [[ -x "${P_BACKENDS}/${LOCALAI_BACKEND_NAME}/run.sh" ]] ||
        fail "install: no ${P_BACKENDS}/${LOCALAI_BACKEND_NAME}/run.sh after installing ${LOCALAI_BACKEND_IMAGE}: LocalAI would not find the backend: ${out}"
}

# add_engine_user makes the system user LocalAI runs as (it owns what the install stage downloads).
add_engine_user() {
    id -u "${LOCALAI_USER}" >/dev/null 2>&1 ||
        useradd --system --home-dir /opt/local-ai --shell /usr/sbin/nologin "${LOCALAI_USER}"
}

# install_packages: libnginx-mod-http-js runs the context guard (Ubuntu 24.04 universe,
# source libnginx-mod-js 0.8.2; its modules-enabled file loads it into Ubuntu's nginx.conf).
install_packages() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends nginx libnginx-mod-http-js apache2-utils openssl jq curl certbot ca-certificates
}

# install_units installs the appliance's programs and units and enables none of them: the
# bootstrap stage starts LocalAI and nginx once configure has written what they need (Debian's
# nginx package enables and starts itself: undo that).
install_units() {
    install -D -m 0755 "${APPLIANCE_DIR}/slm-copilot-ready" "${P_SBIN}/slm-copilot-ready" &&
        install -D -m 0644 "${APPLIANCE_DIR}/frontdoor.sh" "${P_SHARE}/frontdoor.sh" &&
        install -D -m 0644 "${APPLIANCE_DIR}/site.conf.tmpl" "${P_SHARE}/site.conf.tmpl" &&
        install -D -m 0644 "${APPLIANCE_DIR}/context-guard.js" "${P_SHARE}/context-guard.js" &&
        install -D -m 0644 "${APPLIANCE_DIR}/local-ai.service" "${P_UNITS}/local-ai.service" &&
        chown -R "${LOCALAI_USER}:${LOCALAI_USER}" "${SLM_ROOT}/opt/local-ai" &&
        systemctl daemon-reload &&
        systemctl disable --now nginx
}

# start_engine STAGE (re)starts LocalAI, whose unit waits for a real completion, and fails
# with the journal's last lines as the cause.
start_engine() {
    systemctl restart local-ai && return 0
    fail "$1: LocalAI gave no completion (is there enough RAM for the model and its context?); journalctl -u local-ai says:
$(journalctl -u local-ai -n 40 --no-pager 2>&1 | sed 's/^/  /')"
}

# forget_prewarm removes what the pre-warm configured: the image must not ship its credentials,
# certificate or settings; the first boot makes its own.
forget_prewarm() {
    rm -rf "${P_STATE}" "${P_NGINX}" "${P_ENGINE_ENV}" "${P_REPORT}" "${P_SITE}" "${P_SITE_LINK}" "${P_MODELS}/${MODEL_ID}.yaml"
}

# prewarm configures the appliance once and proves LocalAI answers a real completion, with a
# small context (SLM_PREWARM_CONTEXT) that fits the build VM. Without baked weights it checks
# the configuration only.
prewarm() {
    log info "install: pre-warm: configure with a ${SLM_PREWARM_CONTEXT}-token context"
    if ! ONEAPP_COPILOT_PASSWORD="prewarm-$(openssl rand -hex 8)" ONEAPP_COPILOT_CONTEXT_SIZE="${SLM_PREWARM_CONTEXT}" \
        ONEAPP_COPILOT_MODEL_URL='' ONEAPP_COPILOT_MODEL_SHA256='' SLM_ADDRESSES=127.0.0.1 service_configure; then
        forget_prewarm
        fail "install: pre-warm failed: the configure stage failed (above)"
        return 1
    fi
    if [[ "${SLM_BAKE_MODEL}" == false ]]; then
        log info "install: pre-warm: no completion (SLM_BAKE_MODEL=false: no weights in the image); LocalAI and the ${LOCALAI_BACKEND_NAME} backend are installed"
    elif ! start_engine "install: pre-warm"; then
        systemctl stop local-ai
        forget_prewarm
        return 1
    else
        systemctl stop local-ai || fail "install: pre-warm: LocalAI did not stop" || return
        log info "install: pre-warm: ${MODEL_ID} answered a completion"
    fi
    forget_prewarm
}

validate_build() {
    [[ "${SLM_BAKE_MODEL}" == true || "${SLM_BAKE_MODEL}" == false ]] ||
        invalid SLM_BAKE_MODEL "${SLM_BAKE_MODEL}" "want true or false" || return
    validate_integer SLM_PREWARM_CONTEXT "${CONTEXT_MIN}" "${CONTEXT_MAX}" "tokens"
}

service_install() {
    log info "install: SLM-Copilot ${ONE_SERVICE_VERSION} (LocalAI ${LOCALAI_VERSION}, model baked: ${SLM_BAKE_MODEL})"
    validate_build || return
    require_pinned_model || return # before anything is downloaded
    install_packages || fail "install: the packages did not install" || return
    add_engine_user || fail "install: cannot add the ${LOCALAI_USER} user" || return
    install_localai || return
    install_backend || return
    install_model || return
    install_units || fail "install: installing the units failed" || return
    prewarm || return
    log info "install: done"
}

# --- bootstrap ----------------------------------------------------------------------------

# ensure_model makes sure the model file is in place and verified before LocalAI starts: the
# context's override (ONEAPP_COPILOT_MODEL_URL/_SHA256), else the pin the build recorded. The
# small image downloads it here at first boot, resumably, with progress in the log and report.
ensure_model() {
    local name value url="" sha="" size=""
    if [[ -n "${ONEAPP_COPILOT_MODEL_URL}" ]]; then
        url="${ONEAPP_COPILOT_MODEL_URL}" sha="${ONEAPP_COPILOT_MODEL_SHA256}"
    else
        [[ -r "${P_PIN}" ]] || fail "bootstrap: no model pin at ${P_PIN}: the image was not built by the install stage" || return
        while IFS='=' read -r name value; do
            case "${name}" in
            MODEL_URL) url="${value}" ;;
            MODEL_SHA256) sha="${value}" ;;
            MODEL_SIZE) size="${value}" ;;
            esac
        done <"${P_PIN}"
    fi
    install_model_file "${url}" "${sha}" "${size}" || return
    log info "bootstrap: model ${MODEL_FILE} verified (sha256 ${sha,,})"
}

try_letsencrypt() {
    local email_args=(--register-unsafely-without-email)
    [[ -n "${ONEAPP_COPILOT_DOMAIN}" && "$(tls_mode)" == "self-signed" ]] || return 0
    [[ -n "${ONEAPP_COPILOT_LETSENCRYPT_EMAIL}" ]] && email_args=(-m "${ONEAPP_COPILOT_LETSENCRYPT_EMAIL}")
    log info "bootstrap: requesting a Let's Encrypt certificate for ${ONEAPP_COPILOT_DOMAIN}"
    if certbot certonly --webroot -w "${P_ACME}" -d "${ONEAPP_COPILOT_DOMAIN}" --non-interactive --agree-tos "${email_args[@]}" >>"${P_LOG}" 2>&1; then
        service_configure && systemctl reload nginx
    else
        log warning "bootstrap: Let's Encrypt failed (DNS must point ${ONEAPP_COPILOT_DOMAIN} here and port 80 be reachable); keeping the self-signed certificate"
    fi
}

# published_endpoint prints endpoint in a form OneGate stores intact: its escape_attr
# (src/onegate/onegate-server.rb) rewrites '[' and ']', which breaks an IPv6 literal's
# brackets, so they go percent-encoded (https://%5B2001:db8::1%5D).
published_endpoint() {
    local url
    url="$(endpoint)"
    url="${url//\[/%5B}"
    printf '%s' "${url//\]/%5D}"
}

publish_endpoint() {
    if command -v onegate >/dev/null && [[ -n "${ONEGATE_ENDPOINT:-}" ]]; then
        onegate vm update --data "ONEAPP_COPILOT_API_ENDPOINT=$(published_endpoint)" ||
            log warning "bootstrap: could not publish the endpoint through OneGate"
    else
        log info "bootstrap: OneGate not available (TOKEN=YES in the context enables it); endpoint not published"
    fi
}

write_banner() {
    write_file "${SLM_ROOT}/etc/profile.d/slm-copilot.sh" 0644 <<BANNER
# Login banner of the SLM-Copilot appliance.
if [ -f /run/slm-copilot/ready ]; then
    echo "SLM-Copilot is ready: $(endpoint) (model ${MODEL_ID}); credentials and Cline settings: sudo cat /etc/one-appliance/config"
else
    echo "SLM-Copilot is starting or failed: journalctl -u local-ai; log /var/log/one-appliance/slm-copilot.log"
fi
BANNER
}

# service_bootstrap starts what the image leaves stopped: LocalAI once the model is in place
# and verified (its unit waits for a real completion), then nginx. one-context reports READY
# only after this stage succeeds, so READY means the model is loaded and answering.
service_bootstrap() {
    validate_model_source || return
    if ! ensure_model; then
        set_status "failed: the model download (see /var/log/one-appliance/slm-copilot.log)"
        return 1
    fi
    set_status "loading the model" || return
    log info "bootstrap: starting LocalAI and waiting for the model to answer"
    if ! start_engine bootstrap; then
        set_status "failed: LocalAI gave no completion (journalctl -u local-ai)"
        return 1
    fi
    systemctl restart nginx || fail "bootstrap: nginx did not start (journalctl -u nginx)" || return
    try_letsencrypt
    set_status "ready" || return
    write_report "$(current_password)" || return
    publish_endpoint
    write_banner || return
    log info "bootstrap: ready at $(endpoint)"
}

# service_cleanup runs after every stage (one-apps' EXIT trap): it removes the staging
# directory a failed configure may leave, which can hold a decoded private key.
service_cleanup() {
    rm -rf "${TMPDIR:-/tmp}"/slm-copilot-stage.*
}

service_help() {
    cat <<HELP
SLM-Copilot ${ONE_SERVICE_VERSION}: ${ONE_SERVICE_SHORT_DESCRIPTION}

Context variables (default in brackets):
  ONEAPP_COPILOT_PASSWORD           [generated]  API password (user copilot; also the Bearer API key)
  ONEAPP_COPILOT_CONTEXT_SIZE       [32768]      context window in tokens (${CONTEXT_MIN}-${CONTEXT_MAX})
  ONEAPP_COPILOT_THREADS            [0]          inference threads, 0 = all cores
  ONEAPP_COPILOT_DOMAIN             [empty]      DNS name: in the certificate; enables Let's Encrypt
  ONEAPP_COPILOT_LETSENCRYPT_EMAIL  [empty]      e-mail for Let's Encrypt notices
  ONEAPP_COPILOT_TLS_CERT           [empty]      your certificate chain, base64 PEM
  ONEAPP_COPILOT_TLS_KEY            [empty]      its private key, base64 PEM
  ONEAPP_COPILOT_MODEL_URL          [empty]      https URL of a GGUF to serve instead of the pinned model
  ONEAPP_COPILOT_MODEL_SHA256       [empty]      its sha256 (64 hex digits); set both or neither

Report (endpoint, credentials, Cline settings): /etc/one-appliance/config
Log: /var/log/one-appliance/slm-copilot.log
HELP
}
