/* INI config files: each [section] is handed to its own setter. */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Stores one key = value into target; an unknown key or a malformed value
 * returns TDM_ERR_CONFIG with a message naming the key (a setter outside the
 * library records it with tdm_config_error). */
typedef tdm_status (*tdm_config_setter)(void *target, const char *key, const char *value);

typedef struct tdm_config_section {
    const char *name; /* without brackets, e.g. "device" */
    tdm_config_setter set;
    void *target;
} tdm_config_section;

/* Parses path; every key must sit in one of the given sections. The first
 * problem (missing file, syntax error, unknown section or key, bad value)
 * fails with a message "path:line: ...". */
tdm_status tdm_config_parse(const char *path, const tdm_config_section *sections, size_t count);

/* For setters: records the message of a bad key or value, which
 * tdm_config_parse then reports with the file and line, and returns
 * TDM_ERR_CONFIG. */
tdm_status tdm_config_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Strict parsers of config values for setters: each fails with
 * TDM_ERR_CONFIG and a message naming the key and echoing the value. */

/* A whole number in [low, high] (no sign). */
tdm_status tdm_parse_size(const char *key, const char *value, size_t low, size_t high, size_t *out);
/* A finite number in [low, high]. */
tdm_status tdm_parse_double(const char *key, const char *value, double low, double high,
                            double *out);
/* The same, rounded to float. */
tdm_status tdm_parse_float(const char *key, const char *value, double low, double high, float *out);
/* true/false, yes/no, on/off or 1/0 (any case). */
tdm_status tdm_parse_bool(const char *key, const char *value, bool *out);
/* Copies a non-empty string that fits in capacity (with its NUL). */
tdm_status tdm_parse_string(const char *key, const char *value, char *out, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
