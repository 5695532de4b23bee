#!/usr/bin/env bash
# Side by side: tunegate infra check and checkov (pinned, from PyPI) on the same fixtures.
# For every requirement (one permissive variant of the threat model's pattern each), a tool
# "catches" it when it reports something on the variant that it does not report on the pattern.
# IAM policies are wrapped in a Terraform aws_iam_policy for checkov (it does not read bare
# policy JSON). Usage: bench/infra/run.sh   (SKIP_BUILD=1 to reuse target/debug/tunegate)
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKOV_VERSION=3.3.30
VENV=bench/.venv-checkov
if [ ! -x "$VENV/bin/checkov" ] || ! "$VENV/bin/checkov" --version | grep -qx "$CHECKOV_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
if [ -z "${SKIP_BUILD:-}" ]; then cargo build -q -p tunegate; fi
exec python3 bench/infra/compare.py --tunegate target/debug/tunegate --checkov "$VENV/bin/checkov" \
  --fixtures crates/tunegate-infra/tests/fixtures/infra
