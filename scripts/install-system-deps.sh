#!/usr/bin/env bash
# Debian packages used by the tests: prometheus-alertmanager (the router's routing engine in
# the router tests, and amtool for the shipped config) and chromium (headless page tests of
# the dashboard). Idempotent.
set -euo pipefail
need=()
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
