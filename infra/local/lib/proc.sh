# Process helpers shared by the local stand-ins' start/stop scripts
# (infra/local/s3/moto-s3.sh, infra/local/kinesis/kinesis-mock.sh). Sourced.

# Is process PID alive (a zombie is not)?
alive() {
    local state
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Ends the process whose pid PIDFILE holds, if it still runs and its command
# line contains MARK (a reused pid of another program is left alone): TERM,
# then KILL after 5 s. Removes PIDFILE. Not an error when nothing runs.
stop_pidfile() {
    local pidfile="$1" mark="$2" pid i
    if [ -s "$pidfile" ]; then
        pid="$(tr -dc '0-9' <"$pidfile")"
        if [ -n "$pid" ] && alive "$pid" &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$mark"; then
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                alive "$pid" || break
                sleep 0.1
            done
            alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}
