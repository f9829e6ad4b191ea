/* libFuzzer target: an IDX image file; its labels are the input's first
 * bytes after an IDX label header naming as many as the images claim. */
#include <string.h>

#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char labels_path[64];
    if (!labels_path[0])
        snprintf(labels_path, sizeof labels_path, "/tmp/tandem-fuzz-labels-%d", (int)getpid());
    /* the labels: a header for the count in bytes 4..7 of the input, then bytes */
    uint8_t header[8] = {0, 0, 8, 1, 0, 0, 0, 0};
    if (size >= 8)
        memcpy(header + 4, data + 4, 4);
    FILE *labels = fopen(labels_path, "wb");
    if (!labels)
        abort();
    fwrite(header, 1, sizeof header, labels);
    fwrite(data, 1, size < 4096 ? size : 4096, labels);
    fclose(labels);
    tdm_dataset set;
    if (tdm_dataset_load_idx(fuzz_file(data, size, ".idx"), labels_path, 10, &set) == TDM_OK)
        tdm_dataset_free(&set);
    return 0;
}
