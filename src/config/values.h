/* Strict parsing of config values; errors name the key and echo the value. */
#ifndef TANDEM_CONFIG_VALUES_H
#define TANDEM_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "tandem/status.h"

/* A whole number in [low, high]. */
tdm_status tdm_parse_size(const char *key, const char *value, size_t low, size_t high, size_t *out);
/* A finite number in [low, high]. */
tdm_status tdm_parse_float(const char *key, const char *value, double low, double high, float *out);
/* true/false, yes/no, on/off or 1/0. */
tdm_status tdm_parse_bool(const char *key, const char *value, bool *out);
/* Copies a non-empty string that fits. */
tdm_status tdm_parse_string(const char *key, const char *value, char *out, size_t capacity);

#endif
