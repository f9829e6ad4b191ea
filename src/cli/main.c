#define _GNU_SOURCE /* getopt_long */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_usage(FILE *out)
{
    fputs("usage: tandem [options] <command>\n"
          "\n"
          "commands:\n"
          "  devices    list every OpenCL device and the cpu backend; '*' marks the one\n"
          "             the current config picks\n"
          "  selftest   run SGEMM on the chosen device and check it against the cpu backend\n"
          "\n"
          "options:\n"
          "  -c, --config FILE    config file (see configs/default.ini); default: built-in\n"
          "                       defaults, the same as configs/default.ini\n"
          "  -d, --device DEVICE  auto, cpu, opencl, opencl:PLATFORM or opencl:PLATFORM:DEVICE\n"
          "                       (index or name substring); overrides TANDEM_DEVICE and the\n"
          "                       config file\n"
          "  -q, --quiet          do not print the chosen device\n"
          "  -h, --help           show this help\n"
          "  -V, --version        show the version\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'}, {"device", required_argument, NULL, 'd'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    cli_options options = {0};
    int option;
    while ((option = getopt_long(argc, argv, "c:d:qhV", long_options, NULL)) != -1) {
        switch (option) {
        case 'c': options.config_path = optarg; break;
        case 'd': options.device_string = optarg; break;
        case 'q': options.quiet = true; break;
        case 'h': print_usage(stdout); return 0;
        case 'V': puts("tandem " TANDEM_VERSION); return 0;
        default: print_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(optind >= argc ? "tandem: error: no command given\n"
                             : "tandem: error: one command expected\n",
              stderr);
        print_usage(stderr);
        return 2;
    }
    const char *command = argv[optind];
    if (strcmp(command, "devices") == 0)
        return cmd_devices(&options);
    if (strcmp(command, "selftest") == 0)
        return cmd_selftest(&options);
    fprintf(stderr, "tandem: error: unknown command '%s' (try tandem --help)\n", command);
    return 2;
}
