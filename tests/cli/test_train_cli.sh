#!/usr/bin/env bash
# tandem train and tandem sweep as a user runs them: the files they leave,
# --resume after a SIGKILL giving the same metrics as an uninterrupted run,
# the pictures (or the message without gnuplot), and every kind of bad input
# failing with a clear message, a non-zero exit and no output files.
# Usage: test_train_cli.sh path/to/tandem path/to/source-tree
set -u
tandem=$(realpath "$1")
root=$2
source "$(dirname "$0")/common.sh"
cd "$root"

# Fails when a bad run left anything in its output folder.
check_no_output() {
    if [ -e "$work/$1" ]; then
        bad "$2 left files behind: $(find "$work/$1" | head -3 | tr '\n' ' ')"
    else
        ok "$2 leaves no files"
    fi
}

# --- a small training run ---
check "train writes metrics" 0 "epoch 3: train error" \
    "$tandem" -q --device cpu --out "$work/runs" --epochs 3 train
if [ "$(wc -l <"$work/runs/resnet/metrics.csv")" -eq 5 ] &&
    head -1 "$work/runs/resnet/metrics.csv" | grep -q "^epoch,train_loss,train_err,test_loss,test_err,seconds$" &&
    [ -s "$work/runs/resnet/checkpoint.bin" ]; then
    ok "metrics.csv has a header and epochs 0..3; checkpoint.bin exists"
else
    bad "train outputs"
    ls -la "$work/runs/resnet"
fi

# --- progress: a rewritten line on a terminal (script(1) provides one), plain
# lines otherwise, nothing with -q ---
if command -v script >/dev/null; then
    on_tty=$(script -qec "'$tandem' --device cpu --epochs 3 --out '$work/tty' train" /dev/null)
    if grep -q $'\r\033\[K' <<<"$on_tty" && grep -q "ETA" <<<"$on_tty"; then
        ok "a live progress line on a terminal"
    else
        bad "no live progress line on a terminal"
    fi
fi
plain=$("$tandem" --device cpu --epochs 3 --out "$work/plain" train 2>&1)
if ! grep -q $'\r' <<<"$plain" && grep -q "resnet epoch 3/3 .*ETA" <<<"$plain"; then
    ok "plain progress lines without a terminal"
else
    bad "progress without a terminal"
fi
quiet=$("$tandem" -q --device cpu --epochs 3 --out "$work/quiet" train 2>&1)
! grep -q "ETA" <<<"$quiet" && ok "-q prints no progress" || bad "-q printed progress"

