#define _POSIX_C_SOURCE 200809L
#include "cli/run_output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/errors.h"
#include "core/error.h"
#include "tandem/config.h"

void cli_run_config_init(cli_run_config *run)
{
    memset(run, 0, sizeof *run);
    strcpy(run->out, "runs");
    run->checkpoint_every = 100;
    const size_t channels[] = {1, 2, 4, 64}, groups[] = {0, 0, 0, 1};
    memcpy(run->sweep, channels, sizeof channels);
    memcpy(run->sweep_group, groups, sizeof groups);
    run->sweep_count = 4;
}

/* "1 2 4 | 64": channels, with | between the groups drawn in one figure. */
static tdm_status parse_sweep(cli_run_config *run, const char *value)
{
    cli_run_config parsed = *run;
    parsed.sweep_count = 0;
    size_t group = 0;
    for (const char *p = value; *p;) {
        if (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
        } else if (*p == '|') {
            group++;
            p++;
        } else {
            char *end = NULL;
            unsigned long channels = strtoul(p, &end, 10);
            if (end == p || channels == 0 || channels > 65536 ||
                parsed.sweep_count == CLI_MAX_SWEEP)
                return tdm_config_error(
                    "sweep must list up to %d channel counts in 1..65536, with | "
                    "between figures, got '%s'",
                    CLI_MAX_SWEEP, value);
            parsed.sweep[parsed.sweep_count] = channels;
            parsed.sweep_group[parsed.sweep_count++] = group;
            p = end;
        }
    }
    if (parsed.sweep_count == 0)
        return tdm_config_error("sweep lists no channel counts");
    *run = parsed;
    return TDM_OK;
}

static tdm_status copy_value(const char *key, const char *value, char *out, size_t capacity)
{
    if (!value[0] || strlen(value) >= capacity || (strcmp(key, "name") == 0 && strchr(value, '/')))
        return tdm_config_error("%s must be 1 to %zu characters%s, got '%s'", key, capacity - 1,
                                strcmp(key, "name") == 0 ? " without '/'" : "", value);
    strcpy(out, value);
    return TDM_OK;
}

tdm_status cli_run_config_set(void *target, const char *key, const char *value)
{
    cli_run_config *run = target;
    if (strcmp(key, "out") == 0)
        return copy_value(key, value, run->out, sizeof run->out);
    if (strcmp(key, "name") == 0) {
        run->name_set = true;
        return copy_value(key, value, run->name, sizeof run->name);
    }
    if (strcmp(key, "checkpoint_every") == 0)
        return tdm_parse_size(key, value, 1, SIZE_MAX, &run->checkpoint_every);
    if (strcmp(key, "sweep") == 0)
        return parse_sweep(run, value);
    return tdm_config_error("unknown key '%s' (known: out name checkpoint_every sweep)", key);
}

void cli_run_folder(const cli_run_config *run, const char *default_name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", run->out, run->name_set ? run->name : default_name);
}

tdm_status cli_make_dir(const char *path)
{
    char partial[CLI_PATH_CAPACITY];
    if (strlen(path) >= sizeof partial)
        return cli_error(TDM_ERR_IO, "output folder name too long: %s", path);
    strcpy(partial, path);
    for (char *p = partial + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST)
            return cli_error(TDM_ERR_IO, "cannot create output folder %s: %s", partial,
                             strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    cli_file probe;
    tdm_status status = cli_file_open(&probe, path, ".tandem-write-test");
    cli_file_discard(&probe);
    return status;
}

tdm_status cli_file_open(cli_file *f, const char *dir, const char *name)
{
    snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
    snprintf(f->temporary, sizeof f->temporary, "%s.tmp", f->path);
    f->file = fopen(f->temporary, "w");
    if (!f->file)
        return cli_error(TDM_ERR_IO, "cannot write %s: %s", f->path, strerror(errno));
    return TDM_OK;
}

tdm_status cli_file_finish(cli_file *f)
{
    int failure = 0; /* the errno of the first step that failed */
    if (fflush(f->file) != 0 || ferror(f->file))
        failure = errno ? errno : EIO;
    if (fclose(f->file) != 0 && !failure)
        failure = errno;
    f->file = NULL;
    if (!failure)
        return TDM_OK;
    remove(f->temporary);
    f->temporary[0] = '\0';
    return cli_error(TDM_ERR_IO, "cannot write %s: %s", f->path, strerror(failure));
}

tdm_status cli_file_rename(cli_file *f)
{
    if (rename(f->temporary, f->path) == 0)
        return TDM_OK;
    int failure = errno;
    remove(f->temporary);
    return cli_error(TDM_ERR_IO, "cannot write %s: %s", f->path, strerror(failure));
}

tdm_status cli_file_commit(cli_file *f)
{
    TDM_TRY(cli_file_finish(f));
    return cli_file_rename(f);
}

void cli_file_discard(cli_file *f)
{
    if (f->file)
        fclose(f->file);
    if (f->file || f->temporary[0])
        remove(f->temporary);
    f->file = NULL;
    f->temporary[0] = '\0';
}
