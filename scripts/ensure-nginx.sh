#!/usr/bin/env bash
# The replica tests put a real nginx (Debian's package) in front of two servers; install it when
# missing. Only the binary is used: the tests run it unprivileged with their own config.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
echo "Installing Debian's nginx package for the replica tests..." >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# The package's own service is not wanted here: keep it from starting on port 80.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod +x "$policy"
  created_policy=1
fi
status=0
"${sudo_cmd[@]}" apt-get install -y -qq nginx >/dev/null || status=$?
if [ "$created_policy" -eq 1 ]; then
  "${sudo_cmd[@]}" rm -f "$policy"
fi
[ "$status" -eq 0 ]
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
