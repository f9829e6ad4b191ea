/* CLBlast's GEMM tuned for one device (tandem tune): candidate parameter sets
 * for its Xgemm kernel and for the size above which its GEMM routine takes
 * the Xgemm path (XGEMM_MIN_INDIRECT_SIZE; below it runs XgemmDirect) are
 * timed through tandem's own GEMM calls on the shapes tandem runs, each
 * result checked against the default parameters' result; the fastest goes
 * into a per-device file that the backend applies when it is created. */
#define _POSIX_C_SOURCE 200809L
#include "backend/opencl/cl_tuning.h"

#include <clblast_c.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/opencl/cl_devices.h"
#include "backend/opencl/kernel_cache.h"
#include "core/clock.h"
#include "core/error.h"

enum { XGEMM_PARAMETERS = 16, FORMAT_VERSION = 1 };

static const char *const xgemm_names[XGEMM_PARAMETERS] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG",  "SA",  "SB",  "STRM",  "STRN",  "VWM", "VWN"};

typedef struct candidate {
    size_t xgemm[XGEMM_PARAMETERS]; /* in xgemm_names' order */
    size_t min_indirect;            /* GemmRoutine's XGEMM_MIN_INDIRECT_SIZE */
} candidate;

/* Each satisfies Xgemm's rules (MWG a multiple of MDIMC*VWM and MDIMA*VWM,
 * NWG of NDIMC*VWN and NDIMB*VWN, KWG of MDIMC*NDIMC/MDIMA and /NDIMB). The
 * first is what clblast_tuner_xgemm found on PoCL on 2 cores (128 GFLOP/s on
 * 512^3, docs/devices.md); the last four are shaped for GPUs. */
static const candidate candidates[] = {
    {{0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}, 64},
    {{0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}, 896},
    {{0, 1, 32, 2, 16, 8, 128, 16, 16, 64, 0, 0, 1, 1, 8, 4}, 64},
    {{0, 1, 32, 2, 16, 16, 64, 16, 16, 64, 0, 0, 1, 1, 4, 4}, 64},
    {{0, 1, 16, 2, 8, 8, 64, 8, 8, 64, 0, 0, 1, 1, 4, 4}, 64},
    {{0, 1, 32, 2, 16, 16, 64, 16, 16, 64, 0, 0, 1, 1, 4, 4}, 256},
    /* CPU-shaped: a work-group of one work-item holding a 32 x 8 (or 64 x 4)
     * tile of C in 16 vectors of 16 floats, the registers of AVX-512: PoCL
     * ran 512^3 at 319-370 GFLOP/s with these, 204 with the first. */
    {{0, 1, 32, 1, 1, 1, 32, 1, 1, 8, 0, 0, 0, 0, 16, 1}, 64},
    {{0, 1, 16, 1, 1, 1, 32, 1, 1, 8, 0, 0, 0, 0, 16, 1}, 64},
    {{0, 1, 16, 1, 1, 1, 64, 1, 1, 4, 0, 0, 0, 0, 16, 1}, 64},
    /* GPU-shaped: tiles staged in local memory (SA, SB), 64 to 256 work-items. */
    {{0, 1, 16, 2, 16, 16, 128, 16, 16, 128, 1, 1, 0, 0, 4, 4}, 64},
    {{0, 1, 16, 2, 16, 16, 128, 16, 16, 128, 1, 1, 0, 0, 4, 4}, 512},
    {{0, 1, 16, 2, 16, 16, 64, 16, 16, 128, 1, 1, 1, 0, 2, 4}, 64},
    {{0, 1, 32, 2, 8, 8, 32, 8, 8, 32, 1, 1, 0, 0, 2, 2}, 64},
};
enum { CANDIDATE_COUNT = sizeof candidates / sizeof candidates[0] };

/* The GEMMs tandem runs: the selftest's 512^3; ResNet(64) on a batch of 128
 * digits: the first conv (im2col) forward and its weights' gradient, the
 * block convs (one dense GEMM each) forward, backward to the input and the
 * dense matrix's gradient, the linear layer; and one block of EM's E and M
 * steps on MNIST-sized rows. */
