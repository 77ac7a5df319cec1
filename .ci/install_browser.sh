#!/usr/bin/env bash
# Install Debian's Chromium for the headless browser test (tests/test_browser.py).
# Playwright's own browser download needs the network at test time; the distro package does not.
# Idempotent: does nothing when /usr/bin/chromium already exists. fonts-liberation (chromium's
# only recommended package we need) keeps screenshots legible on minimal images.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
/usr/bin/chromium --version || true
