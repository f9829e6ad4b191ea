/* The pictures of a sweep, drawn by gnuplot (pngcairo) from the metrics
 * CSVs through a script left in the sweep folder, so they can be redrawn. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/plot.h"

#include "cli/errors.h"
#include "cli/run_output.h"
#include "core/error.h"

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

static tdm_status write_script(const char *dir, const char *name, const cli_curve *curves,
                               size_t count)
{
    cli_file script;
    TDM_TRY(cli_file_open(&script, dir, name));
    FILE *gp = script.file;
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
    return cli_file_commit(&script);
}

/* Runs gnuplot SCRIPT in dir; returns its exit status (127: not found). */
static int run_gnuplot(const char *dir, const char *script)
{
    pid_t child = fork();
    if (child == 0) {
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs dir/script; a missing gnuplot is a message, not an error. */
static tdm_status draw(const char *dir, const char *script, bool quiet)
{
    fflush(stdout);
    int exit_code = run_gnuplot(dir, script);
    if (exit_code == 127) {
        fprintf(stderr,
                "tandem: gnuplot not found, so no pictures; the CSVs are in %s. Install it "
                "(apt-get install gnuplot-nox), then run: cd %s && gnuplot %s\n",
                dir, dir, script);
        return TDM_OK;
    }
    if (exit_code != 0)
        return cli_error(TDM_ERR_IO, "gnuplot failed on %s/%s (exit %d)", dir, script, exit_code);
    if (!quiet)
        fprintf(stderr, "tandem: pictures drawn by gnuplot from %s/%s\n", dir, script);
    return TDM_OK;
}

tdm_status cli_plot_sweep(const char *dir, const cli_curve *curves, size_t count, bool quiet)
{
    TDM_TRY(write_script(dir, "plot.gp", curves, count));
    return draw(dir, "plot.gp", quiet);
}

/* A grid of the K means as grey images, ink dark, titled with their weights. */
static void write_means_script(FILE *gp, size_t components, size_t height, size_t width,
                               const float *pi)
{
    size_t columns = (size_t)ceil(sqrt((double)components)),
           rows = (components + columns - 1) / columns;
    fprintf(gp,
            "set terminal pngcairo size %zu,%zu font 'sans,10'\nset output 'means.png'\n"
            "set multiplot layout %zu,%zu title 'Cluster means p_k of the mixture (K = %zu)'\n"
            "unset key\nunset colorbox\nunset tics\nset size ratio -1\n"
            "set palette gray negative\nset cbrange [0:1]\n"
            "set xrange [-0.5:%zu.5]\nset yrange [%zu.5:-0.5]\n",
            220 * columns, 240 * rows + 40, rows, columns, components, width - 1, height - 1);
    for (size_t k = 0; k < components; k++)
        fprintf(gp,
                "set title 'k = %zu, pi = %.3f'\nplot 'means.dat' index %zu matrix with image\n", k,
                (double)pi[k], k);
    fputs("unset multiplot\n", gp);
}

static void write_bic_script(FILE *gp)
{
    fputs("set terminal pngcairo size 900,550 font 'sans,11'\nset output 'bic.png'\n"
          "set datafile separator ','\nset xlabel 'components K'\nset ylabel 'criterion'\n"
          "set grid\nset key top right\nset format y '%g'\n"
          "set title 'Mixture of Bernoullis: BIC and AIC by number of components'\n"
          "plot 'k-sweep.csv' every ::1 using 1:3 with linespoints lw 2 pt 7 title 'BIC', \\\n"
          "     '' every ::1 using 1:4 with linespoints lw 2 pt 5 title 'AIC'\n",
          gp);
}

tdm_status cli_plot_em(const char *dir, size_t components, size_t height, size_t width,
                       const float *pi, bool sweep, bool quiet)
{
    const char *name = sweep ? "bic.gp" : "means.gp";
    cli_file script;
    TDM_TRY(cli_file_open(&script, dir, name));
    if (sweep)
        write_bic_script(script.file);
    else
        write_means_script(script.file, components, height, width, pi);
    TDM_TRY(cli_file_commit(&script));
    return draw(dir, name, quiet);
}
