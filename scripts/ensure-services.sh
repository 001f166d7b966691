#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Mosquitto (127.0.0.1:1883) answer; start them with
# the machine's own commands when they are down. Tests isolate themselves inside these servers.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 50); do
        port_open "$port" && return 0
        sleep 0.2
    done
    echo "ensure-services: $name did not come up on 127.0.0.1:$port" >&2
    return 1
}

status=0
if ! port_open 5432; then
    echo "ensure-services: starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    wait_port 5432 PostgreSQL || status=1
fi
if ! port_open 1883; then
    echo "ensure-services: starting Mosquitto"
    if command -v mosquitto >/dev/null 2>&1; then
        mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    fi
    wait_port 1883 Mosquitto || status=1
fi
exit $status
