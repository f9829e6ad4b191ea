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

npy() { # npy FILE DESCR ROWS COLS DATA: a format 1.0 file as numpy.save writes it
    local dict="{'descr': '$2', 'fortran_order': False, 'shape': ($3, $4), }"
    local length=$(((10 + ${#dict} + 1 + 63) / 64 * 64 - 10))
    {
        printf '\x93NUMPY\x01\x00'
        printf "\\x$(printf %02x $((length % 256)))\\x$(printf %02x $((length / 256)))"
        printf '%s%*s\n' "$dict" $((length - ${#dict} - 1)) ''
        printf "$5"
    } >"$1"
}

# binary_rows NAME ROWS [LABELS]: ROWS x 10 made-up 0/1 rows as NAME.csv (a
# last column of row % LABELS when given), NAME.npy (uint8) and
# NAME-packed.npy (numpy.packbits) in $work; the bytes also in $bytes.
binary_rows() {
    local r c v line bits csv="" packed=""
    bytes=""
    for r in $(seq 0 $(($2 - 1))); do
        line="" bits=0
        for c in $(seq 0 9); do
            v=$(((r * 7 + c * 3 + r * c) % 5 < 2 ? 1 : 0))
            line="$line${line:+,}$v"
            bytes="$bytes\\x0$v"
            bits=$((bits | v << (15 - c)))
        done
        csv="$csv$line${3:+,$((r % ${3:-1}))}\n"
        packed="$packed\\x$(printf %02x $((bits >> 8)))\\x$(printf %02x $((bits & 255)))"
    done
    printf "$csv" >"$work/$1.csv"
    npy "$work/$1.npy" "|u1" "$2" 10 "$bytes"
    npy "$work/$1-packed.npy" "|u1" "$2" 2 "$packed"
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
