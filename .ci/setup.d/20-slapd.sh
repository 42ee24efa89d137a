#!/usr/bin/env bash
# The SQL server's tests start their own OpenLDAP directory (slapd) on loopback, and the SQL
# guard (a small Java Spark extension) is compiled with javac: install both if missing.
set -euo pipefail
need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
if [ ${#need[@]} -eq 0 ]; then
    echo "20-slapd: slapd, ldap-utils and javac already installed"
    exit 0
fi
bash "$(dirname "$0")/../apt-install.sh" "${need[@]}"
