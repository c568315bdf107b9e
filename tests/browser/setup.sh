#!/usr/bin/env bash
# Install what the browser tests (tests/browser, marker `browser`) need: Debian's Chromium.
#
#   bash tests/browser/setup.sh
#
# Playwright drives it through executable_path=/usr/bin/chromium; Playwright's own browser
# download (`playwright install`) is never used: a cluster node may have no internet. The
# Python package comes with the `test` extra (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 is exported by
# the test command for the same reason). Idempotent: does nothing when Chromium is there.
# Runs as root on Debian, as slurm/up.sh does. On failure: non-zero exit and the apt log's tail.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
LOG="${TMPDIR:-/tmp}/hpctrack-browser-apt.log"

log() { echo "setup.sh: $*" >&2; }
die() {
  if [ -f "$LOG" ]; then echo "---- last lines of $LOG" >&2; tail -n 25 "$LOG" >&2; echo "----" >&2; fi
  echo "setup.sh: ERROR: $*" >&2
  exit 1
}

[ -x "$CHROMIUM" ] && exit 0
[ "$(id -u)" = 0 ] || die "Chromium is missing and installing it needs root: run 'apt-get install chromium' as root"
command -v apt-get >/dev/null || die "Chromium is missing and there is no apt-get: install Chromium as $CHROMIUM"

log "installing chromium (log: $LOG)"
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q --no-install-recommends chromium >>"$LOG" 2>&1; }
apt_update() { log "apt-get update"; apt-get update -q >>"$LOG" 2>&1; }
# 'apt-get update' only when needed: no package lists at all, or the install failed with the
# current (possibly stale) lists.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  apt_update || die "apt-get update failed"
fi
apt_install || { apt_update && apt_install; } || die "apt-get install chromium failed"
[ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is missing"