typedef struct gemm_shape {
    size_t m, n, k;
    tdm_transpose a, b;
} gemm_shape;

static const gemm_shape shapes[] = {
    {512, 512, 512, TDM_NO_TRANS, TDM_NO_TRANS}, {64, 2048, 9, TDM_NO_TRANS, TDM_NO_TRANS},
    {64, 9, 2048, TDM_NO_TRANS, TDM_TRANS},      {128, 256, 256, TDM_NO_TRANS, TDM_TRANS},
    {128, 256, 256, TDM_NO_TRANS, TDM_NO_TRANS}, {256, 256, 128, TDM_TRANS, TDM_NO_TRANS},
    {128, 10, 64, TDM_NO_TRANS, TDM_TRANS},      {4096, 20, 784, TDM_NO_TRANS, TDM_TRANS},
    {20, 784, 4096, TDM_TRANS, TDM_NO_TRANS},
};
enum { SHAPE_COUNT = sizeof shapes / sizeof shapes[0], TIMED_ROUNDS = 3 };

/* ---------- the tuning file ---------- */

static bool tuning_directory(char *out, size_t size)
{
    const char *explicit_dir = getenv("TANDEM_TUNING_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int written = explicit_dir && explicit_dir[0] ? snprintf(out, size, "%s", explicit_dir)
                  : xdg && xdg[0]                 ? snprintf(out, size, "%s/tandem/tuning", xdg)
                  : home && home[0] ? snprintf(out, size, "%s/.cache/tandem/tuning", home)
                                    : -1;
    return written > 0 && (size_t)written < size;
}

bool tdm_cl_tuning_path(const tdm_opencl_device_info *info, char *out, size_t size)
{
    char directory[4000];
    if (!tuning_directory(directory, sizeof directory))
        return false;
    const char *parts[] = {info->platform_name, info->device_name, info->driver_version};
    int written = snprintf(out, size, "%s/%016llx.tuning", directory,
                           (unsigned long long)tdm_kernel_cache_key(parts, 3));
    return written > 0 && (size_t)written < size;
}

enum { GEMMK, KREG, KWG, KWI, MDIMA, MDIMC, MWG, NDIMB, NDIMC, NWG, SA, SB, STRM, STRN, VWM, VWN };

static bool is_power_of_two_at_most(size_t value, size_t most)
{
    return value >= 1 && value <= most && (value & (value - 1)) == 0;
}

/* Xgemm's rules, as CLBlast's tuner states them (a set that breaks one
 * compiles and computes garbage: a tuning file with MWG=7 gave GEMMs off by
 * 100%), for the kind tandem tune writes (GEMMK=0, KREG=1), and the device's
 * work-group and local-memory limits. */
static const char *xgemm_rule_broken(const size_t *p, cl_device_id device)
{
    for (int i = 0; i < XGEMM_PARAMETERS; i++)
        if (p[i] > 1024)
            return "a value above 1024";
    if (p[GEMMK] != 0 || p[KREG] != 1)
        return "GEMMK must be 0 and KREG 1";
    if (p[SA] > 1 || p[SB] > 1 || p[STRM] > 1 || p[STRN] > 1)
        return "SA, SB, STRM and STRN must be 0 or 1";
    if (!is_power_of_two_at_most(p[VWM], 16) || !is_power_of_two_at_most(p[VWN], 16))
        return "VWM and VWN must be 1, 2, 4, 8 or 16";
    if (!p[KWI] || !p[MDIMA] || !p[MDIMC] || !p[NDIMB] || !p[NDIMC] || !p[KWG] || !p[MWG] ||
        !p[NWG])
        return "a size of 0";
    size_t threads = p[MDIMC] * p[NDIMC];
    if (p[MWG] % (p[MDIMC] * p[VWM]) || p[MWG] % (p[MDIMA] * p[VWM]) ||
        p[NWG] % (p[NDIMC] * p[VWN]) || p[NWG] % (p[NDIMB] * p[VWN]) || p[KWG] % p[KWI] ||
        threads % p[MDIMA] || threads % p[NDIMB] || p[KWG] % (threads / p[MDIMA]) ||
        p[KWG] % (threads / p[NDIMB]))
        return "MWG, NWG and KWG must be multiples of the thread and vector sizes";
    size_t max_group = 0;
    cl_ulong local_bytes = 0;
    if (device && (clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_group,
                                   &max_group, NULL) != CL_SUCCESS ||
                   clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_bytes,
                                   &local_bytes, NULL) != CL_SUCCESS))
        return "the device's limits could not be read";
    if (device && threads > max_group)
        return "MDIMC x NDIMC work-items exceed the device's work-group limit";
    if (device && 4 * p[KWG] * (p[SA] * p[MWG] + p[SB] * p[NWG]) > local_bytes)
        return "the tiles exceed the device's local memory";
    return NULL;
}

