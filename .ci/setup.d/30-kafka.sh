#!/usr/bin/env bash
# The stream tests start their own Kafka broker from Kafka's jars, which Maven resolves from
# Maven Central into ~/.cache/cardlake/kafka (CARDLAKE_KAFKA_CACHE overrides the root).
# Idempotent: installs Maven only if missing and resolves the jars only if not cached.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' infra/kafka/pom.xml)
libs="${CARDLAKE_KAFKA_CACHE:-$HOME/.cache/cardlake/kafka}/$version/libs"
if [ -f "$libs/kafka_2.13-$version.jar" ]; then
    echo "30-kafka: Kafka $version jars already in $libs"
    exit 0
fi
command -v mvn >/dev/null 2>&1 || bash .ci/apt-install.sh maven
staging=$(mktemp -d "$(dirname "$libs")/libs-XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$libs")"; mktemp -d "$(dirname "$libs")/libs-XXXXXX"; })
mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$staging" -DincludeScope=runtime
mv "$staging" "$libs"
echo "30-kafka: Kafka $version jars resolved into $libs"
