#!/usr/bin/env bash
# tandem em and train across MPI processes, as a user runs them with mpirun.
# em: np = 2 and 3 (uneven shares) give np = 1's params.csv, history.csv and
# assignments.csv byte for byte, for every initialisation, on the cpu backend
# and on PoCL, from the digits, a CSV with labels and a packed .npy; one
# process on the cpu backend and one on PoCL agree with np = 1 within the
# backends' tolerance; --k-sweep gives np = 1's table. train: np = 2 and 3
# follow np = 1 within the backends' agreement over 5 epochs, and so do a run
# resumed with another process count and a cpu and a PoCL process together.
# A bad row on one process, a failure inside the fit, a batch too small to
# share and a command that does not run distributed end every process with
# the error, no hang (each mpirun under a timeout) and no files.
# Usage: test_mpi.sh path/to/tandem path/to/source-tree
set -u
tandem=$(realpath "$1")
root=$2
source "$(dirname "$0")/../cli/common.sh"
cd "$root"

mpi() { # mpi N ARGS...: tandem ARGS on N processes, at most 120 s
    local n=$1
    shift
    timeout 120 mpirun --oversubscribe --allow-run-as-root -np "$n" "$tandem" "$@"
}
same_files() { # same_files NAME A B: the two runs wrote the same bytes
    local f
    for f in params.csv history.csv assignments.csv; do
        if ! cmp -s "$work/runs/$2/$f" "$work/runs/$3/$f"; then
            bad "$1: $3/$f differs from $2/$f"
            return
        fi
    done
    ok "$1"
}
# Shards of 300 rows in blocks of 128: the digits' 1797 rows are 6 shards.
digits() { # digits NAME INIT: a config over configs/em.ini
    config "$1" "$(cat configs/em.ini)
[em]
shard_rows = 300
block_rows = 128
n_init = 2
max_iter = 40
init = $2"
}

for init in kmeans++ random_rows random_responsibilities; do
    cfg=$(digits "$init" "$init")
    mpi 1 -q --device cpu --config "$cfg" --out "$work/runs" --name "$init-1" em >/dev/null 2>&1
    for n in 2 3; do
        check "np = $n, $init: one summary" 0 "^results in " \
            mpi "$n" -q --device cpu --config "$cfg" --out "$work/runs" --name "$init-$n" em
        same_files "np = $n, $init: np = 1's bytes" "$init-1" "$init-$n"
    done
done
lines=$(mpi 3 -q --device cpu --config "$(digits once kmeans++)" --out "$work/runs" --name once em |
    grep -c "^purity")
[ "$lines" -eq 1 ] && ok "only process 0 prints" || bad "the summary printed $lines times"

# --k-sweep: the same table.
for n in 1 3; do
    mpi "$n" -q --device cpu --config "$(digits sweep kmeans++)" --k-sweep 2..3 \
        --out "$work/runs" --name "sweep-$n" em >/dev/null 2>&1
done
cmp -s "$work/runs/sweep-1/k-sweep.csv" "$work/runs/sweep-3/k-sweep.csv" &&
    [ -s "$work/runs/sweep-3/k-sweep.csv" ] && ok "--k-sweep on 3 processes: np = 1's table" ||
    bad "--k-sweep on 3 processes"

# PoCL in every process: the same bytes as PoCL in one.
pocl=(--device "opencl:Portable Computing Language")
cfg=$(digits pocl kmeans++)
check "np = 1 on PoCL" 0 "^results in " \
    mpi 1 -q "${pocl[@]}" --config "$cfg" --out "$work/runs" --name pocl-1 em
check "np = 2 on PoCL" 0 "^results in " \
    mpi 2 -q "${pocl[@]}" --config "$cfg" --out "$work/runs" --name pocl-2 em
same_files "np = 2 on PoCL: np = 1's bytes" pocl-1 pocl-2

# One process on the cpu backend, one on PoCL (mpirun's A : B form): the fit
# of np = 1 on the cpu backend within the backends' agreement (float32
# log-likelihoods per row: 1e-5 relative, as tests/test_em.c).
mixed=$(timeout 120 mpirun --oversubscribe --allow-run-as-root \
    -np 1 "$tandem" --device cpu --config "$cfg" --out "$work/runs" --name mixed em : \
    -np 1 "$tandem" "${pocl[@]}" --config "$cfg" --out "$work/runs" --name mixed em 2>&1)
ll() { sed -n 's/.*log-likelihood \(-[0-9.]*\) (.*/\1/p' <<<"$1"; }
reference=$(mpi 1 -q --device cpu --config "$cfg" --out "$work/runs" --name mixed-1 em 2>&1)
if grep -q "device: cpu" <<<"$mixed" && grep -q "device: opencl" <<<"$mixed" &&
    awk -v a="$(ll "$mixed")" -v b="$(ll "$reference")" \
        'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-5 * -b) }'; then
    ok "cpu and PoCL processes together: $(ll "$mixed"), np = 1 on cpu: $(ll "$reference")"
else
    bad "cpu and PoCL processes together"
    echo "$mixed" | sed 's/^/    /'
fi

