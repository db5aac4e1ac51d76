#!/usr/bin/env bash
# Make sure Java 17+, Maven and Chromium are present: the broker runs on the JVM, its jars come
# from Maven Central, and the dashboard tests load the page in headless Chromium. On
# Debian/Ubuntu as root, install what is missing; otherwise say how. (Chromium needs no separate
# font package: its libfontconfig1 dependency pulls in fonts-dejavu-core or an alternative.)
set -euo pipefail

java_major() {
  local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
  "$java" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' |
    awk '{ print ($1 == 1 ? $2 : $1) }'
}

missing=()
[ "$(java_major)" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  command -v google-chrome >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "missing: ${missing[*]}. Install Java 17+, Maven and Chromium" \
    "(Debian: apt-get install --no-install-recommends ${missing[*]})." >&2
  exit 1
fi
