/* The pictures of a sweep, drawn by gnuplot (pngcairo) from the metrics
 * CSVs through a script left in the sweep folder, so they can be redrawn. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

/* "c1-c2-c4" for the curves of one group. */
static void group_name(const cli_curve *curves, size_t count, size_t group, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count && used < size; i++)
        if (curves[i].group == group)
            used += (size_t)snprintf(out + used, size - used, "%sc%zu", used ? "-" : "",
                                     curves[i].channels);
}

/* Per curve a dark colour for training and a light one for test: dashes
 * break up into specks over thousands of epochs, so both lines are solid. */
static const char *const colours[][2] = {
    {"#1f4e9c", "#8fb3e8"}, {"#b8500f", "#f2b58a"}, {"#1e7a32", "#93d6a0"},
    {"#8a1c7c", "#dba2d2"}, {"#7a5c00", "#e0c870"}, {"#404040", "#b0b0b0"},
};
enum { COLOUR_COUNT = sizeof colours / sizeof colours[0] };

/* One figure: train and test curves of `column` for every C of the group. */
static void write_figure(FILE *gp, const cli_curve *curves, size_t count, size_t group,
                         const char *what, int train_column, const char *ylabel)
{
    char name[256];
    group_name(curves, count, group, name, sizeof name);
    fprintf(gp, "set output '%s-%s.png'\nset ylabel '%s'\n", what, name, ylabel);
    fprintf(gp, "set title 'ResNet(C) on the digits: training and test %s'\nplot ", what);
    const char *separator = "";
    for (size_t i = 0; i < count; i++) {
        if (curves[i].group != group)
            continue;
        for (int test = 0; test < 2; test++) {
            fprintf(gp,
                    "%s'%s/metrics.csv' every ::1 using 1:%d with lines lw %d lc rgb '%s' "
                    "title 'C = %zu %s'",
                    separator, curves[i].folder, train_column + 2 * test, test ? 1 : 2,
                    colours[i % COLOUR_COUNT][test], curves[i].channels, test ? "test" : "train");
            separator = ", \\\n     ";
        }
    }
    fputs("\n", gp);
}

static tdm_status write_script(const char *path, const cli_curve *curves, size_t count)
{
    FILE *gp = fopen(path, "w");
    if (!gp)
        return cli_error(TDM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    fputs("# Draws the sweep's pictures: run `gnuplot plot.gp` in this folder.\n"
          "set terminal pngcairo size 1100,650 font 'sans,11'\n"
          "set datafile separator ','\nset xlabel 'epoch'\nset grid\nset format y '%g'\n"
          "set key outside right top\n",
          gp);
    size_t groups = 0;
    for (size_t i = 0; i < count; i++)
        groups = curves[i].group + 1 > groups ? curves[i].group + 1 : groups;
    for (size_t g = 0; g < groups; g++) {
        fputs("unset logscale y\nset yrange [0:*]\n", gp);
        write_figure(gp, curves, count, g, "errors", 3, "misclassified fraction");
        fputs("set logscale y\nset yrange [*:*]\n", gp);
        write_figure(gp, curves, count, g, "loss", 2, "cross-entropy (log scale)");
    }
    return fclose(gp) == 0 ? TDM_OK : cli_error(TDM_ERR_IO, "cannot write %s", path);
}

/* Runs gnuplot plot.gp in dir; returns its exit status (127: not found). */
static int run_gnuplot(const char *dir)
{
    pid_t child = fork();
    if (child == 0) {
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", "plot.gp", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

tdm_status cli_plot_sweep(const char *dir, const cli_curve *curves, size_t count, bool quiet)
{
    char script[2100];
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    tdm_status status = write_script(script, curves, count);
    if (status != TDM_OK)
        return status;
    fflush(stdout);
    int exit_code = run_gnuplot(dir);
    if (exit_code == 127) {
        fprintf(stderr,
                "tandem: gnuplot not found, so no pictures; the CSVs are in %s. Install it "
                "(apt-get install gnuplot-nox), then run: cd %s && gnuplot plot.gp\n",
                dir, dir);
        return TDM_OK;
    }
    if (exit_code != 0)
        return cli_error(TDM_ERR_IO, "gnuplot failed on %s (exit %d)", script, exit_code);
    if (!quiet)
        fprintf(stderr, "tandem: pictures drawn by gnuplot from %s\n", script);
    return TDM_OK;
}
