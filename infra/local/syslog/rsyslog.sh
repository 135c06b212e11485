#!/usr/bin/env bash
# A real rsyslogd as a local stand-in SIEM syslog receiver, for fnwatch's
# end-to-end tests of its syslog outputs (CEF in RFC 5424 messages over UDP,
# TCP with RFC 6587 octet-counting framing, and TLS).
#
# Usage:
#   bash infra/local/syslog/rsyslog.sh start DIR [--tcp PORT] [--udp PORT] [--tls PORT]
#   bash infra/local/syslog/rsyslog.sh stop DIR
#   bash infra/local/syslog/rsyslog.sh install
#
# start  installs rsyslog when `rsyslogd` is missing (and rsyslog-gnutls and
#        openssl when --tls is given), writes DIR/rsyslog.conf, starts
#        rsyslogd in the background, waits until every requested port is bound
#        on 127.0.0.1 and prints `ready`. If rsyslogd is already running from
#        DIR it is stopped first, so start restarts cleanly; stop followed by
#        start on the same ports works.
# stop   ends the rsyslogd started from DIR (its pid is in DIR/rsyslog.pid) and
#        waits for it to exit. Stopping one that is not running is not an error.
#
# What the receiver writes:
#   DIR/received.log   one line per received message: the input's name
#                      (tcp, udp or tls), a tab, then the message exactly as
#                      received (%rawmsg%; the octet-count frame header is not
#                      part of it). rsyslog escapes control characters on
#                      reception as '#' and three octal digits: LF -> #012,
#                      CR -> #015, TAB -> #011, NUL -> #000, ESC -> #033, so
#                      one message is always one line. A single trailing LF is
#                      dropped. Bytes >= 0x80 (UTF-8) are kept as they are.
#                      Flushed at the end of every batch, so a test can poll it.
#   DIR/internal.log   rsyslogd's own messages (start, stop, TLS errors...).
#   DIR/rsyslogd.out   rsyslogd's stdout and stderr.
#   DIR/tls/ca.pem     (with --tls) the CA a client trusts; it signed
#   DIR/tls/cert.pem   the server certificate (CN=localhost, subjectAltName
#   DIR/tls/key.pem    DNS:localhost and IP:127.0.0.1) and its key.
#                      They are made once and kept across restarts.
#
# Messages longer than maxMessageSize (64k; environment variable
# RSYSLOG_MAX_MESSAGE_SIZE, e.g. 256k, changes it) are cut there, and over TCP
# the rest of the frame then arrives as a second line.
#
# Messages of one connection are written in the order they were sent (one
# main-queue worker). received.log is appended to across restarts.
#
# Only 127.0.0.1 is listened on. No system inputs (/dev/log, kernel log), no
# writes outside DIR, no systemd. Several instances in different DIRs can run
# at once as long as their ports differ.
set -euo pipefail

PROG="rsyslog.sh"
die() { echo "$PROG: $*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: bash infra/local/syslog/rsyslog.sh start DIR [--tcp PORT] [--udp PORT] [--tls PORT]
       bash infra/local/syslog/rsyslog.sh stop DIR
       bash infra/local/syslog/rsyslog.sh install
EOF
    exit 2
}

if [ "${1:-}" = install ]; then
    # Install only (rsyslog, its TLS driver and openssl), e.g. once before a
    # test run so parallel tests do not race for apt's lock.
    CMD=install
    DIR=""
    shift
else
    [ $# -ge 2 ] || usage
    CMD="$1"
    DIR="$2"
    shift 2
fi

MAX_MESSAGE_SIZE="${RSYSLOG_MAX_MESSAGE_SIZE:-64k}"
[[ "$MAX_MESSAGE_SIZE" =~ ^[0-9]+[kKmM]?$ ]] || die "bad RSYSLOG_MAX_MESSAGE_SIZE: $MAX_MESSAGE_SIZE"

TCP_PORT=""
UDP_PORT=""
TLS_PORT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tcp) [ $# -ge 2 ] || usage; TCP_PORT="$2"; shift 2 ;;
        --udp) [ $# -ge 2 ] || usage; UDP_PORT="$2"; shift 2 ;;
        --tls) [ $# -ge 2 ] || usage; TLS_PORT="$2"; shift 2 ;;
        *) usage ;;
    esac
done
for p in "$TCP_PORT" "$UDP_PORT" "$TLS_PORT"; do
    if [ -n "$p" ]; then
        [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "bad port: $p"
    fi
done

# ---------------------------------------------------------------- install

# Installs Debian packages with apt-get, running `apt-get update` only when the
# install fails without it. Services are kept from starting during the install
# (a policy-rc.d that denies them is put in place if there is none), so the
# system rsyslog never starts writing to /var/log.
apt_install() {
    local cmd="apt-get install -y --no-install-recommends $*"
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "cannot install $*; run as root: apt-get update && $cmd"
    fi
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local ok=""
    echo "$PROG: installing $*" >&2
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; then
        ok=1
    elif DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; then
        ok=1
    fi
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ -n "$ok" ] || die "could not install $*; run as root: apt-get update && $cmd"
}