/* The parameters of an Xgemm line in xgemm_names' order: each once. */
static tdm_status xgemm_values(const char *const *names, const size_t *values, size_t count,
                               size_t *out, const char *path, size_t number)
{
    bool seen[XGEMM_PARAMETERS] = {false};
    for (size_t i = 0; i < count; i++) {
        int found = -1;
        for (int j = 0; j < XGEMM_PARAMETERS && found < 0; j++)
            found = strcmp(names[i], xgemm_names[j]) == 0 ? j : -1;
        if (found < 0 || seen[found])
            return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: %s Xgemm parameter %s", path, number,
                            found < 0 ? "unknown" : "repeated", names[i]);
        seen[found] = true;
        out[found] = values[i];
    }
    if (count != XGEMM_PARAMETERS)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: Xgemm needs its %d parameters, got %zu", path,
                        number, XGEMM_PARAMETERS, count);
    return TDM_OK;
}

/* A line's parameters checked: Xgemm's rules, or GemmRoutine's one size. */
static tdm_status check_parameters(const char *kernel, const char *const *names,
                                   const size_t *values, size_t count, cl_device_id device,
                                   const char *path, size_t number)
{
    if (strcmp(kernel, "GemmRoutine") == 0) {
        if (count != 1 || strcmp(names[0], "XGEMM_MIN_INDIRECT_SIZE") != 0 || values[0] > 65536)
            return TDM_FAIL(TDM_ERR_CONFIG,
                            "%s:%zu: GemmRoutine takes XGEMM_MIN_INDIRECT_SIZE (at most 65536)",
                            path, number);
        return TDM_OK;
    }
    size_t p[XGEMM_PARAMETERS];
    TDM_TRY(xgemm_values(names, values, count, p, path, number));
    const char *broken = xgemm_rule_broken(p, device);
    if (broken)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: Xgemm parameters break CLBlast's rules: %s", path,
                        number, broken);
    return TDM_OK;
}

/* "Xgemm GEMMK=0 KREG=1 ..." or "GemmRoutine XGEMM_MIN_INDIRECT_SIZE=64",
 * checked against the rules and the device (NULL: the rules only), then
 * handed to CLBlast for the device if `apply`. */
static tdm_status apply_line(cl_device_id device, bool apply, char *line, const char *path,
                             size_t number)
{
    enum { MOST = 32 };
    const char *names[MOST];
    size_t values[MOST], count = 0;
    char *save = NULL, *kernel = strtok_r(line, " \t\n", &save);
    for (char *word = strtok_r(NULL, " \t\n", &save); word; word = strtok_r(NULL, " \t\n", &save)) {
        char *equals = strchr(word, '='), *end = NULL;
        if (!equals || count == MOST)
            return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: expected NAME=VALUE, got '%s'", path, number,
                            word);
        *equals = '\0';
        errno = 0;
        values[count] = strtoul(equals + 1, &end, 10);
        if (*end || !isdigit((unsigned char)equals[1]) || errno == ERANGE)
            return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: %s is not a whole number", path, number, word);
        names[count++] = word;
    }
    TDM_TRY(check_parameters(kernel, names, values, count, device, path, number));
    if (!apply)
        return TDM_OK;
    CLBlastStatusCode code =
        CLBlastOverrideParameters(device, kernel, CLBlastPrecisionSingle, count, names, values);
    if (code != CLBlastSuccess)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: CLBlast refused the %s parameters (status %d)",
                        path, number, kernel, (int)code);
    return TDM_OK;
}

