#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/errors.h"

static void print_usage(FILE *out)
{
    fputs("usage: tandem [options] <command>\n"
          "\n"
          "commands:\n"
          "  devices    list every OpenCL device and the cpu backend; '*' marks the one\n"
          "             the current config picks\n"
          "  selftest   check the chosen device against the cpu backend: SGEMM (timed), two\n"
          "             training steps of the model and EM, each within a tolerance\n"
          "  tune       tune CLBlast's GEMM for the chosen OpenCL device and save it\n"
          "             (applied whenever that device is used; see docs/devices.md)\n"
          "  summary    print the model: each layer's output shape, parameters and FLOPs\n"
          "             per sample (the config's [model], else ResNet(4) on 8x8 digits)\n"
          "  train      train the model on the configured data: OUT/NAME/metrics.csv and\n"
          "             checkpoint.bin (see configs/resnet.ini)\n"
          "  sweep      the source's experiment: ResNet(C) for C = 1, 2, 4 and 64, then\n"
          "             error and loss pictures and summary.md in OUT/NAME\n"
          "  em         cluster binary data with a mixture of Bernoullis (EM): the digits\n"
          "             binarised at 8 by default (see configs/em.ini); across processes\n"
          "             with mpirun -np N in a build with MPI (docs/distributed.md)\n"
          "\n"
          "options:\n"
          "  -c, --config FILE    config file (see configs/default.ini); default: built-in\n"
          "                       defaults, the same as configs/default.ini\n"
          "  -d, --device DEVICE  auto, cpu, opencl, opencl:PLATFORM or opencl:PLATFORM:DEVICE\n"
          "                       (index or name substring); overrides TANDEM_DEVICE and the\n"
          "                       config file\n"
          "  -t, --threads N      threads of the cpu backend, or auto: the cores this\n"
          "                       process may use (overrides TANDEM_THREADS and [device]\n"
          "                       threads)\n"
          "  -C, --channels C     use ResNet(C) as the model (overrides [model])\n"
          "      --epochs N       training epochs ([train] epochs)\n"
          "      --batch N        mini-batch size ([train] batch)\n"
          "      --lr X           learning rate ([train] lr)\n"
          "      --seed N         seed of the initial weights and shuffling ([train] seed)\n"
          "      --out DIR        results directory ([run] out, default runs)\n"
          "      --name NAME      the run's folder under it ([run] name)\n"
          "      --resume         continue from the run folder's checkpoint\n"
          "  -k, --k K            mixture components ([em] components)\n"
          "      --k-sweep A..B   fit K = A..B and report BIC and AIC\n"
          "  -q, --quiet          do not print the chosen device\n"
          "  -h, --help           show this help\n"
          "  -V, --version        show the version, and whether this build has MPI\n",
          out);
}

static bool parse_channels(const char *text, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (text[0] == '-' || !text[0] || *end || errno || value == 0 || value > 1u << 16) {
        fprintf(stderr, "tandem: error: --channels must be a whole number in 1..65536, got '%s'\n",
                text);
        return false;
    }
    *out = value;
    return true;
}

/* The flags that set a config key, each with its section (NULL: the
 * command's own) and key. */
typedef struct key_flag {
    int id;
    const char *flag, *section, *key;
} key_flag;

static const key_flag key_flags[] = {
    {'E', "--epochs", "train", "epochs"}, {'B', "--batch", "train", "batch"},
    {'L', "--lr", "train", "lr"},         {'S', "--seed", NULL, "seed"},
    {'O', "--out", "run", "out"},         {'N', "--name", "run", "name"},
    {'k', "--k", "em", "components"},
};

static bool add_key_flag(cli_options *options, int id, const char *value)
{
    for (size_t i = 0; i < sizeof key_flags / sizeof key_flags[0]; i++)
        if (key_flags[i].id == id) {
            if (options->override_count == CLI_MAX_OVERRIDES) {
                fputs("tandem: error: too many flags\n", stderr);
                return false;
            }
            const key_flag *f = &key_flags[i];
            options->overrides[options->override_count++] = (cli_override){
                .flag = f->flag, .section = f->section, .key = f->key, .value = value};
            return true;
        }
    return false;
}

/* The commands, each with the section its flags go to when they name none. */
typedef struct command {
    const char *name;
    int (*run)(const cli_options *options);
    const char *section;
    bool distributed; /* runs across the processes mpirun starts */
} command;

static const command commands[] = {
    {"devices", cmd_devices, "train", false},
    {"selftest", cmd_selftest, "train", false},
    {"tune", cmd_tune, "train", false},
    {"summary", cmd_summary, "train", false},
    {"train", cmd_train, "train", true},
    {"sweep", cmd_sweep, "train", false},
    {"em", cmd_em, "em", true},
};

/* The command among the processes of MPI_COMM_WORLD (one without mpirun). */
static int run_command(const command *c, cli_options *options)
{
    tdm_comm *comm = NULL;
    if (tdm_comm_world(&comm) != TDM_OK)
        return cli_fail();
    cli_set_process(comm->rank, comm->size);
    int code = 2;
    if (comm->size > 1 && !c->distributed)
        fprintf(stderr,
                "tandem: error: %s runs in one process; of the commands, em runs across the %d "
                "processes of mpirun\n",
                c->name, comm->size);
    else {
        options->comm = comm;
        code = c->run(options);
    }
    tdm_comm_free(comm);
    return code;
}

/* Sets options from the flags; returns -1 to go on, else the exit status. */
static int parse_flags(int argc, char **argv, cli_options *options)
{
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'},
        {"device", required_argument, NULL, 'd'},
        {"channels", required_argument, NULL, 'C'},
        {"quiet", no_argument, NULL, 'q'},
        {"epochs", required_argument, NULL, 'E'},
        {"batch", required_argument, NULL, 'B'},
        {"lr", required_argument, NULL, 'L'},
        {"seed", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'O'},
        {"name", required_argument, NULL, 'N'},
        {"resume", no_argument, NULL, 'R'},
        {"k", required_argument, NULL, 'k'},
        {"k-sweep", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"threads", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "c:d:t:C:k:qhV", long_options, NULL)) != -1) {
        switch (option) {
        case 'c': options->config_path = optarg; break;
        case 'd': options->device_string = optarg; break;
        case 't': options->threads_string = optarg; break;
        case 'C':
            if (!parse_channels(optarg, &options->channels))
                return 2;
            break;
        case 'q': options->quiet = true; break;
        case 'R': options->resume = true; break;
        case 'W': options->k_sweep = optarg; break;
        case 'h': print_usage(stdout); return 0;
        case 'V':
            printf("tandem " TANDEM_VERSION " (%s MPI)\n", tdm_comm_has_mpi() ? "with" : "without");
            return 0;
        case '?': print_usage(stderr); return 2;
        default:
            if (!add_key_flag(options, option, optarg))
                return 2;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    cli_options options = {0};
    int exit_code = parse_flags(argc, argv, &options);
    if (exit_code >= 0)
        return exit_code;
    if (optind != argc - 1) {
        fputs(optind >= argc ? "tandem: error: no command given\n"
                             : "tandem: error: one command expected\n",
              stderr);
        print_usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0) {
            options.command_section = commands[i].section;
            return run_command(&commands[i], &options);
        }
    fprintf(stderr, "tandem: error: unknown command '%s' (try tandem --help)\n", name);
    return 2;
}
