/* Device selection: the [device] config keys, device strings, and the
 * choice of a backend from the list of OpenCL devices. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/config.h"
#include "core/error.h"
#include "tandem/device.h"

void tdm_device_config_init(tdm_device_config *config)
{
    memset(config, 0, sizeof *config);
    config->backend = TDM_BACKEND_AUTO;
    config->type = TDM_DEVICE_TYPE_ANY;
    config->fallback = TDM_FALLBACK_CPU;
}

/* Looks value up in a NULL-terminated list of names; -1 when absent. */
static int lookup(const char *value, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(value, names[i]) == 0)
            return i;
    return -1;
}

static tdm_status set_enum(int *field, const char *key, const char *value, const char *const *names,
                           const char *expected)
{
    int found = lookup(value, names);
    if (found < 0)
        return TDM_FAIL(TDM_ERR_CONFIG, "invalid value '%s' for key '%s' (expected %s)", value, key,
                        expected);
    *field = found;
    return TDM_OK;
}

static tdm_status set_selector(char *field, size_t capacity, const char *key, const char *value)
{
    if (strlen(value) >= capacity)
        return TDM_FAIL(TDM_ERR_CONFIG, "value of key '%s' is longer than %zu characters", key,
                        capacity - 1);
    strcpy(field, value);
    return TDM_OK;
}

/* auto, or a whole number of threads. */
static tdm_status set_threads(tdm_device_config *config, const char *value)
{
    if (strcmp(value, "auto") == 0) {
        config->threads = 0;
        return TDM_OK;
    }
    size_t threads = 0;
    if (tdm_parse_size("threads", value, 1, TDM_CPU_MAX_THREADS, &threads) != TDM_OK)
        return TDM_FAIL(TDM_ERR_CONFIG,
                        "invalid value '%s' for key 'threads' (expected auto or 1..%d)", value,
                        TDM_CPU_MAX_THREADS);
    config->threads = threads;
    return TDM_OK;
}

tdm_status tdm_device_config_set(void *target, const char *key, const char *value)
{
    /* The name lists follow the enum orders in device.h. */
    static const char *const backends[] = {"auto", "opencl", "cpu", NULL};
    static const char *const types[] = {"any", "gpu", "cpu", NULL};
    static const char *const fallbacks[] = {"cpu", "error", NULL};
    tdm_device_config *config = target;
    int parsed = 0;
    tdm_status status;
    if (strcmp(key, "backend") == 0) {
        status = set_enum(&parsed, key, value, backends, "auto, opencl or cpu");
        config->backend = status == TDM_OK ? (tdm_backend_choice)parsed : config->backend;
    } else if (strcmp(key, "type") == 0) {
        status = set_enum(&parsed, key, value, types, "any, gpu or cpu");
        config->type = status == TDM_OK ? (tdm_device_type)parsed : config->type;
    } else if (strcmp(key, "fallback") == 0) {
        status = set_enum(&parsed, key, value, fallbacks, "cpu or error");
        config->fallback = status == TDM_OK ? (tdm_fallback)parsed : config->fallback;
    } else if (strcmp(key, "platform") == 0) {
        return set_selector(config->platform, sizeof config->platform, key, value);
    } else if (strcmp(key, "device") == 0) {
        return set_selector(config->device, sizeof config->device, key, value);
    } else if (strcmp(key, "threads") == 0) {
        return set_threads(config, value);
    } else {
        return TDM_FAIL(TDM_ERR_CONFIG,
                        "unknown key '%s' (known: backend, platform, device, type, fallback, "
                        "threads)",
                        key);
    }
    return status;
}

/* "opencl:NVIDIA:1" -> backend opencl, platform "NVIDIA", device "1". */
tdm_status tdm_device_config_apply_string(tdm_device_config *config, const char *device_string)
{
    char copy[300];
    if (strlen(device_string) >= sizeof copy)
        return TDM_FAIL(TDM_ERR_CONFIG, "device string '%.40s...' is too long", device_string);
    strcpy(copy, device_string);
    char *platform = strchr(copy, ':');
    char *device = platform ? strchr(platform + 1, ':') : NULL;
    if (platform)
        *platform++ = '\0';
    if (device)
        *device++ = '\0';
    tdm_device_config updated = *config;
    updated.platform[0] = updated.device[0] = '\0';
    if (tdm_device_config_set(&updated, "backend", copy) != TDM_OK ||
        (platform && updated.backend != TDM_BACKEND_OPENCL) || (device && strchr(device, ':')))
        return TDM_FAIL(TDM_ERR_CONFIG,
                        "invalid device '%s' (expected auto, cpu, opencl, opencl:PLATFORM or "
                        "opencl:PLATFORM:DEVICE)",
                        device_string);
    TDM_TRY(set_selector(updated.platform, sizeof updated.platform, "platform",
                         platform ? platform : ""));
    TDM_TRY(set_selector(updated.device, sizeof updated.device, "device", device ? device : ""));
    *config = updated;
    return TDM_OK;
}

