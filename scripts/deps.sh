#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing.
# Quiet and quick when everything is already there.
set -euo pipefail
packages=(build-essential cmake pkg-config libjansson-dev libutf8proc-dev libssl-dev libsqlite3-dev
          libmicrohttpd-dev libcurl4-openssl-dev libpcre2-dev libyaml-dev libpq-dev
          postgresql chromium chromium-driver wrk
          ipfs-cid python3 python3-pip python3-venv
          pocl-opencl-icd ocl-icd-libopencl1 libvulkan1 mesa-vulkan-drivers)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv); only the command matters.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    python3) command -v python3 >/dev/null || filtered+=("$p") ;;
    python3-pip) command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || filtered+=("$p") ;;
    python3-venv) python3 -m venv --help >/dev/null 2>&1 || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
[ ${#filtered[@]} -eq 0 ] && exit 0
echo "deps: installing ${filtered[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >&2
