#!/bin/sh
# Installs Parley and its locked dependencies into the virtualenv at $VIRTUAL_ENV.
# The Dockerfile's builder stage runs exactly this, and tests/deploy/test_dockerfile.py
# runs it into a scratch venv, so what the image gets is what the test suite checks.
set -eu

: "${VIRTUAL_ENV:?set VIRTUAL_ENV to the virtualenv to create}"

python3 -m venv "$VIRTUAL_ENV"
# constraints.txt is the lock: every direct and transitive dependency pinned.
"$VIRTUAL_ENV/bin/pip" install --no-input --disable-pip-version-check -c constraints.txt .
# The installers are not needed at run time; dropping them keeps the image smaller.
"$VIRTUAL_ENV/bin/pip" uninstall --no-input --yes pip setuptools
