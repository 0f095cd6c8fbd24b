#!/usr/bin/env bash
# Install the Debian packages the tests need, when they are missing and we are root.
set -euo pipefail

missing=()
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# ansible-test sanity skips its shellcheck test without it.
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# promtool checks and tests the alerting rules the collection ships.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if ((${#missing[@]} == 0)); then
    echo "os-deps: openssh-server, postgresql, util-linux, shellcheck and promtool are present"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "os-deps: missing Debian packages: ${missing[*]}" >&2
    echo "os-deps: not root, so not installing them; the tests that need them will say so" >&2
    exit 0
fi
echo "os-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101 keeps the package scripts from starting a system sshd or PostgreSQL:
# the tests start their own, on loopback, and stop them by PID.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if ((created_policy)); then rm -f "$policy"; fi
echo "os-deps: installed ${missing[*]}"
