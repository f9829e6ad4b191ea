# Shared by the CLI test scripts (sourced): a scratch folder, counters and
# the check helper. The sourcing script sets `tandem` first.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAILED: $1"; }

# check NAME EXPECTED_EXIT PATTERN COMMAND...: the exit status must match and
# the combined output must match the extended regex PATTERN.
check() {
    local name=$1 expected_exit=$2 pattern=$3
    shift 3
    local output status
    output=$("$@" 2>&1)
    status=$?
    if [ "$status" -eq "$expected_exit" ] && grep -Eq -- "$pattern" <<<"$output"; then
        ok "$name"
    else
        bad "$name (exit $status, expected $expected_exit; wanted /$pattern/)"
        echo "$output" | sed 's/^/    /'
    fi
}

config() { # config NAME CONTENT: writes a config file, prints its path
    printf '%s\n' "$2" >"$work/$1.ini"
    echo "$work/$1.ini"
}

is_png() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ]; }

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
