#!/usr/bin/env bash
# tandem em as a user runs it: the files and pictures it leaves, --k-sweep,
# and bad input (values other than 0/1, NaN, ragged rows, an empty file,
# K <= 0, K > n) failing with a message naming the file and line, a non-zero
# exit and no output files.
# Usage: test_em_cli.sh path/to/tandem path/to/source-tree
set -u
tandem=$(realpath "$1")
root=$2
source "$(dirname "$0")/common.sh"
cd "$root"

check "em on the digits" 0 "purity 0\.[0-9]+, adjusted Rand index 0\.[0-9]+" \
    "$tandem" -q --device cpu --config configs/em.ini --out "$work/runs" em
dir="$work/runs/em"
if [ "$(wc -l <"$dir/params.csv")" -eq 11 ] && [ "$(wc -l <"$dir/assignments.csv")" -eq 1798 ] &&
    head -1 "$dir/assignments.csv" | grep -q "^row,cluster,label$" &&
    head -1 "$dir/history.csv" | grep -q "^iteration,mean_log_likelihood,mean_objective$"; then
    ok "params.csv, assignments.csv and history.csv"
else
    bad "em outputs"
fi
if command -v gnuplot >/dev/null; then
    is_png "$dir/means.png" && ok "means.png drawn" || bad "means.png"
fi
check "the log-likelihood per iteration, without a terminal" 0 \
    "restart 1, iteration 2: log-likelihood per sample -[0-9.]+" \
    "$tandem" --device cpu --config configs/em.ini --k 3 --out "$work/runs" --name k3 em
check "k-sweep reports BIC and AIC" 0 "^ +4 +-[0-9.]+ +[0-9.]+ +[0-9.]+" \
    "$tandem" -q --device cpu --out "$work/runs" --k-sweep 2..4 em
[ "$(wc -l <"$work/runs/em-k-sweep/k-sweep.csv")" -eq 4 ] && ok "k-sweep.csv" || bad "k-sweep.csv"
if command -v gnuplot >/dev/null; then
    is_png "$work/runs/em-k-sweep/bic.png" && ok "bic.png drawn" || bad "bic.png"
fi
printf '0,1,1\n1,0,1\n' >"$work/good.csv"
good=$(printf '[em]\npath = %s\nimage = 1x3\ncomponents = 2' "$work/good.csv")
printf '%s\n' "$good" >"$work/good.ini"
check "a user CSV of 0/1 rows" 0 "K = 2: " \
    "$tandem" -q --device cpu --config "$work/good.ini" --out "$work/user" em

em_with() { # em_with NAME CSV-CONTENT: runs em on it
    printf "$2" >"$work/$1.csv"
    printf '[em]\npath = %s\ncomponents = 2\n' "$work/$1.csv" >"$work/$1.ini"
    "$tandem" -q --device cpu --config "$work/$1.ini" --out "$work/out-$1" em
}
no_output() { [ ! -e "$work/out-$1" ] && ok "$1 leaves no files" || bad "$1 left files"; }
check "a value other than 0/1" 1 "two.csv:2: value 3 is not 0 or 1" em_with two '0,1,0\n1,1,2\n'
no_output two
check "NaN" 1 "nan.csv:1: value 1 is not 0 or 1" em_with nan 'nan,1,0\n1,1,0\n'
no_output nan
check "a ragged row" 1 "ragged.csv:3: 2 values, expected 3" em_with ragged '0,1,0\n1,1,0\n1,1\n'
no_output ragged
check "an empty file" 1 "empty.csv: no rows" em_with empty ''
no_output empty
check "K = 0" 1 "--k: components must be a whole number in \[1," \
    "$tandem" -q --device cpu --k 0 --out "$work/out-k0" em
no_output k0
check "K > n" 1 "K = 3 components for 2 rows" \
    "$tandem" -q --device cpu --config "$work/good.ini" --k 3 --out "$work/out-big" em
no_output big

# Bad [em] values name the file and line.
check "unknown init" 1 "init.ini:2: \[em\] init must be kmeans\+\+, random_rows or random_responsibilities" \
    "$tandem" -q --device cpu --config "$(config init "[em]
init = best")" --out "$work/out-init" em
check "a prior below 1" 1 "prior.ini:2: \[em\] prior_a must be a number in \[1," \
    "$tandem" -q --device cpu --config "$(config prior "[em]
prior_a = 0.5")" --out "$work/out-prior" em
check "a bad image shape" 1 "image.ini:2: \[em\] image must be HxW" \
    "$tandem" -q --device cpu --config "$(config image "[em]
image = 8")" --out "$work/out-image" em
check "a bad --k-sweep" 1 "--k-sweep must be A..B" \
    "$tandem" -q --device cpu --k-sweep 5..2 --out "$work/out-sweep" em
for name in init prior image sweep; do no_output "$name"; done

finish
