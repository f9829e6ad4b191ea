#include "tandem/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

#include "core/error.h"

typedef struct parse_state {
    const tdm_config_section *sections;
    size_t count;
    FILE *file;
    int lines_read;
    int error_line;    /* of the first failing key */
    tdm_status status; /* of the first failing key */
    char message[1024];
} parse_state;

static const tdm_config_section *find_section(const parse_state *state, const char *name)
{
    for (size_t i = 0; i < state->count; i++)
        if (strcmp(state->sections[i].name, name) == 0)
            return &state->sections[i];
    return NULL;
}

/* An fgets for inih that counts lines, so a failing key knows its line. */
static char *read_line(char *line, int capacity, void *user)
{
    parse_state *state = user;
    char *result = fgets(line, capacity, state->file);
    if (result)
        state->lines_read++;
    return result;
}

static void describe_unknown_section(parse_state *state, const char *section, const char *key)
{
    if (!section[0]) {
        snprintf(state->message, sizeof state->message, "key '%s' outside any [section]", key);
        return;
    }
    int used =
        snprintf(state->message, sizeof state->message, "unknown section [%s] (known:", section);
    for (size_t i = 0; i < state->count && used > 0 && (size_t)used < sizeof state->message; i++)
        used += snprintf(state->message + used, sizeof state->message - (size_t)used, " [%s]",
                         state->sections[i].name);
    if (used > 0 && (size_t)used < sizeof state->message)
        snprintf(state->message + used, sizeof state->message - (size_t)used, ")");
}

/* Keeps the first failure only: later keys are not looked at. */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
    parse_state *state = user;
    if (state->status != TDM_OK)
        return 0;
    const tdm_config_section *target = find_section(state, section);
    if (!target) {
        state->status = TDM_ERR_CONFIG;
        state->error_line = state->lines_read;
        describe_unknown_section(state, section, key);
        return 0;
    }
    tdm_status status = target->set(target->target, key, value);
    if (status != TDM_OK) {
        state->status = status;
        state->error_line = state->lines_read;
        /* the config line is what matters, not the setter's source line */
        snprintf(state->message, sizeof state->message, "[%s] %s", section,
                 tdm_last_error_message());
        return 0;
    }
    return 1;
}

tdm_status tdm_config_parse(const char *path, const tdm_config_section *sections, size_t count)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return TDM_FAIL(TDM_ERR_CONFIG, "cannot open config file %s: %s", path, strerror(errno));
    parse_state state = {.sections = sections, .count = count, .file = file};
    int first_error_line = ini_parse_stream(read_line, &state, on_key, &state);
    fclose(file);
    if (first_error_line == 0)
        return TDM_OK;
    if (first_error_line < 0)
        return TDM_FAIL(TDM_ERR_CONFIG, "cannot read config file %s", path);
    if (state.status != TDM_OK && state.error_line <= first_error_line)
        return TDM_FAIL(state.status, "%s:%d: %s", path, state.error_line, state.message);
    return TDM_FAIL(TDM_ERR_CONFIG, "%s:%d: malformed line (expected '[section]' or 'key = value')",
                    path, first_error_line);
}

tdm_status tdm_config_error(const char *format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return TDM_FAIL(TDM_ERR_CONFIG, "%s", message);
}