# A CSV with labels (60 rows, shards of 8: 16, 24 and 20 rows on 3
# processes) and the same data as a packed .npy.
binary_rows rows 60 3
user() { # user NAME PATH KEYS: a config for a user file
    config "$1" "[em]
path = $2
components = 3
shard_rows = 8
image = 2x5
$3"
}
csv_cfg=$(user csv "$work/rows.csv" "labels = true")
npy_cfg=$(user npy "$work/rows-packed.npy" "packed_cols = 10")
for kind in csv npy; do
    var=${kind}_cfg
    mpi 1 -q --device cpu --config "${!var}" --out "$work/runs" --name "$kind-1" em >/dev/null 2>&1
    check "np = 3 on a $kind file" 0 "^results in " \
        mpi 3 -q --device cpu --config "${!var}" --out "$work/runs" --name "$kind-3" em
    same_files "np = 3 on a $kind file: np = 1's bytes" "$kind-1" "$kind-3"
done

# Line 30 (row 29) is process 1's: it says so, process 0 names it, and all exit.
sed '30s/^0/2/;30s/^1/2/' "$work/rows.csv" >"$work/bad.csv"
check "a bad row on process 1 ends every process" 1 \
    "process 1: error: .*bad.csv:30: value 1 is not 0 or 1" \
    mpi 3 -q --device cpu --config "$(user bad "$work/bad.csv" "labels = true")" \
    --out "$work/runs" --name bad em
check "process 0 names the failed process" 1 "process 0: error: process 1 of 3 failed" \
    mpi 3 -q --device cpu --config "$(user bad "$work/bad.csv" "labels = true")" \
    --out "$work/runs" --name bad em
[ ! -e "$work/runs/bad" ] && ok "the bad row leaves no files" || bad "the bad row left files"

# A failure inside the fit (K > n, found there) ends every process.
check "a failure inside the fit ends every process" 1 "K = 61 components for 60 rows" \
    mpi 2 -q --device cpu --config "$csv_cfg" --k 61 --out "$work/runs" --name big em
[ ! -e "$work/runs/big" ] && ok "the failed fit leaves no files" || bad "the failed fit left files"

# Training: each process takes its share of every batch of 128 (the last,
# of 29 samples: 15/14 and 10/10/9), batch norm over the whole batch.
train() { # train N NAME FLAGS...: ResNet(4) on the digits on N processes
    local n=$1 name=$2
    shift 2
    mpi "$n" -q --device cpu --out "$work/train" --name "$name" "$@" train
}
# agree A B: the metrics rows of two runs within the backends' agreement
# (tests/test_training.c): losses within 1e-4 relative, errors 0.5 points.
agree() {
    paste -d, "$work/train/$1/metrics.csv" "$work/train/$2/metrics.csv" | tail -n +2 | awk -F, '
        function rel(a, b) { d = a - b; if (d < 0) d = -d; return d / b }
        function abs(a) { return a < 0 ? -a : a }
        $1 != $7 || rel($2, $8) > 1e-4 || rel($4, $10) > 1e-4 ||
            abs($3 - $9) > 0.005 || abs($5 - $11) > 0.005 { bad = 1 }
        END { exit bad || NR == 0 }'
}
check "train on 1 process" 0 "epoch 5: train error" train 1 np1 --epochs 5
for n in 2 3; do
    check "train on $n processes: one summary" 0 "^[^ ]*/np$n: epoch 5: train error" \
        train "$n" "np$n" --epochs 5
    [ "$(train "$n" "again$n" --epochs 1 | grep -c "epoch 1:")" -eq 1 ] &&
        ok "only process 0 prints, $n processes" || bad "the summary printed more than once"
    agree np1 "np$n" && ok "train on $n processes follows 1 process" ||
        bad "train on $n processes: $(cat "$work/train/np$n/metrics.csv")"
done
train 2 resumed --epochs 3 >/dev/null 2>&1
check "a run of 2 processes resumed by 3" 0 "epoch 5: train error" \
    train 3 resumed --epochs 5 --resume
agree np1 resumed && [ "$(wc -l <"$work/train/resumed/metrics.csv")" -eq 7 ] &&
    ok "the resumed run follows 1 process" || bad "the resumed run"
# One process on the cpu backend and one on PoCL train together.
mixed=$(timeout 120 mpirun --oversubscribe --allow-run-as-root \
    -np 1 "$tandem" --device cpu --epochs 5 --out "$work/train" --name mixed train : \
    -np 1 "$tandem" "${pocl[@]}" --epochs 5 --out "$work/train" --name mixed train 2>&1)
if grep -q "device: cpu" <<<"$mixed" && grep -q "device: opencl" <<<"$mixed" &&
    agree np1 mixed; then
    ok "cpu and PoCL processes train together as one process"
else
    bad "cpu and PoCL processes training together"
    echo "$mixed" | sed 's/^/    /'
fi
check "a batch too small to share ends every process" 1 "a batch of 2 samples among 3 processes" \
    train 3 small --epochs 1 --batch 2
[ ! -e "$work/train/small/metrics.csv" ] && ok "the batch too small leaves no metrics" ||
    bad "the batch too small left metrics"
check "sweep refuses to run as several processes" 2 "sweep runs in one process" \
    mpi 2 -q --device cpu --epochs 1 --out "$work/runs" --name sweep sweep

finish