find_rsyslogd() {
    command -v rsyslogd 2>/dev/null || { [ -x /usr/sbin/rsyslogd ] && echo /usr/sbin/rsyslogd; } || true
}

# The directory rsyslogd loads its modules from (imtcp.so, lmnsd_gtls.so...).
module_dir() {
    local d
    for d in /usr/lib/x86_64-linux-gnu/rsyslog /usr/lib/aarch64-linux-gnu/rsyslog \
             /usr/lib/*/rsyslog /usr/lib/rsyslog /usr/lib64/rsyslog; do
        [ -e "$d/imtcp.so" ] && { echo "$d"; return; }
    done
    dpkg -L rsyslog 2>/dev/null | grep '/imtcp\.so$' | head -n1 | xargs -r dirname
}

ensure_installed() {
    local pkgs=()
    [ -n "$(find_rsyslogd)" ] || pkgs+=(rsyslog)
    if [ -n "$TLS_PORT" ]; then
        local md
        md="$(module_dir || true)"
        if [ -z "$md" ] || [ ! -e "$md/lmnsd_gtls.so" ]; then
            pkgs+=(rsyslog-gnutls)
        fi
        command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    fi
    [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
    RSYSLOGD="$(find_rsyslogd)"
    [ -n "$RSYSLOGD" ] || die "rsyslogd not found after install; run as root: apt-get update && apt-get install -y rsyslog"
}

# ---------------------------------------------------------------- TLS

# A CA and a server certificate signed by it, for localhost and 127.0.0.1.
# The server certificate is not a CA (basicConstraints CA:FALSE), so strict
# clients (rustls/webpki) accept it as an end-entity certificate.
make_certs() {
    local t="$DIR/tls"
    if [ -s "$t/ca.pem" ] && [ -s "$t/cert.pem" ] && [ -s "$t/key.pem" ]; then
        return
    fi
    mkdir -p "$t"
    cat >"$t/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -subj "/CN=fnwatch test syslog CA" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$t/ca-key.pem" -out "$t/ca.pem" >/dev/null 2>&1 \
        || die "openssl could not make the CA in $t"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$t/key.pem" -out "$t/server.csr" >/dev/null 2>&1 \
        || die "openssl could not make the server key in $t"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" \
        -CAcreateserial -days 3650 -sha256 -extfile "$t/server.ext" \
        -out "$t/cert.pem" >/dev/null 2>&1 \
        || die "openssl could not sign the server certificate in $t"
    rm -f "$t/server.csr"
    chmod 600 "$t/key.pem" "$t/ca-key.pem"
}

# ---------------------------------------------------------------- config

write_conf() {
    local conf="$DIR/rsyslog.conf"
    {
        echo "# Written by infra/local/syslog/rsyslog.sh; rewritten on every start."
        echo "# maxMessageSize must come before any module is loaded."
        echo "global("
        echo "    maxMessageSize=\"$MAX_MESSAGE_SIZE\""
        echo "    workDirectory=\"$DIR/work\""
        echo "    # rsyslogd's own messages go through the default ruleset below,"
        echo "    # not to the system's /dev/log."
        echo "    processInternalMessages=\"on\""
        echo ")"
        echo
        # One worker keeps the messages of one connection in the order they
        # were sent (with more, batches of a busy connection can swap).
        echo 'main_queue(queue.workerThreads="1")'
        echo
        # Messages as received, prefixed by the input name and a tab.
        echo 'template(name="fnwatch_raw" type="string" string="%inputname%\t%rawmsg%\n")'
        echo
        echo "ruleset(name=\"received\") {"
        echo "    action(type=\"omfile\" file=\"$DIR/received.log\" template=\"fnwatch_raw\""
        echo "           flushOnTXEnd=\"on\" asyncWriting=\"off\" fileCreateMode=\"0644\")"
        echo "}"
        echo
        if [ -n "$TCP_PORT" ] || [ -n "$TLS_PORT" ]; then
            echo 'module(load="imtcp" maxSessions="1000")'
        fi
        if [ -n "$UDP_PORT" ]; then
            echo 'module(load="imudp")'
        fi
        echo
        if [ -n "$TCP_PORT" ]; then
            echo "input(type=\"imtcp\" name=\"tcp\" address=\"127.0.0.1\" port=\"$TCP_PORT\" ruleset=\"received\")"
        fi
        if [ -n "$UDP_PORT" ]; then
            # A large receive buffer: alerts arrive in bursts, and UDP drops what
            # does not fit while rsyslog is not scheduled.
            echo "input(type=\"imudp\" name=\"udp\" address=\"127.0.0.1\" port=\"$UDP_PORT\" rcvbufSize=\"8m\" ruleset=\"received\")"
        fi
        if [ -n "$TLS_PORT" ]; then
            echo "input(type=\"imtcp\" name=\"tls\" address=\"127.0.0.1\" port=\"$TLS_PORT\" ruleset=\"received\""
            # Without a priority string rsyslog's gtls driver offers TLS 1.2
            # only; GnuTLS's NORMAL adds TLS 1.3.
            echo "      streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\""
            echo "      gnutlsPriorityString=\"NORMAL\""
            echo "      streamDriver.CAFile=\"$DIR/tls/ca.pem\""
            echo "      streamDriver.CertFile=\"$DIR/tls/cert.pem\""
            echo "      streamDriver.KeyFile=\"$DIR/tls/key.pem\")"
        fi
        echo
        echo "# rsyslogd's own messages (default ruleset) stay out of received.log."
        echo "*.* action(type=\"omfile\" file=\"$DIR/internal.log\" flushOnTXEnd=\"on\" asyncWriting=\"off\")"
    } >"$conf.tmp"
    mv "$conf.tmp" "$conf"
}

# ---------------------------------------------------------------- run

# Is process PID alive (a zombie is not)?
alive() {
    local state
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

pid_of() {
    local pid
    [ -s "$DIR/rsyslog.pid" ] || return 1
    pid="$(tr -dc '0-9' <"$DIR/rsyslog.pid")"
    [ -n "$pid" ] || return 1
    # Only a live rsyslogd counts, not a reused pid.
    alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "rsyslogd" ] || return 1
    echo "$pid"
}

do_stop() {
    local pid i
    if pid="$(pid_of)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do   # up to 10 s
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$DIR/rsyslog.pid"
}

# Is 127.0.0.1:PORT bound by process PID? proto is tcp (must be listening) or
# udp. The socket's inode must be one of PID's open files, so a port that
# another process holds does not count as ready.
port_bound() {
    local proto="$1" port="$2" pid="$3" hex inode
    hex="$(printf '0100007F:%04X' "$port")"
    if [ "$proto" = tcp ]; then
        inode="$(awk -v a="$hex" '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp)"
    else
        inode="$(awk -v a="$hex" '$2 == a { print $10; exit }' /proc/net/udp)"
    fi
    [ -n "$inode" ] || return 1
    find "/proc/$pid/fd" -lname "socket:\\[$inode\\]" 2>/dev/null | grep -q .
}

fail_start() {
    echo "$PROG: rsyslogd did not become ready: $*" >&2
    echo "---- $DIR/rsyslogd.out" >&2
    cat "$DIR/rsyslogd.out" >&2 2>/dev/null || true
    if [ -s "$DIR/internal.log" ]; then
        echo "---- $DIR/internal.log (last lines)" >&2
        tail -n 20 "$DIR/internal.log" >&2
    fi
    exit 1
}

do_start() {
    [ -n "$TCP_PORT$UDP_PORT$TLS_PORT" ] || die "start needs at least one of --tcp, --udp, --tls"
    ensure_installed
    mkdir -p "$DIR/work"
    do_stop
    [ -z "$TLS_PORT" ] || make_certs
    write_conf
    "$RSYSLOGD" -N1 -f "$DIR/rsyslog.conf" >"$DIR/rsyslogd.out" 2>&1 \
        || fail_start "configuration check (rsyslogd -N1) failed"

    local log_lines=0
    [ ! -f "$DIR/internal.log" ] || log_lines="$(wc -l <"$DIR/internal.log")"
    nohup "$RSYSLOGD" -n -f "$DIR/rsyslog.conf" -i "$DIR/rsyslog.pid" \
        >"$DIR/rsyslogd.out" 2>&1 </dev/null &
    local pid=$!
    disown "$pid" 2>/dev/null || true

    local i ok
    for i in $(seq 1 100); do   # up to 10 s
        alive "$pid" || fail_start "rsyslogd exited"
        ok=1
        [ -z "$TCP_PORT" ] || port_bound tcp "$TCP_PORT" "$pid" || ok=""
        [ -z "$TLS_PORT" ] || port_bound tcp "$TLS_PORT" "$pid" || ok=""
        [ -z "$UDP_PORT" ] || port_bound udp "$UDP_PORT" "$pid" || ok=""
        [ -s "$DIR/rsyslog.pid" ] || ok=""
        if [ -n "$ok" ]; then
            echo ready
            return 0
        fi
        # rsyslogd keeps running when a listener cannot be created (port in
        # use...): give up at once rather than after the 10 s.
        # (internal.log is appended to across runs: only this run's lines.)
        if { cat "$DIR/rsyslogd.out"; tail -n +"$((log_lines + 1))" "$DIR/internal.log"; } 2>/dev/null |
                grep -q -e 'Could not create .*listener' -e 'Address already in use'; then
            do_stop
            fail_start "a listener could not be created"
        fi
        sleep 0.1
    done
    do_stop
    fail_start "ports not bound after 10 s"
}

case "$CMD" in
    start|stop) ;;
    install)
        TLS_PORT=install
        ensure_installed
        echo "$PROG: rsyslog ready at $RSYSLOGD"
        exit 0
        ;;
    *) usage ;;
esac
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
case "$DIR" in
    *'"'*|*'\'*|*'`'*|*'$'*) die "DIR must not contain quotes, backslashes, backticks or \$: $DIR" ;;
esac

if [ "$CMD" = start ]; then do_start; else do_stop; fi