/* The header lines must name this device, driver and platform. */
static tdm_status check_header_line(const char *line, const tdm_opencl_device_info *info,
                                    const char *path, size_t number)
{
    static const char *const keys[] = {"platform ", "device ", "driver "};
    const char *const expected[] = {info->platform_name, info->device_name, info->driver_version};
    for (int i = 0; i < 3; i++) {
        size_t key_length = strlen(keys[i]);
        if (strncmp(line, keys[i], key_length) == 0) {
            if (strncmp(line + key_length, expected[i], strlen(expected[i])) != 0 ||
                line[key_length + strlen(expected[i])] != '\n')
                return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: made for another %.*s (stale)", path,
                                number, (int)key_length - 1, keys[i]);
            return TDM_OK;
        }
    }
    return TDM_FAIL(TDM_ERR_CONFIG, "%s:%zu: unexpected line", path, number);
}

/* Reads the file; with `apply`, hands its parameters to CLBlast (only
 * after a pass without, so a file broken past its first lines changes
 * nothing). */
static tdm_status read_file(FILE *file, cl_device_id device, bool apply,
                            const tdm_opencl_device_info *info, const char *path, double *gflops)
{
    char line[1024];
    size_t number = 0;
    int version = 0;
    rewind(file);
    if (!fgets(line, sizeof line, file) || sscanf(line, "tandem-tuning %d", &version) != 1 ||
        version != FORMAT_VERSION)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: not a tandem tuning file of version %d", path,
                        FORMAT_VERSION);
    for (number = 2; fgets(line, sizeof line, file); number++) {
        if (sscanf(line, "gflops %lf", gflops) == 1)
            continue;
        if (strncmp(line, "Xgemm ", 6) == 0 || strncmp(line, "GemmRoutine ", 12) == 0)
            TDM_TRY(apply_line(device, apply, line, path, number));
        else
            TDM_TRY(check_header_line(line, info, path, number));
    }
    return TDM_OK;
}

static tdm_status apply_file(FILE *file, cl_device_id device, bool apply,
                             const tdm_opencl_device_info *info, const char *path, double *gflops)
{
    TDM_TRY(read_file(file, device, false, info, path, gflops));
    return apply ? read_file(file, device, true, info, path, gflops) : TDM_OK;
}

/* What the device's tuning file holds, checked against the device (NULL:
 * the rules only), and handed to CLBlast if `apply`. */
static void tuning_note(cl_device_id device, bool apply, const tdm_opencl_device_info *info,
                        char *note, size_t size)
{
    char path[4096];
    double gflops = 0.0;
    FILE *file = tdm_cl_tuning_path(info, path, sizeof path) ? fopen(path, "r") : NULL;
    note[0] = '\0';
    if (!file)
        return; /* not tuned */
    tdm_clear_error();
    tdm_status status = apply_file(file, device, apply, info, path, &gflops);
    fclose(file);
    if (status == TDM_OK)
        snprintf(note, size, "CLBlast tuned: %.1f GFLOP/s on tandem's GEMMs", gflops);
    else
        snprintf(note, size, "tuning file ignored: %s", tdm_last_error_message());
}

void tdm_cl_apply_tuning(cl_device_id device, const tdm_opencl_device_info *info, char *note,
                         size_t size)
{
    tuning_note(device, true, info, note, size);
}

/* Checked against the device's limits too, so that `tandem devices` says
 * what a backend of the device would do with the file. */
void tdm_opencl_tuning_status(const tdm_opencl_device_info *info, char *out, size_t size)
{
    cl_platform_id platform = NULL;
    cl_device_id device = NULL;
    if (tdm_cl_find_device(info->platform_index, info->device_index, &platform, &device) !=
        TDM_OK) {
        device = NULL; /* the rules alone */
        tdm_clear_error();
    }
    tuning_note(device, false, info, out, size);
    if (!out[0])
        snprintf(out, size, "not tuned");
}

