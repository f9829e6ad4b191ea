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
check "a blank field (not read as 0)" 1 "blank.csv:2: value 2 is not 0 or 1" \
    em_with blank '0,1,1\n1, ,1\n'
no_output blank
printf '1,0,5\n0,1,3000000000\n' >"$work/biglabel.csv"
printf '[em]\npath = %s\nlabels = true\ncomponents = 2\n' "$work/biglabel.csv" >"$work/biglabel.ini"
# A build without MPI started by an MPI launcher as one of several refuses:
# each process would do the whole job and write the same files.
if "$tandem" --version | grep -q "without MPI"; then
    check "no MPI, yet one of 2 processes" 1 "this build of tandem has no MPI" \
        env OMPI_COMM_WORLD_SIZE=2 "$tandem" -q --device cpu --out "$work/out-nompi" em
    no_output nompi
fi
check "a label past 2^31 (not wrapped negative)" 1 \
    "biglabel.csv:2: value 3 is not a label \(a whole number in \[0, 2\^31\)\)" \
    "$tandem" -q --device cpu --config "$work/biglabel.ini" --out "$work/out-biglabel" em
no_output biglabel
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
check "bad labels" 1 "bad_labels.ini:2: \[em\] labels must be true or false, got 'maybe'" \
    "$tandem" -q --device cpu --config "$(config bad_labels "[em]
labels = maybe")" --out "$work/out-bad_labels" em
check "a bad threshold" 1 "threshold.ini:2: \[em\] threshold must be a number" \
    "$tandem" -q --device cpu --config "$(config threshold "[em]
threshold = eight")" --out "$work/out-threshold" em
check "an unknown method" 1 "method.ini:2: \[em\] method must be auto, bits or gemm" \
    "$tandem" -q --device cpu --config "$(config method "[em]
method = fast")" --out "$work/out-method" em
check "a bad image shape" 1 "image.ini:2: \[em\] image must be HxW" \
    "$tandem" -q --device cpu --config "$(config image "[em]
image = 8")" --out "$work/out-image" em
check "a negative image height" 1 "image_neg.ini:2: \[em\] image must be HxW with H and W in 1..65536, got '-3x-600'" \
    "$tandem" -q --device cpu --config "$(config image_neg "[em]
image = -3x-600")" --out "$work/out-image_neg" em
check "an image of 2^64 + 1 rows" 1 "image must be HxW with H and W in 1..65536" \
    "$tandem" -q --device cpu --config "$(config image_huge "[em]
image = 18446744073709551617x1")" --out "$work/out-image_huge" em
check "shard_rows = 0" 1 "shards.ini:2: \[em\] shard_rows must be a whole number in \[1," \
    "$tandem" -q --device cpu --config "$(config shards "[em]
shard_rows = 0")" --out "$work/out-shards" em
check "a bad --k-sweep" 1 "--k-sweep must be A..B" \
    "$tandem" -q --device cpu --k-sweep 5..2 --out "$work/out-sweep" em
for name in init prior bad_labels threshold method image image_neg image_huge shards sweep; do
    no_output "$name"
done

# A file that cannot be written (here a folder in the way of history.csv's
# temporary) fails the run with the reason, and none of the outputs appear.
mkdir -p "$work/blocked/em/history.csv.tmp"
check "an output that cannot be written" 1 "cannot write .*/blocked/em/history.csv: Is a directory" \
    "$tandem" -q --device cpu --config "$work/good.ini" --out "$work/blocked" em
if [ -z "$(find "$work/blocked/em" -name '*.csv' -o -name '*.dat' -o -name '*.csv.tmp' -type f)" ]; then
    ok "a failed write leaves no output files"
else
    bad "a failed write left files: $(ls "$work/blocked/em")"
fi

# --seed is the [em] seed under tandem em: the same seed, the same fit;
# another seed, another random start.
seeded=$(config seeded "[em]
init = random_responsibilities
components = 3
max_iter = 5")
for run in 1a 1b 2; do
    "$tandem" -q --device cpu --config "$seeded" --seed "${run:0:1}" --out "$work/seeds" \
        --name "$run" em >/dev/null 2>&1
done
if cmp -s "$work/seeds/1a/history.csv" "$work/seeds/1b/history.csv" &&
    ! cmp -s "$work/seeds/1a/history.csv" "$work/seeds/2/history.csv"; then
    ok "--seed sets the EM start"
else
    bad "--seed did not set the EM start"
fi

# .npy input: the same 0/1 data as a CSV, a uint8 .npy and a numpy.packbits
# .npy (40 x 10) give the same fit.
binary_rows same 40
mv "$work/same-packed.npy" "$work/packed.npy"
npy "$work/float.npy" "<f8" 40 10 "$bytes"
fit() { # fit NAME PATH [KEY = VALUE]: em with K = 2 into $work/npy/NAME
    printf '[em]\npath = %s\ncomponents = 2\nimage = 2x5\n%s\n' "$2" "${3:-}" >"$work/$1.ini"
    "$tandem" -q --device cpu --config "$work/$1.ini" --out "$work/npy" --name "$1" em
}
check "em on a CSV" 0 "K = 2: " fit csv "$work/same.csv"
check "em on a .npy" 0 "K = 2: " fit npy "$work/same.npy"
check "em on a packbits .npy" 0 "K = 2: " fit packed "$work/packed.npy" "packed_cols = 10"
for name in npy packed; do
    if cmp -s "$work/npy/csv/params.csv" "$work/npy/$name/params.csv" &&
        cmp -s "$work/npy/csv/assignments.csv" "$work/npy/$name/assignments.csv"; then
        ok "$name gives the CSV's parameters and assignments"
    else
        bad "$name differs from the CSV"
    fi
done
check "a float .npy" 1 "float.npy: dtype '<f8' is not uint8 or bool" fit float "$work/float.npy"
check "labels in a .npy" 1 "same.npy: a .npy file holds no labels" \
    fit labels "$work/same.npy" "labels = true"
check "packed_cols with a CSV" 1 "packed_cols is for .npy files" \
    fit csvpacked "$work/same.csv" "packed_cols = 10"
check "packed_cols that do not match" 1 "packed.npy: 2 packed bytes per row, but 20 columns need 3" \
    fit wrongcols "$work/packed.npy" "packed_cols = 20"
for name in float labels csvpacked wrongcols; do
    [ ! -e "$work/npy/$name" ] && ok "$name leaves no files" || bad "$name left files"
done

finish
