#!/bin/bash
# What the original shell client did, for comparison in `npm run bench:lab`:
# fetch the plain peer list, one `wg set` per peer, again every 10 s.
# Usage: seed-client.sh IF SERVER_IP [PORT]. Bounded: stops after 1000 rounds.
set -u
IF=$1 SERVER=$2 PORT=${3:-51821}
for _ in $(seq 1 1000); do
  if exec 3<>"/dev/tcp/$SERVER/$PORT"; then
    printf 'GET /v1/peers.txt HTTP/1.0\r\n\r\n' >&3
    body=$(timeout 5 cat <&3 | sed '1,/^\r$/d')
    exec 3<&-
    while read -r key endpoint; do
      [ -n "$key" ] && wg set "$IF" peer "$key" endpoint "$endpoint"
    done <<< "$body"
  fi
  sleep 10
done
