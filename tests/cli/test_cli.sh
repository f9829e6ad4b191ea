#!/usr/bin/env bash
# The command-line tool as a user runs it: device listing, --device,
# TANDEM_DEVICE, config files, fallback and errors.
# Usage: test_cli.sh path/to/tandem path/to/configs
set -u
tandem=$1
configs=$2
source "$(dirname "$0")/common.sh"

check "help" 0 "usage: tandem" "$tandem" --help
check "no command" 2 "no command given" "$tandem"
check "unknown command" 2 "unknown command 'frobnicate'" "$tandem" frobnicate
check "devices lists cpu with its GEMM and threads" 0 \
    "\[[0-9]+\] cpu +cpu backend \(GEMM: (oneDNN [0-9.]+, [a-z0-9_]+|OpenBLAS, .* kernel|portable C); [0-9]+ threads?\)" \
    "$tandem" devices
check "--threads sets the thread count" 0 "cpu backend \(GEMM: .*; 3 threads\)" \
    "$tandem" --threads 3 devices
check "TANDEM_THREADS sets it" 0 "cpu backend \(GEMM: .*; 1 thread\)" \
    env TANDEM_THREADS=1 "$tandem" devices
check "--threads beats TANDEM_THREADS" 0 "; 2 threads\)" \
    env TANDEM_THREADS=1 "$tandem" --threads 2 devices
check "--threads auto is the cores this process may use" 0 "; $(nproc) threads?\)" \
    env TANDEM_THREADS=1 "$tandem" --threads auto devices
check "bad --threads" 1 "--threads: invalid value '0' for key 'threads' \(expected auto or 1..1024\)" \
    "$tandem" --threads 0 devices
check "bad TANDEM_THREADS" 1 "TANDEM_THREADS: invalid value 'many'" \
    env TANDEM_THREADS=many "$tandem" devices
