# Sourced by tests that run under a tool (valgrind, oclgrind):
# require_tool COMMAND [HINT] skips the test (exit 77) when COMMAND is
# missing, and fails it when CI=true, where the tool must be installed.
require_tool() {
    command -v "$1" >/dev/null && return
    if [ "${CI:-}" = true ]; then
        echo "FAILED: CI=true but $1 is not installed"
        exit 1
    fi
    echo "SKIPPED: $1 is not installed${2:+ ($2)}"
    exit 77
}