static bool contains_ignoring_case(const char *haystack, const char *needle)
{
    size_t length = strlen(needle);
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < length && haystack[i] &&
               tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == length)
            return true;
    }
    return length == 0;
}

static bool is_index(const char *text)
{
    if (!*text)
        return false;
    for (; *text; text++)
        if (!isdigit((unsigned char)*text))
            return false;
    return true;
}

/* An empty selector matches anything; digits match the index; anything else
 * is a case-insensitive substring of either name. */
static bool selector_matches(const char *selector, size_t index, const char *name,
                             const char *vendor)
{
    if (!*selector)
        return true;
    if (is_index(selector))
        return strtoull(selector, NULL, 10) == index;
    return contains_ignoring_case(name, selector) || contains_ignoring_case(vendor, selector);
}

static bool device_matches(const tdm_device_config *config, const tdm_opencl_device_info *info)
{
    if (config->backend == TDM_BACKEND_AUTO && !info->is_gpu_or_accelerator)
        return false;
    if (config->type == TDM_DEVICE_TYPE_GPU && !info->is_gpu_or_accelerator)
        return false;
    if (config->type == TDM_DEVICE_TYPE_CPU && strcmp(info->type, "CPU") != 0)
        return false;
    return selector_matches(config->platform, info->platform_index, info->platform_name,
                            info->platform_vendor) &&
           selector_matches(config->device, info->device_index, info->device_name,
                            info->device_vendor);
}

static void describe_request(const tdm_device_config *config, size_t count, char *out,
                             size_t capacity)
{
    static const char *const types[] = {"any", "gpu", "cpu"};
    snprintf(out, capacity,
             "no OpenCL device matches platform '%s', device '%s', type %s (%zu device%s "
             "found; `tandem devices` lists them)",
             config->platform[0] ? config->platform : "any",
             config->device[0] ? config->device : "any", types[config->type], count,
             count == 1 ? "" : "s");
}

tdm_status tdm_device_choose(const tdm_device_config *config, const tdm_opencl_device_info *devices,
                             size_t count, tdm_device_choice *choice)
{
    memset(choice, 0, sizeof *choice);
    if (config->backend == TDM_BACKEND_CPU)
        return TDM_OK;
    size_t matches = 0;
    for (size_t i = 0; i < count; i++)
        matches += device_matches(config, &devices[i]);
    for (size_t i = 0, skip = matches ? config->spread % matches : 0; i < count; i++) {
        if (device_matches(config, &devices[i]) && skip-- == 0) {
            choice->use_opencl = true;
            choice->device = i;
            return TDM_OK;
        }
    }
    if (config->backend == TDM_BACKEND_AUTO)
        return TDM_OK; /* no GPU: auto means the cpu backend, no warning */
    describe_request(config, count, choice->why, sizeof choice->why);
    if (config->fallback == TDM_FALLBACK_ERROR)
        return TDM_FAIL(TDM_ERR_NOT_FOUND, "%s", choice->why);
    choice->fell_back = true;
    return TDM_OK;
}

/* Why OpenCL was unusable (e.g. no driver installed), without the source location. */
static void describe_listing_failure(char *out, size_t capacity)
{
    snprintf(out, capacity, "%s", tdm_last_error_message());
}

tdm_status tdm_backend_create_from_config(const tdm_device_config *config, tdm_backend **out,
                                          tdm_device_choice *choice)
{
    tdm_opencl_device_info *devices = NULL;
    size_t count = 0;
    tdm_status listed = TDM_OK;
    *out = NULL;
    if (config->backend != TDM_BACKEND_CPU) {
        listed = tdm_opencl_list_devices(&devices, &count);
        /* No driver is not an error for auto; for opencl the choice reports it. */
        if (listed != TDM_OK && config->backend == TDM_BACKEND_OPENCL &&
            config->fallback == TDM_FALLBACK_ERROR)
            return listed;
    }
    tdm_status status = tdm_device_choose(config, devices, count, choice);
    if (status == TDM_OK && choice->fell_back && listed != TDM_OK)
        describe_listing_failure(choice->why, sizeof choice->why);
    if (status == TDM_OK)
        status = choice->use_opencl
                     ? tdm_opencl_backend_create(devices[choice->device].platform_index,
                                                 devices[choice->device].device_index, out)
                     : tdm_cpu_backend_create_threads(config->threads, out);
    free(devices);
    return status;
}
