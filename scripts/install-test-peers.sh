#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian packages). Idempotent and quiet when
# everything is present; needs root (or sudo) only when something is missing.
set -euo pipefail

# libxml-security-java is Apache Santuario, the second independent XML-DSig verifier (run on the
# JDK's source launcher, so a JDK not just a JRE); its runtime jars come with it as Depends
# (libcommons-codec-java, libslf4j-java which also ships the slf4j-nop binding). Xalan/Xerces are
# only Recommends and not needed: the JDK's own XML stack is used.
packages=(python3-zeep python3-xmlsec xmlsec1 libxml2-utils redis-server haproxy
  openjdk-17-jdk-headless libxml-security-java libcommons-codec-java libslf4j-java jaxws openssl
  rabbitmq-server python3-stomp python3-dirq)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test peers present: ${packages[*]}"
  exit 0
fi
echo "installing test peers: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test peers installed"
