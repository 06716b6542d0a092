/* libFuzzer target: the checkpoint reader (common/ckpt) and the tools' model loader
 * (ldn_ckmodel_load). The input chooses a checkpoint of a small model: its stored config
 * (trunk widths, now and then one far too large), the root attributes (present or not, any
 * type, plausible or fuzzed values) and every dataset (types, shapes, values: NaN, infinite,
 * negative counts), written through HDF5 (fuzz_h5.h); with LDN_FUZZ_RAW=1 the input bytes are
 * the file. Then: open, walk every object, read every dataset of up to 2^20 elements as
 * float32, int64 and uint64 (and as update counts), load the model. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckmodel.h"
#include "ckpt.h"
#include "fuzz_file.h"
#include "fuzz_h5.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* /PREFIX/i/weight [out, in] and /PREFIX/i/bias [out] of an MLP in -> w[0..n) */
static void net(struct fz *z, hid_t f, const char *prefix, int64_t in, const int64_t *w, int n)
{
    char p[96];
    for (int i = 0; i < n; i++) {
        const int64_t ws[2] = {w[i], in}, bs[2] = {w[i], 1};
        snprintf(p, sizeof p, "%s/%d/weight", prefix, i);
        fz_dataset(z, f, p, H5T_NATIVE_FLOAT, 2, ws);
        snprintf(p, sizeof p, "%s/%d/bias", prefix, i);
        fz_dataset(z, f, p, H5T_NATIVE_FLOAT, 1, bs);
        in = w[i];
    }
}

static const char *build(const uint8_t *data, size_t size)
{
    if (getenv("LDN_FUZZ_RAW"))
        return ldn_fuzz_file(data, size, ".h5");
    const char *path = ldn_fuzz_file(NULL, 0, ".h5");
    hid_t f = path ? fz_create(path) : H5I_INVALID_HID;
    if (f < 0)
        return NULL;
    struct fz z = {data, size};
    const int n_trunk = 1 + (int)(fz_u8(&z) % 3);
    int64_t w[3], stored[3], features = 1 + fz_u8(&z) % 6, ca = 2 + fz_u8(&z) % 3,
                             cb = 2 + fz_u8(&z) % 3;
    for (int i = 0; i < n_trunk; i++) {
        w[i] = 1 + fz_u8(&z) % 6;
        unsigned big = fz_u8(&z);
        stored[i] = big % 32 == 0 ? 1000000 : big % 32 == 1 ? 0 : w[i];
    }
    const int adam = (int)(fz_u8(&z) % 2);
    char config[512], tw[64] = "";
    for (int i = 0, off = 0; i < n_trunk; i++)
        off += snprintf(tw + off, sizeof tw - (size_t)off, "%s%lld", i ? ", " : "",
                        (long long)stored[i]);
    snprintf(config, sizeof config,
             "run: {dir: /nonexistent}\ndata: {dir: /nonexistent}\nmodel: {trunk: [%s]}\n"
             "tasks: {a: {}, b: {head: [3]}}\ntrain: {batch_size: 4, optimizer: %s}\n",
             tw, adam ? "adam" : "sgd");
    const double step = (double)(fz_u8(&z) % 8);
    fz_attr_str(&z, f, "format", LDN_CKPT_FORMAT);
    fz_attr_num(&z, f, "format_version", LDN_CKPT_FORMAT_VERSION);
    fz_attr_num(&z, f, "step", step);
    fz_attr_num(&z, f, "epoch", 1);
    fz_attr_num(&z, f, "steps_per_epoch", 4);
    fz_attr_num(&z, f, "total_steps", 8);
    fz_attr_num(&z, f, "servers", 1);
    fz_attr_num(&z, f, "workers", 1);
    fz_attr_num(&z, f, "features", (double)features);
    fz_attr_num(&z, f, "seed", 1);
    fz_attr_num(&z, f, "round", 0);
    fz_attr_str(&z, f, "config", config);
    fz_attr_str(&z, f, "metrics", "");
    fz_attr_str(&z, f, "created", "2026-01-01T00:00:00Z");
    fz_attr_str(&z, f, "ladon_version", "0.1.0");
    net(&z, f, "/trunk", features, w, n_trunk);
    const int64_t ha[1] = {ca}, hb[2] = {3, cb};
    net(&z, f, "/heads/a", w[n_trunk - 1], ha, 1);
    net(&z, f, "/heads/b", w[n_trunk - 1], hb, 2);
    net(&z, f, "/optimizer/m/trunk", features, w, n_trunk);
    if (adam)
        net(&z, f, "/optimizer/v/trunk", features, w, n_trunk);
    const int64_t one[2] = {1, 1};
    fz_dataset(&z, f, "/optimizer/trunk_updates", H5T_NATIVE_INT64, 1, one);
    fz_dataset(&z, f, "/optimizer/t/heads/a", H5T_NATIVE_INT64, 1, one);
    return fz_finish(f, path);
}

static int read_all(const char *name, void *ud, char *err, size_t errlen)
{
    const struct ldn_ckpt *ck = ud;
    int nd;
    int64_t dims[2];
    if (ldn_ckpt_shape(ck, name, &nd, dims, err, errlen) != 0)
        return 0;
    if (dims[0] < 0 || dims[1] < 0 || dims[0] > (1 << 20) || dims[1] > (1 << 20) ||
        dims[0] * dims[1] > (1 << 20))
        return 0;
    void *buf = malloc((size_t)(dims[0] * dims[1] + 1) * 8);
    if (!buf)
        return 0;
    for (int type = LDN_CKPT_F32; type <= LDN_CKPT_U64; type++) {
        int rc = ldn_ckpt_read(ck, name, type, nd, dims, 0, dims[0], buf, nd == 2 ? dims[1] : 1,
                               err, errlen);
        if (rc == 0 && type == LDN_CKPT_F32) /* what a loader takes in is finite */
            for (int64_t i = 0; i < dims[0] * dims[1]; i++)
                if (!isfinite(((const float *)buf)[i]))
                    abort();
    }
    if (nd == 1 && ldn_ckpt_read_counts(ck, name, dims, 0, dims[0], buf, err, errlen) == 0)
        for (int64_t i = 0; i < dims[0]; i++)
            if (((const int64_t *)buf)[i] < 0 || ((const int64_t *)buf)[i] > LDN_CKPT_MAX_COUNT)
                abort();
    free(buf);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = build(data, size);
    if (!path)
        return 0;
    char err[LDN_ERRLEN];
    struct ldn_ckpt ck;
    if (ldn_ckpt_open(path, &ck, err, sizeof err) != 0)
        return 0;
    int rc = ldn_ckpt_walk(&ck, read_all, &ck, err, sizeof err);
    ldn_ckpt_close(&ck);
    if (rc != 0)
        return 0;
    struct ldn_ckmodel L;
    if (ldn_ckmodel_load(path, 1, &L, err, sizeof err) == 0)
        ldn_ckmodel_free(&L);
    return 0;
}
