#!/usr/bin/env bash
# Install the Debian packages the browser and alerting tests use, when they are missing:
#   chromium    /usr/bin/chromium, driven by Playwright for Python (never `playwright install`)
#   prometheus  for /usr/bin/promtool (checks and unit-tests deploy/prometheus/alerts.yml)
# Needs root and apt-get; without them (or when the install fails) it says so and goes on:
# the tests that need a tool then skip with a message naming it.
set -uo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-tools: ${missing[*]} missing and not installable here (needs root and apt-get); their tests will skip" >&2
    exit 0
fi
echo "ensure-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "ensure-test-tools: apt-get could not install ${missing[*]}; their tests will skip" >&2
fi
exit 0
