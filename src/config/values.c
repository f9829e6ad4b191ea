#define _POSIX_C_SOURCE 200809L
#include "tandem/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

tdm_status tdm_parse_size(const char *key, const char *value, size_t low, size_t high, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = strtoull(value, &end, 10);
    /* a digit first: strtoull would skip spaces and take " -5" as 2^64 - 5 */
    if (!isdigit((unsigned char)value[0]) || *end || errno == ERANGE || parsed < low ||
        parsed > high)
        return high == SIZE_MAX
                   ? TDM_FAIL(TDM_ERR_CONFIG, "%s must be a whole number %s %zu, got '%s'", key,
                              low == 1 ? ">" : ">=", low == 1 ? (size_t)0 : low, value)
                   : TDM_FAIL(TDM_ERR_CONFIG, "%s must be a whole number in [%zu, %zu], got '%s'",
                              key, low, high, value);
    *out = (size_t)parsed;
    return TDM_OK;
}

tdm_status tdm_parse_double(const char *key, const char *value, double low, double high,
                            double *out)
{
    char *end = NULL;
    errno = 0;
    double parsed = strtod(value, &end);
    if (!value[0] || *end || errno == ERANGE || !isfinite(parsed) || parsed < low || parsed > high)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s must be a number in [%g, %g], got '%s'", key, low, high,
                        value);
    *out = parsed;
    return TDM_OK;
}

tdm_status tdm_parse_float(const char *key, const char *value, double low, double high, float *out)
{
    double parsed = 0.0;
    TDM_TRY(tdm_parse_double(key, value, low, high, &parsed));
    *out = (float)parsed;
    return TDM_OK;
}

tdm_status tdm_parse_bool(const char *key, const char *value, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
            *out = strcasecmp(value, yes[i]) == 0;
            return TDM_OK;
        }
    }
    return TDM_FAIL(TDM_ERR_CONFIG, "%s must be true or false, got '%s'", key, value);
}

tdm_status tdm_parse_string(const char *key, const char *value, char *out, size_t capacity)
{
    size_t length = strlen(value);
    if (length == 0 || length >= capacity)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s must be 1 to %zu characters, got '%s'", key,
                        capacity - 1, value);
    memcpy(out, value, length + 1);
    return TDM_OK;
}