threads=$(config threads "[device]
backend = cpu
threads = 1")
check "[device] threads" 0 "tandem: device: cpu backend \(GEMM: .*; 1 thread\)" \
    env -u TANDEM_THREADS "$tandem" --config "$threads" selftest
check "TANDEM_THREADS beats [device] threads" 0 "tandem: device: cpu backend \(GEMM: .*; 3 threads\)" \
    env TANDEM_THREADS=3 "$tandem" --config "$threads" selftest
bad=$(config bad_threads "[device]
threads = -2")
check "bad threads names file and line" 1 "bad_threads.ini:2: \[device\] invalid value '-2' for key 'threads'" \
    "$tandem" --config "$bad" devices
check "selftest times 512^3 on the cpu backend" 0 "^sgemm 512x512x512 on cpu backend \(GEMM: .*\): .* GFLOP/s" \
    "$tandem" -q --device cpu selftest
if "$tandem" devices | grep -Eq "^ +(GPU|accelerator), "; then
    check "default config picks the GPU" 0 "^\* \[[0-9]+\] opencl" \
        "$tandem" --config "$configs/default.ini" devices
else
    check "default config picks cpu without a GPU" 0 "^\* \[[0-9]+\] cpu" \
        "$tandem" --config "$configs/default.ini" devices
fi
# selftest compares a training step of the model and EM with the cpu
# backend's. selftest_results NAME VALUE COMMAND...: the command prints the
# two reports and their 9 results, each VALUE (a regex) and within its
# tolerance, and ends ok.
selftest_results() {
    local name=$1 value=$2 output status within
    shift 2
    output=$("$@" 2>&1)
    status=$?
    within=$(grep -cE "^  [^ ].* +$value \(tolerance [0-9e-]+\)$" <<<"$output")
    if [ "$status" -eq 0 ] && [ "$within" -eq 9 ] &&
        grep -q "^two training steps of the model (\[model\]: .*) on [0-9]* random samples, against the cpu backend:$" <<<"$output" &&
        grep -q "^em, K = 3 on 3000 random rows of 100 values, 10 iterations, against the cpu backend:$" <<<"$output" &&
        [ "$(tail -1 <<<"$output")" = "selftest: ok" ]; then
        ok "$name"
    else
        bad "$name (exit $status, $within of 9 results as expected)"
        echo "$output" | sed 's/^/    /'
    fi
}
# The cpu backend against itself is exact; a side that is not finite (an lr
# that overflows in two steps) fails the check.
selftest_results "selftest on the cpu backend: every result exact" "0\.00e\+00" \
    "$tandem" -q --device cpu selftest
check "selftest fails where a result is not finite" 1 \
    "eval output +not finite on a side \(tolerance 1e-04\): FAILED" \
    "$tandem" -q --device cpu --lr 1e6 selftest
check "and says so last" 1 "^selftest: FAILED$" "$tandem" -q --device cpu --lr 1e6 selftest
no_scores=$(config no_scores "[model]
input = 1x8x8
layer = conv2d out=2 kernel=3")
check "selftest of a model that does not end in class scores" 1 \
    "selftest: the model must end in class scores \(it outputs 2x6x6\)" \
    "$tandem" -q --device cpu --config "$no_scores" selftest
check "--device cpu" 0 "tandem: device: cpu backend" "$tandem" --device cpu selftest
check "-q silences the device line" 0 "^sgemm" "$tandem" -q --device cpu selftest
check "bad --device" 1 "invalid device 'gpu'" "$tandem" --device gpu selftest
check "bad TANDEM_DEVICE" 1 "invalid device 'fast'" env TANDEM_DEVICE=fast "$tandem" selftest
check "missing config" 1 "cannot open config file .*/nope.ini" \
    "$tandem" --config "$work/nope.ini" devices
bad=$(config bad_key "[device]
backend = cpu
speed = fast")
check "unknown key names file and line" 1 "bad_key.ini:3: \[device\] unknown key 'speed'" \
    "$tandem" --config "$bad" devices

# tandem summary: shape inference answers the source's problem 2 (g) and (h).
for shape in 20x24x24 20x12x12 50x8x8 50x4x4; do
    check "lenet summary shows $shape" 0 " $shape " "$tandem" --config "$configs/lenet.ini" summary
done
check "default summary is ResNet(4)" 0 "block\(4\) +4x2x2 +304 " "$tandem" summary
check "--channels picks ResNet(C)" 0 "total +75338 " "$tandem" --channels 64 summary
check "bad --channels" 2 "--channels must be a whole number" "$tandem" --channels 0 summary
bad=$(config bad_layer "[model]
input = 1x8x8
layer = dense out=3")
check "unknown layer names file and line" 1 "bad_layer.ini:3: \[model\] unknown layer 'dense'" \
    "$tandem" --config "$bad" summary
bad=$(config too_small "[model]
input = 1x4x4
layer = conv2d out=2 kernel=5")
check "a layer that does not fit is named" 1 "layer 1 \(conv2d\) on a 1x4x4 input" \
    "$tandem" --config "$bad" summary
# A model too large to hold is refused by summary, not wrapped to sizes of 0
# that fail only in training.
huge=$(config huge "[model]
input = 1x256x256
layer = conv2d out=65536 kernel=1
layer = flatten
layer = linear out=10")
check "a layer of 2^32 values per sample is refused" 1 \
    "layer 1 \(conv2d\) on a 1x256x256 input: its output or parameters pass 2\^31 values" \
    "$tandem" --config "$huge" summary
# Config files that used to be misread: a long (commented-out) line was split
# by libinih and its tail read as a line of its own; a NUL cut a line short;
# a directory read as an empty file, and /dev/zero never ended.
long_comment=$(printf '%0250d' 0 | tr 0 x)
printf '[model]\n# %s layer = dense\n' "$long_comment" >"$work/long.ini"
check "a line longer than libinih's buffer is an error" 1 \
    "long.ini:2: line too long \(a config line may have 198 characters\)" \
    "$tandem" --config "$work/long.ini" summary
printf '[train]\nepochs = 2\0junk\n' >"$work/nul.ini"
check "a NUL byte is an error" 1 "nul.ini:2: a NUL byte in the line" \
    "$tandem" --config "$work/nul.ini" summary
check "a directory as --config" 1 "config file $work is not a file \(a directory or a device\)" \
    "$tandem" --config "$work" summary
check "/dev/zero as --config" 1 "config file /dev/zero is not a file" \
    timeout 20 "$tandem" --config /dev/zero summary
check "a config from a pipe still works" 0 "total +75338 " \
    bash -c "printf '[train]\nepochs = 1\n' | '$tandem' --config /dev/stdin --channels 64 summary"

if ! "$tandem" devices | grep -q "opencl 0:0"; then
    if [ "${CI:-}" = "true" ]; then
        echo "FAILED: CI=true but tandem devices lists no OpenCL device"
        failed=$((failed + 1))
    else
        echo "SKIPPING the OpenCL checks: no OpenCL device on this machine"
    fi
else
    check "devices lists the OpenCL device" 0 "\[0\] opencl 0:0 .*" "$tandem" devices
    # tandem tune: one candidate (a real search, cut short), its file, and
    # the backend applying it; a stale file is reported and ignored.
    export TANDEM_TUNING_DIR="$work/tuning"
    check "devices says an untuned device is not tuned" 0 "^ +not tuned$" "$tandem" devices
    check "tune times CLBlast and saves the best" 0 \
        "GFLOP/s with its defaults, [0-9.]+ tuned \(1 of 1 candidates valid\)" \
        env TANDEM_TUNE_CANDIDATES=1 "$tandem" -q --device opencl:0:0 tune
    check "devices says the device is tuned" 0 "^ +CLBlast tuned: [0-9.]+ GFLOP/s" \
        "$tandem" devices
    check "the tuned backend says so" 0 "\[CLBlast tuned: [0-9.]+ GFLOP/s on tandem's GEMMs\]" \
        "$tandem" --device opencl:0:0 selftest
    check "and agrees with the cpu backend" 0 "^max difference from the cpu backend: .*: ok$" \
        "$tandem" --device opencl:0:0 selftest
    cp "$work"/tuning/*.tuning "$work/tuning.saved"
    sed -i 's/^driver .*/driver 0.0-elsewhere/' "$work"/tuning/*.tuning
    check "a stale tuning file is reported" 0 "tuning file ignored: .*made for another driver" \
        "$tandem" devices
    check "and ignored" 0 "^max difference from the cpu backend: .*: ok$" \
        "$tandem" --device opencl:0:0 selftest
    # Broken files are reported and ignored, never applied: one past CLBlast's
    # rules (MWG=7 compiled and gave GEMMs off by 100%), one whose bad line
    # comes after a good Xgemm line, random bytes.
    tuning=$(ls "$work"/tuning/*.tuning)
    good_xgemm="Xgemm GEMMK=0 KREG=1 KWG=16 KWI=2 MDIMA=16 MDIMC=8 MWG=128 NDIMB=32 NDIMC=16 NWG=128 SA=0 SB=0 STRM=1 STRN=1 VWM=8 VWN=4"
    # the saved file's header (format, platform, device, driver), then lines
    write_tuning() { sed -n '1,4p' "$work/tuning.saved" >"$tuning"; printf '%s\n' "$@" >>"$tuning"; }
    write_tuning "${good_xgemm/MWG=128/MWG=7}"
    check "a tuning file past CLBlast's rules is ignored" 0 \
        "tuning file ignored: .*:5: Xgemm parameters break CLBlast's rules: MWG, NWG and KWG" \
        "$tandem" devices
    check "and the GEMM stays right" 0 "^max difference from the cpu backend: .*: ok$" \
        "$tandem" --device opencl:0:0 selftest
    write_tuning "$good_xgemm" "Xgemm KWG=16"
    check "a bad line after a good one" 0 \
        "tuning file ignored: .*:6: Xgemm needs its 16 parameters, got 1" "$tandem" devices
    check "is ignored whole" 0 "tuning file ignored: .*\]: .*GFLOP/s" \
        "$tandem" --device opencl:0:0 selftest
    write_tuning "${good_xgemm/MDIMC=8/MDIMC=8 MDIMC=8}"
    check "a repeated parameter" 0 "tuning file ignored: .*:5: repeated Xgemm parameter MDIMC" \
        "$tandem" devices
    # Each of CLBlast's other rules, and the device's work-group limit
    # (128 x 128 work-items; PoCL allows 4096).
    bad_tuning() { # bad_tuning NAME LINE PATTERN
        write_tuning "$2"
        check "a tuning file with $1 is ignored" 0 "tuning file ignored: .*:5: $3" "$tandem" devices
    }
    bad_tuning "an unknown parameter" "${good_xgemm/VWN=4/VWX=4}" "unknown Xgemm parameter VWX"
    bad_tuning "a value past 1024" "${good_xgemm/NWG=128/NWG=2048}" ".*rules: a value above 1024"
    bad_tuning "GEMMK=1" "${good_xgemm/GEMMK=0/GEMMK=1}" ".*rules: GEMMK must be 0 and KREG 1"
    bad_tuning "SA=2" "${good_xgemm/SA=0/SA=2}" ".*rules: SA, SB, STRM and STRN must be 0 or 1"
    bad_tuning "VWM=3" "${good_xgemm/VWM=8/VWM=3}" ".*rules: VWM and VWN must be 1, 2, 4, 8 or 16"
    bad_tuning "KWI=0" "${good_xgemm/KWI=2/KWI=0}" ".*rules: a size of 0"
    bad_tuning "a negative value" "${good_xgemm/KWI=2/KWI=-2}" "KWI is not a whole number"
    bad_tuning "too many work-items" \
        "Xgemm GEMMK=0 KREG=1 KWG=128 KWI=2 MDIMA=128 MDIMC=128 MWG=128 NDIMB=128 NDIMC=128 NWG=128 SA=0 SB=0 STRM=0 STRN=0 VWM=1 VWN=1" \
        ".*rules: MDIMC x NDIMC work-items exceed the device's work-group limit"
    bad_tuning "a bad GemmRoutine line" "GemmRoutine XGEMM_MIN_INDIRECT_SIZE=100000" \
        "GemmRoutine takes XGEMM_MIN_INDIRECT_SIZE \(at most 65536\)"
    head -c 4096 /dev/urandom >"$tuning"
    check "random bytes as a tuning file" 0 "tuning file ignored: .*not a tandem tuning file" \
        "$tandem" devices
    check "tune on the cpu backend" 1 "tune: cpu backend .* is not an OpenCL device" \
        "$tandem" -q --device cpu tune
    unset TANDEM_TUNING_DIR
    check "devices shows details" 0 \
        "OpenCL C [0-9.]+.*[0-9.]+ GiB global memory \([0-9.]+ GiB a buffer\), [0-9]+ compute units, driver" \
        "$tandem" devices
    check "--device opencl:0:0" 0 "tandem: device: opencl 0:0: " \
        "$tandem" --device opencl:0:0 selftest
    check "selftest agrees on OpenCL" 0 "^max difference from the cpu backend: .*: ok$" \
        "$tandem" --device opencl:0:0 selftest
    # A ReLU after a batch norm of a padded 1x1 conv's zero-mean input: with
    # PyTorch's beta = 0 the ring's values are 0 but for rounding, and each
    # device took its own side of the kink (gradients 0.49 apart) until the
    # selftest moved the initial parameters.
    kink=$(config kink "[model]
input = 2x9x9
layer = conv2d out=5 kernel=1 stride=2 padding=1 bias=false
layer = batchnorm2d
layer = conv2d out=4 kernel=1 stride=1 padding=1 bias=false
layer = batchnorm2d
layer = relu
layer = flatten
layer = linear out=10")
    selftest_results "selftest on a ReLU at a padded ring's kink" "[0-9.]+e[-+][0-9]+" \
        "$tandem" -q --device opencl:0:0 --config "$kink" selftest
    # Every OpenCL device: a training step of ResNet(4) and EM, both methods,
    # within the tolerances of test_pytorch and test_em.
    for number in $("$tandem" devices | sed -n 's/^[ *] \[[0-9]*\] opencl \([0-9]*:[0-9]*\) .*/\1/p'); do
        selftest_results "selftest on opencl:$number: training and EM agree" "[0-9.]+e[-+][0-9]+" \
            "$tandem" -q --device "opencl:$number" selftest
    done
    check "TANDEM_DEVICE selects" 0 "tandem: device: opencl 0:0" \
        env TANDEM_DEVICE=opencl:0 "$tandem" selftest
    check "--device beats TANDEM_DEVICE" 0 "tandem: device: cpu" \
        env TANDEM_DEVICE=opencl "$tandem" --device cpu selftest
    # The OpenCL settings of docs/devices.md refuse what they cannot take.
    check "TANDEM_OPENCL_DIRECT_CONVS=1 is taken" 0 "\[small convs as direct kernels\]" \
        env TANDEM_OPENCL_DIRECT_CONVS=1 "$tandem" --device opencl:0:0 selftest
    check "TANDEM_OPENCL_DIRECT_CONVS=yes is an error" 1 \
        "opencl: TANDEM_OPENCL_DIRECT_CONVS must be a whole number from 0 to 1, not 'yes'" \
        env TANDEM_OPENCL_DIRECT_CONVS=yes "$tandem" --device opencl:0:0 selftest
    for setting in TANDEM_OPENCL_MAX_GROUP=0 TANDEM_OPENCL_REDUCTION_GROUP=16x \
        TANDEM_OPENCL_BITS_PARTS=-3 TANDEM_OPENCL_PLANE_GROUPS=99999999999999999999 \
        TANDEM_OPENCL_PROFILE=on TANDEM_OPENCL_MAX_BUFFER=0 TANDEM_OPENCL_PARALLEL_ROWS=lots; do
        check "$setting is an error" 1 "opencl: ${setting%%=*} must be a whole number" \
            env "$setting" "$tandem" --device opencl:0:0 selftest
    done
    # One epoch of ResNet(1) on the digits: every kernel of training runs.
    digits=$(config digits "[data]
path = $(dirname "$configs")/data/digits.csv.gz")
    # A device whose buffers are small (TANDEM_OPENCL_MAX_BUFFER, as
    # CL_DEVICE_MAX_MEM_ALLOC_SIZE would be): what does not fit one buffer is
    # named, before any file; EM streams data that does not fit.
    check "the cap shows in the device line" 0 "\[buffers capped by TANDEM_OPENCL_MAX_BUFFER\]" \
        env TANDEM_OPENCL_MAX_BUFFER=1048576 "$tandem" --device opencl:0:0 selftest
    check "a model larger than a device buffer" 1 \
        "model: its activations for batches of 1024 take [0-9]+ bytes, and one buffer of this opencl device takes at most 100000: use smaller batches" \
        env TANDEM_OPENCL_MAX_BUFFER=100000 "$tandem" -q --device opencl:0:0 --config "$digits" \
        --epochs 1 --out "$work/capped_model" train
    [ ! -e "$work/capped_model" ] && ok "a model larger than a device buffer leaves no files" ||
        bad "a model larger than a device buffer left files"
    small_batches=$(config small_batches "[data]
path = $(dirname "$configs")/data/digits.csv.gz
[train]
eval_batch = 128")
    check "a training set larger than a device buffer" 1 \
        "train: the training set's 1617 samples take 413952 bytes, and one buffer of this opencl device takes at most 300000" \
        env TANDEM_OPENCL_MAX_BUFFER=300000 "$tandem" -q --device opencl:0:0 \
        --config "$small_batches" --epochs 1 --out "$work/capped_set" train
    [ ! -e "$work/capped_set" ] && ok "a training set larger than a device buffer leaves no files" ||
        bad "a training set larger than a device buffer left files"
    em_gemm=$(config em_gemm "[data]
path = $(dirname "$configs")/data/digits.csv.gz
height = 8
width = 8
max_pixel = 16
[em]
method = gemm
max_iter = 5")
    check "EM streams floats larger than a device buffer" 0 "log-likelihood" \
        env TANDEM_OPENCL_MAX_BUFFER=131072 "$tandem" --device opencl:0:0 --config "$em_gemm" \
        --out "$work/capped_em" em
    profile=$(env TANDEM_OPENCL_PROFILE=1 "$tandem" -q --device opencl:0:0 --config "$digits" \
        --epochs 1 --channels 1 --out "$work/profile" train 2>&1)
    check "TANDEM_OPENCL_PROFILE reports each kernel's device time" 0 \
        "^  tdm_im2col(_runs)? +[1-9][0-9]* +[0-9.]+ +[0-9.]+ +[0-9.]+%$" echo "$profile"
    check "and CLBlast's GEMM" 0 "^  CLBlast GEMM +[1-9][0-9]* " echo "$profile"
    # The first word of platform 0's name, lower-cased: "portable" for PoCL.
    platform=$("$tandem" devices | sed -n 's/^ *platform \([^ ]*\).*/\1/p' | head -1 |
        tr '[:upper:]' '[:lower:]')
    by_name=$(config by_name "[device]
backend = opencl
platform = $platform")
    check "config selects by platform name ($platform)" 0 "tandem: device: opencl 0:0" \
        "$tandem" --config "$by_name" selftest
    check "devices marks the configured device" 0 "^\* \[0\] opencl 0:0" \
        "$tandem" --config "$by_name" devices
    strict=$(config strict "[device]
backend = opencl
device = no-such-device
fallback = error")
    check "no match with fallback = error fails" 1 \
        "tandem: error: no OpenCL device matches platform 'any', device 'no-such-device'" \
        "$tandem" --config "$strict" selftest
    lenient=$(config lenient "[device]
backend = opencl
device = no-such-device
fallback = cpu")
    check "no match with fallback = cpu warns" 0 \
        "tandem: warning: no OpenCL device matches .*using the cpu backend" \
        "$tandem" --config "$lenient" selftest
    check "fallback = cpu runs on cpu" 0 "tandem: device: cpu backend" \
        "$tandem" --config "$lenient" selftest
fi

finish