/* ---------- timing candidates ---------- */

static tdm_status override_candidate(cl_device_id device, const candidate *c)
{
    const char *routine[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    const char *broken = xgemm_rule_broken(c->xgemm, device);
    if (broken)
        return TDM_FAIL(TDM_ERR_UNSUPPORTED, "candidate parameters not for this device: %s",
                        broken);
    CLBlastStatusCode code =
        CLBlastOverrideParameters(device, "Xgemm", CLBlastPrecisionSingle, XGEMM_PARAMETERS,
                                  (const char **)xgemm_names, c->xgemm);
    if (code == CLBlastSuccess)
        code = CLBlastOverrideParameters(device, "GemmRoutine", CLBlastPrecisionSingle, 1, routine,
                                         &c->min_indirect);
    if (code != CLBlastSuccess)
        return TDM_FAIL(TDM_ERR_OPENCL, "CLBlast refused candidate parameters (status %d)",
                        (int)code);
    return TDM_OK;
}

typedef struct tune_buffers {
    tdm_buffer *a, *b, *c;
} tune_buffers;

static tdm_status run_shape(tdm_backend *backend, const tune_buffers *t, const gemm_shape *s)
{
    size_t lda = s->a == TDM_TRANS ? s->m : s->k, ldb = s->b == TDM_TRANS ? s->k : s->n;
    tdm_sgemm_args args = tdm_gemm_args(s->a, s->b, s->m, s->n, s->k, (tdm_view){t->a, 0}, lda,
                                        (tdm_view){t->b, 0}, ldb, 0.0f, (tdm_view){t->c, 0}, s->n);
    TDM_TRY(tdm_sgemm(backend, &args));
    return tdm_backend_synchronize(backend);
}

/* GFLOP/s over every shape (each compiled and run once first, then the best
 * of TIMED_ROUNDS), and the 512^3 result in check. */
static tdm_status measure(tdm_backend *backend, const tune_buffers *t, float *check, double *gflops)
{
    double seconds = 0.0, flops = 0.0;
    for (size_t i = 0; i < SHAPE_COUNT; i++) {
        const gemm_shape *s = &shapes[i];
        double best = INFINITY;
        TDM_TRY(run_shape(backend, t, s));
        if (i == 0)
            TDM_TRY(tdm_buffer_download(t->c, 0, check, s->m * s->n * sizeof(float)));
        for (int round = 0; round < TIMED_ROUNDS; round++) {
            double start = tdm_monotonic_seconds();
            TDM_TRY(run_shape(backend, t, s));
            double elapsed = tdm_monotonic_seconds() - start;
            best = elapsed < best ? elapsed : best;
        }
        seconds += best;
        flops += 2.0 * (double)s->m * (double)s->n * (double)s->k;
    }
    *gflops = flops / seconds * 1e-9;
    return TDM_OK;
}

/* The largest difference from the default parameters' 512^3 result, in
 * units of its largest entry (512-term dot products: ~1e-6 expected). */
static double difference(const float *x, const float *reference, size_t count)
{
    double worst = 0.0, scale = 1e-30;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(reference[i]));
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs((double)x[i] - reference[i]) / scale);
    return isnan(worst) ? INFINITY : worst;
}

static tdm_status write_file(const char *path, const tdm_opencl_device_info *info,
                             const candidate *best, double gflops)
{
    char directory[4096], temporary[4200];
    snprintf(directory, sizeof directory, "%s", path);
    *strrchr(directory, '/') = '\0';
    TDM_TRY(tdm_make_directories(directory));
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    FILE *file = fopen(temporary, "w");
    if (!file)
        return TDM_FAIL(TDM_ERR_IO, "cannot write %s", temporary);
    fprintf(file, "tandem-tuning %d\nplatform %s\ndevice %s\ndriver %s\ngflops %.1f\n",
            FORMAT_VERSION, info->platform_name, info->device_name, info->driver_version, gflops);
    if (best) {
        fputs("Xgemm", file);
        for (int i = 0; i < XGEMM_PARAMETERS; i++)
            fprintf(file, " %s=%zu", xgemm_names[i], best->xgemm[i]);
        fprintf(file, "\nGemmRoutine XGEMM_MIN_INDIRECT_SIZE=%zu\n", best->min_indirect);
    }
    bool ok = fclose(file) == 0 && rename(temporary, path) == 0;
    if (!ok)
        remove(temporary);
    return ok ? TDM_OK : TDM_FAIL(TDM_ERR_IO, "cannot write %s", path);
}

