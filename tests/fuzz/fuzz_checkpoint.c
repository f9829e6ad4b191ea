/* libFuzzer target: a checkpoint for a trainer of ResNet(1) on 16 random
 * digits, on the cpu backend. The input gets a valid CRC appended, so the
 * fuzzer reaches the parsing and the checks behind the checksum. */
#include <string.h>
#include <zlib.h>

#include "fuzz_input.h"
#include "tandem/tandem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tdm_trainer *trainer(void)
{
    static tdm_trainer *t;
    static tdm_dataset set;
    if (t)
        return t;
    tdm_backend *backend = NULL;
    tdm_model_spec spec;
    tdm_train_options options;
    tdm_train_options_init(&options);
    set = (tdm_dataset){.count = 16, .shape = {1, 8, 8}, .classes = 10};
    set.pixels = calloc(16 * 64, sizeof(float));
    set.labels = calloc(16, sizeof(int32_t));
    if (tdm_cpu_backend_create_threads(1, &backend) != TDM_OK ||
        tdm_model_spec_resnet(1, set.shape, 10, &spec) != TDM_OK ||
        tdm_trainer_create(backend, &spec, &set, &set, &options, &t) != TDM_OK)
        abort();
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file = malloc(size + 4);
    if (!file)
        abort();
    if (size)
        memcpy(file, data, size);
    uint32_t crc = (uint32_t)crc32(0L, data, (uInt)size);
    for (int i = 0; i < 4; i++)
        file[size + i] = (uint8_t)(crc >> (8 * i));
    (void)tdm_trainer_load(trainer(), fuzz_file(file, size + 4, ".bin"));
    free(file);
    return 0;
}
