#define _POSIX_C_SOURCE 200809L
#include "tandem/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

/* An fgets for inih that counts lines, so a failing key knows its line, and
 * stops at a line longer than inih's buffer or with a NUL in it: inih would
 * take the rest of a long line as a line of its own (a long commented-out
 * line could set a key), and a NUL cuts a line short. */
static char *reject_line(parse_state *state, const char *why)
{
    state->status = TDM_ERR_CONFIG;
    state->error_line = state->lines_read;
    snprintf(state->message, sizeof state->message, "%s", why);
    return NULL;
}

static char *read_line(char *line, int capacity, void *user)
{
    parse_state *state = user;
    if (state->status != TDM_OK || !fgets(line, capacity, state->file))
        return NULL;
    state->lines_read++;
    size_t length = strlen(line);
    if (length > 0 && line[length - 1] == '\n')
        return line;
    if (length + 1 == (size_t)capacity) { /* the buffer is full: more to come? */
        if (fgetc(state->file) == EOF)
            return line;
        char why[96];
        snprintf(why, sizeof why, "line too long (a config line may have %d characters)",
                 capacity - 2);
        return reject_line(state, why);
    }
    /* fgets stopped at neither a newline nor a full buffer: the end, or a NUL */
    return feof(state->file) ? line : reject_line(state, "a NUL byte in the line");
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
    struct stat info;
    if (fstat(fileno(file), &info) != 0 || !(S_ISREG(info.st_mode) || S_ISFIFO(info.st_mode))) {
        fclose(file);
        return TDM_FAIL(TDM_ERR_CONFIG, "config file %s is not a file (a directory or a device)",
                        path);
    }
    parse_state state = {.sections = sections, .count = count, .file = file};
    int first_error_line = ini_parse_stream(read_line, &state, on_key, &state);
    fclose(file);
    if (state.status != TDM_OK && (first_error_line == 0 || state.error_line <= first_error_line))
        return TDM_FAIL(state.status, "%s:%d: %s", path, state.error_line, state.message);
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
