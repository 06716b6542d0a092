/* libFuzzer target: the HDF5 task-file reader (ldn_dataset_probe, ldn_dataset_load). The
 * input chooses a task file's root attributes (format, format_version, task, num_classes,
 * features, x_scale: present or not, of any type, plausible or fuzzed values) and its train
 * and test x and y (types, shapes, values), written through HDF5 (fuzz_h5.h); with
 * LDN_FUZZ_RAW=1 the input bytes are the file. A file that loads has labels in
 * [0, num_classes) and finite inputs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "data.h"
#include "fuzz_file.h"
#include "fuzz_h5.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *build(const uint8_t *data, size_t size)
{
    if (getenv("LDN_FUZZ_RAW"))
        return ldn_fuzz_file(data, size, ".h5");
    const char *path = ldn_fuzz_file(NULL, 0, ".h5");
    hid_t f = path ? fz_create(path) : H5I_INVALID_HID;
    if (f < 0)
        return NULL;
    struct fz z = {data, size};
    const int64_t features = 1 + fz_u8(&z) % 8, classes = 2 + fz_u8(&z) % 4;
    fz_attr_str(&z, f, "format", LDN_DATA_FORMAT);
    fz_attr_num(&z, f, "format_version", LDN_DATA_FORMAT_VERSION);
    fz_attr_str(&z, f, "task", "fuzz");
    fz_attr_num(&z, f, "num_classes", (double)classes);
    fz_attr_num(&z, f, "features", (double)features);
    fz_attr_num(&z, f, "x_scale", fz_u8(&z) % 2 ? 1.0 : 1.0 / 255);
    const char *splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        const int64_t rows = fz_u8(&z) % 24;
        const int64_t xs[2] = {rows, features}, ys[2] = {rows, 1};
        char p[32];
        snprintf(p, sizeof p, "/%s/x", splits[s]);
        fz_dataset(&z, f, p, fz_u8(&z) % 2 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, 2, xs);
        snprintf(p, sizeof p, "/%s/y", splits[s]);
        fz_dataset(&z, f, p, H5T_NATIVE_INT32, 1, ys);
    }
    return fz_finish(f, path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = build(data, size);
    if (!path)
        return 0;
    char err[LDN_ERRLEN], task[64];
    int classes, features;
    int64_t n_train, n_test;
    if (ldn_dataset_probe(path, task, sizeof task, &classes, &features, &n_train, &n_test, err,
                          sizeof err) != 0)
        return 0;
    const char *splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++)
        for (int shards = 1; shards <= 2; shards++) {
            struct ldn_dataset *ds =
                ldn_dataset_load(path, splits[s], shards - 1, shards, err, sizeof err);
            if (!ds)
                continue;
            for (int64_t i = 0; i < ds->n; i++)
                if (ds->y[i] < 0 || ds->y[i] >= ds->num_classes)
                    abort();
            for (int64_t i = 0; i < ds->n * ds->features; i++)
                if (!isfinite(ds->x[i]))
                    abort();
            ldn_dataset_destroy(&ds);
        }
    return 0;
}