# --- resume after SIGKILL equals an uninterrupted run (on the cpu backend) ---
common=(-q --device cpu --channels 64 --epochs 24)
resume_config=$(config resume "[run]
checkpoint_every = 1")
"$tandem" "${common[@]}" --config "$resume_config" --out "$work/whole" train >/dev/null 2>&1
"$tandem" "${common[@]}" --config "$resume_config" --out "$work/killed" train >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do # kill it once a few epochs are done
    if [ -f "$work/killed/resnet/metrics.csv" ] &&
        [ "$(wc -l <"$work/killed/resnet/metrics.csv")" -ge 6 ]; then
        break
    fi
    sleep 0.02
done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
killed_rows=$(($(wc -l <"$work/killed/resnet/metrics.csv") - 1))
"$tandem" "${common[@]}" --config "$resume_config" --out "$work/killed" --resume train >/dev/null 2>&1
resumed_status=$?
without_seconds() { cut -d, -f1-5 "$1"; }
if [ "$resumed_status" -eq 0 ] && [ "$killed_rows" -lt 25 ] &&
    diff <(without_seconds "$work/whole/resnet/metrics.csv") \
        <(without_seconds "$work/killed/resnet/metrics.csv") >/dev/null; then
    ok "killed after $killed_rows rows, --resume gives the uninterrupted run's metrics"
else
    bad "resume after SIGKILL (exit $resumed_status, killed after $killed_rows rows)"
    diff <(without_seconds "$work/whole/resnet/metrics.csv") \
        <(without_seconds "$work/killed/resnet/metrics.csv") | head -5
fi
check "--resume of a finished run changes nothing" 0 "epoch 24: train error" \
    "$tandem" "${common[@]}" --config "$resume_config" --out "$work/killed" --resume train
head -c 100 "$work/whole/resnet/checkpoint.bin" >"$work/truncated.bin"
mkdir -p "$work/trunc/resnet"
cp "$work/truncated.bin" "$work/trunc/resnet/checkpoint.bin"
cp "$work/whole/resnet/metrics.csv" "$work/trunc/resnet/"
check "a truncated checkpoint is a clear error" 1 "checkpoint .*checkpoint.bin is (truncated|corrupt)" \
    "$tandem" "${common[@]}" --out "$work/trunc" --resume train
check "a checkpoint of another model is refused" 1 "belongs to another model" \
    "$tandem" -q --device cpu --channels 2 --epochs 24 --out "$work/whole" --resume train

# --- configs/lenet.ini on MNIST-format files: a tiny made-up set here ---
idx_images() { # idx_images FILE COUNT: COUNT random 28x28 images
    printf '\000\000\010\003\000\000\000\'"$(printf '%03o' "$2")"'\000\000\000\034\000\000\000\034' >"$1"
    head -c $(($2 * 784)) /dev/urandom >>"$1"
}
idx_labels() { # idx_labels FILE COUNT (a multiple of 10): labels 0..9 repeated
    printf '\000\000\010\001\000\000\000\'"$(printf '%03o' "$2")" >"$1"
    for _ in $(seq 1 $(($2 / 10))); do printf '\000\001\002\003\004\005\006\007\010\011' >>"$1"; done
}
idx_images "$work/train-images" 40
idx_labels "$work/train-labels" 40
idx_images "$work/test-images" 20
idx_labels "$work/test-labels" 20
sed -e "s|mnist/train-images-idx3-ubyte.gz|$work/train-images|" \
    -e "s|mnist/train-labels-idx1-ubyte.gz|$work/train-labels|" \
    -e "s|mnist/t10k-images-idx3-ubyte.gz|$work/test-images|" \
    -e "s|mnist/t10k-labels-idx1-ubyte.gz|$work/test-labels|" \
    -e "s|^epochs = .*|epochs = 2|" -e "s|^batch = .*|batch = 16|" configs/lenet.ini >"$work/lenet.ini"
check "LeNet trains on IDX files" 0 "lenet: epoch 2: train error" \
    "$tandem" -q --device cpu --config "$work/lenet.ini" --out "$work/mnist" train
[ "$(wc -l <"$work/mnist/lenet/metrics.csv")" -eq 4 ] && ok "LeNet metrics" || bad "LeNet metrics"

# --- the sweep: pictures, summary, and the message without gnuplot ---
sweep=$(config sweep "[run]
sweep = 1 2 | 4")
check "sweep prints the summary" 0 "results in .*/sweep" \
    "$tandem" -q --device cpu --config "$sweep" --epochs 2 --out "$work/s" sweep
if [ -s "$work/s/sweep/summary.md" ] && [ -s "$work/s/sweep/c4/metrics.csv" ] &&
    grep -q "| 4 |" "$work/s/sweep/summary.md"; then
    ok "sweep writes summary.md and a folder per C"
else
    bad "sweep outputs"
fi
if command -v gnuplot >/dev/null; then
    for picture in errors-c1-c2 errors-c4 loss-c1-c2 loss-c4; do
        if is_png "$work/s/sweep/$picture.png"; then
            ok "sweep draws $picture.png"
        else
            bad "sweep picture $picture.png"
        fi
    done
elif [ "${CI:-}" = "true" ]; then
    bad "CI=true but gnuplot is not installed"
fi
nognuplot="$work/bin"
mkdir -p "$nognuplot"
ln -s "$tandem" "$nognuplot/tandem"
check "without gnuplot the CSVs stay and the message says how" 0 "gnuplot not found.*gnuplot plot.gp" \
    env PATH="$nognuplot" "$nognuplot/tandem" -q --device cpu --config "$sweep" --epochs 1 \
    --out "$work/s2" sweep
[ -s "$work/s2/sweep/c1/metrics.csv" ] && ok "CSVs written without gnuplot" || bad "CSVs without gnuplot"

# --- bad input: a message, a non-zero exit, no files ---
printf '0,1,2\n' >"$work/short.csv"
printf '%s\n' "$(seq -s, 0 64 | sed 's/,64$/,3/')" >"$work/pixel.csv" # 63 pixels 0..62, label 3
printf '%s\n' "$(yes 1 | head -64 | tr '\n' ,)12" >"$work/label.csv"
printf '%s\n' "$(yes 1 | head -64 | tr '\n' ,) " >"$work/blank.csv" # a blank label
printf '\037\213\010\000garbage' >"$work/corrupt.csv.gz"
: >"$work/empty.csv"
data() { config "data_$1" "[data]
path = $2
test_rows = 1"; }
check "missing data file" 1 "cannot open data file .*/nope.csv" \
    "$tandem" -q --device cpu --config "$(data missing "$work/nope.csv")" --out "$work/o1" train
check_no_output o1 "missing data file"
check "row length" 1 "short.csv:1: 3 values, expected 65" \
    "$tandem" -q --device cpu --config "$(data short "$work/short.csv")" --out "$work/o2" train
check_no_output o2 "row length"
check "pixel out of range" 1 "pixel.csv:1: pixel 17 out of range \[0, 16\]" \
    "$tandem" -q --device cpu --config "$(data pixel "$work/pixel.csv")" --out "$work/o3" train
check_no_output o3 "pixel out of range"
check "label out of range" 1 "label.csv:1: label 12 out of range \[0, 9\]" \
    "$tandem" -q --device cpu --config "$(data label "$work/label.csv")" --out "$work/o4" train
check_no_output o4 "label out of range"
# A full disk (metrics.csv a link to /dev/full): the error names the reason,
# and the failed new run leaves no empty metrics.csv.
mkdir -p "$work/full/resnet" && ln -s /dev/full "$work/full/resnet/metrics.csv"
check "a full disk names the reason" 1 "cannot write .*/full/resnet/metrics.csv: No space left on device" \
    "$tandem" -q --device cpu --epochs 1 --out "$work/full" train
[ -z "$(ls -A "$work/full/resnet")" ] && ok "a full disk leaves no empty metrics.csv" ||
    bad "a full disk left $(ls "$work/full/resnet")"
# Batch norm on 1x1 maps sees one value per channel in a last batch of 1
# (1617 = 1616 + 1): refused before any file, as PyTorch refuses it.
one_by_one=$(config one_by_one "[model]
input = 1x8x8
layer = conv2d out=2 kernel=8
layer = batchnorm2d
layer = flatten
layer = linear out=10")
check "batch norm on one value per channel, refused up front" 1 \
    "batch norm \(layer 2\) would see one value per channel in a batch of 1 on 1x1 maps" \
    "$tandem" -q --device cpu --config "$one_by_one" --batch 1616 --out "$work/o_bn" train
check_no_output o_bn "batch norm on one value per channel"
check "a blank field (not read as 0)" 1 "blank.csv:1: value 65 is not a whole number" \
    "$tandem" -q --device cpu --config "$(data blank "$work/blank.csv")" --out "$work/o4b" train
check_no_output o4b "a blank field"
# Lines are read a megabyte at a time: a row across two reads is whole, and
# blank lines (empty, spaces, CR LF) count for the line numbers.
{ head -c $((1048576 - 3)) /dev/zero | tr '\0' '\n'; printf '0,1,2\n'; } >"$work/across.csv"
check "a row across two reads" 1 "across.csv:1048574: 3 values, expected 65" \
    "$tandem" -q --device cpu --config "$(data across "$work/across.csv")" --out "$work/o4c" train
{ head -c 3000000 /dev/zero | tr '\0' '\n'; printf ' \n\r\n\t\n0,1\n'; } | gzip >"$work/blanks.csv.gz"
check "blank lines counted" 1 "blanks.csv.gz:3000004: 2 values, expected 65" \
    "$tandem" -q --device cpu --config "$(data blanks "$work/blanks.csv.gz")" --out "$work/o4d" train
printf '0,1\0,2\n' >"$work/nul.csv"
check "a NUL byte in a CSV line" 1 "nul.csv:1: a NUL byte in the line" \
    "$tandem" -q --device cpu --config "$(data nul "$work/nul.csv")" --out "$work/o4e" train
check_no_output o4e "a NUL byte"
# [data] max_mb: 1 MiB holds 4032 samples of 64 pixels (260 bytes each).
row=$(printf '0,%.0s' $(seq 64))1
for _ in $(seq 5000); do echo "$row"; done >"$work/many.csv"
capped=$(config capped "[data]
path = $work/many.csv
max_mb = 1")
check "[data] max_mb caps the samples" 1 "many.csv:4033: more samples than the memory cap of 1.0 MiB holds" \
    "$tandem" -q --device cpu --config "$capped" --out "$work/o4f" train
check_no_output o4f "max_mb"
check "corrupt gzip" 1 "corrupt.csv.gz" \
    "$tandem" -q --device cpu --config "$(data corrupt "$work/corrupt.csv.gz")" --out "$work/o5" train
check_no_output o5 "corrupt gzip"
check "empty data file" 1 "empty.csv: no samples" \
    "$tandem" -q --device cpu --config "$(data empty "$work/empty.csv")" --out "$work/o6" train
check_no_output o6 "empty data file"
unknown=$(config unknown "[train]
epochs = 3
speed = 11")
check "unknown config key" 1 "unknown.ini:3: \[train\] unknown key 'speed'" \
    "$tandem" -q --device cpu --config "$unknown" --out "$work/o7" train
check_no_output o7 "unknown config key"
check "lr 0" 1 "--lr: lr must be > 0" "$tandem" -q --device cpu --lr 0 --out "$work/o8" train
check "lr negative" 1 "--lr: lr must be a number" "$tandem" -q --device cpu --lr -0.1 --out "$work/o8" train
check "batch 0" 1 "--batch: batch must be a whole number in \[1," \
    "$tandem" -q --device cpu --batch 0 --out "$work/o8" train
check "channels 0" 2 "--channels must be a whole number" \
    "$tandem" -q --device cpu --channels 0 --out "$work/o8" train
check "negative epochs" 1 "--epochs: epochs must be a whole number" \
    "$tandem" -q --device cpu --epochs -3 --out "$work/o8" train
check "a negative seed after a space (not 2^64 - 3)" 1 "--seed: seed must be a whole number >= 0, got ' -3'" \
    "$tandem" -q --device cpu --seed " -3" --out "$work/o8" train
check_no_output o8 "bad flags"
: >"$work/a-file"
check "output folder that cannot be written" 1 "cannot create output folder .*a-file" \
    "$tandem" -q --device cpu --epochs 1 --out "$work/a-file/runs" train
check "a bad data format" 1 "format.ini:2: \[data\] format must be csv or idx" \
    "$tandem" -q --device cpu --config "$(config format "[data]
format = parquet")" --out "$work/o10" train
check "checkpoint_every 0" 1 "every.ini:2: \[run\] checkpoint_every must be a whole number > 0" \
    "$tandem" -q --device cpu --config "$(config every "[run]
checkpoint_every = 0")" --out "$work/o10" train
check "a bad sweep list" 1 "list.ini:2: \[run\] sweep must list up to 16 channel counts" \
    "$tandem" -q --device cpu --config "$(config list "[run]
sweep = 1 x")" --out "$work/o10" sweep
check "a --name with a slash" 1 "--name: name must be 1 to 255 characters without '/'" \
    "$tandem" -q --device cpu --name a/b --out "$work/o10" train
check_no_output o10 "bad config values"
check "NaN loss stops training naming the epoch" 1 "training diverged in epoch [0-9]+" \
    "$tandem" -q --device cpu --epochs 50 --lr 1e5 --out "$work/o9" train

finish