static tdm_status alloc_buffers(tdm_backend *backend, tune_buffers *t)
{
    size_t most = 0;
    for (size_t i = 0; i < SHAPE_COUNT; i++) {
        size_t sizes[] = {shapes[i].m * shapes[i].k, shapes[i].k * shapes[i].n,
                          shapes[i].m * shapes[i].n};
        for (int j = 0; j < 3; j++)
            most = sizes[j] > most ? sizes[j] : most;
    }
    float *values = malloc(most * sizeof(float));
    if (!values)
        return TDM_FAIL(TDM_ERR_OUT_OF_MEMORY, "tune: out of host memory");
    for (size_t i = 0; i < most; i++)
        values[i] = (float)((i * 7919 % 1000) / 1000.0 - 0.5);
    tdm_status status = tdm_buffer_alloc(backend, most * sizeof(float), &t->a);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, most * sizeof(float), &t->b);
    if (status == TDM_OK)
        status = tdm_buffer_alloc(backend, most * sizeof(float), &t->c);
    if (status == TDM_OK)
        status = tdm_buffer_upload(t->a, 0, values, most * sizeof(float));
    if (status == TDM_OK)
        status = tdm_buffer_upload(t->b, 0, values, most * sizeof(float));
    free(values);
    return status;
}

/* Times the defaults, then each candidate; returns the best (NULL: the
 * defaults) and its rate. */
static tdm_status search(tdm_backend *backend, cl_device_id device, const tdm_tune_options *o,
                         const tune_buffers *t, tdm_tune_report *report, const candidate **best)
{
    enum { CHECK = 512 * 512 };
    static float reference[CHECK], result[CHECK];
    size_t count = o->max_candidates && o->max_candidates < CANDIDATE_COUNT ? o->max_candidates
                                                                            : CANDIDATE_COUNT;
    TDM_TRY(measure(backend, t, reference, &report->default_gflops));
    report->tuned_gflops = report->default_gflops;
    *best = NULL;
    for (size_t i = 0; i < count; i++) {
        double gflops = 0.0;
        tdm_status status = override_candidate(device, &candidates[i]);
        if (status == TDM_OK)
            status = measure(backend, t, result, &gflops);
        bool valid = status == TDM_OK && difference(result, reference, CHECK) <= 1e-4;
        report->tried++;
        report->valid += valid;
        if (valid && gflops > report->tuned_gflops) {
            report->tuned_gflops = gflops;
            *best = &candidates[i];
        }
        if (o->progress)
            o->progress(o->user, i + 1, count, valid ? gflops : 0.0, report->tuned_gflops);
    }
    return *best ? override_candidate(device, *best) : TDM_OK;
}

tdm_status tdm_cl_tune(tdm_backend *backend, cl_device_id device,
                       const tdm_opencl_device_info *info, const tdm_tune_options *o,
                       tdm_tune_report *report)
{
    memset(report, 0, sizeof *report);
    if (!tdm_cl_tuning_path(info, report->path, sizeof report->path))
        return TDM_FAIL(TDM_ERR_IO, "tune: no directory for the tuning file (set "
                                    "TANDEM_TUNING_DIR, XDG_CACHE_HOME or HOME)");
    tune_buffers t = {0};
    const candidate *best = NULL;
    tdm_status status = alloc_buffers(backend, &t);
    if (status == TDM_OK)
        status = search(backend, device, o, &t, report, &best);
    if (status == TDM_OK)
        status = write_file(report->path, info, best, report->tuned_gflops);
    tdm_buffer_free(t.a);
    tdm_buffer_free(t.b);
    tdm_buffer_free(t.c);
    return status;
}
