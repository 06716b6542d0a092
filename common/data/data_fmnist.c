/* The Fashion-MNIST multi-task benchmark (docs/data.md): three tasks with different label
 * spaces trained on disjoint images, built from the IDX .gz files into task files. */
#define _POSIX_C_SOURCE 200809L

#include "data.h"

#include "data_priv.h"
#include "idx.h"
#include "log.h"
#include "rng.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FM_SIDE 28
#define FM_PIXELS (FM_SIDE * FM_SIDE)
#define FM_CLASSES 10
#define FM_TASKS 3

static const char *const FM_FILES[4] = {
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
};

/* The three tasks. Training images are split 4:1:1 between them (40,000 / 10,000 / 10,000
 * for the real data); each is tested on the whole test split, relabeled. */
struct fm_task {
    const char *name;
    int num_classes;
    int share; /* parts of the 4:1:1 split of the training images */
    int8_t map[FM_CLASSES];
    const char *classes;
    const char *description;
};

static const struct fm_task FM_TASK[FM_TASKS] = {
    {"category",
     10,
     4,
     {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
     "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot",
     "Fashion-MNIST: the 10 original classes"},
    {"group",
     4,
     1,
     {0, 1, 0, 1, 0, 2, 0, 2, 3, 2},
     "tops,bottoms-and-dresses,footwear,bags",
     "Fashion-MNIST: 4 coarse groups: tops {T-shirt/top, Pullover, Coat, Shirt}, "
     "bottoms-and-dresses {Trouser, Dress}, footwear {Sandal, Sneaker, Ankle boot}, bags {Bag}"},
    {"parity",
     2,
     1,
     {0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
     "even,odd",
     "Fashion-MNIST: parity of the original class id: even {T-shirt/top, Pullover, Coat, "
     "Sandal, Bag} vs odd {Trouser, Dress, Shirt, Sneaker, Ankle boot}"},
};

struct fm_input {
    struct ldn_idx img[2], lab[2]; /* [0] train, [1] test */
};

static void fm_input_deinit(struct fm_input *in)
{
    for (int i = 0; i < 2; i++) {
        ldn_idx_deinit(&in->img[i]);
        ldn_idx_deinit(&in->lab[i]);
    }
}

/* Read and validate all four input files. */
static int fm_read(const char *src_dir, struct fm_input *in, char *err, size_t errlen)
{
    char path[4][4096];
    memset(in, 0, sizeof *in);
    for (int i = 0; i < 4; i++)
        if ((size_t)snprintf(path[i], sizeof path[i], "%s/%s", src_dir, FM_FILES[i]) >=
            sizeof path[i])
            return ldn_fail(err, errlen, LDN_ERR_ARG, "data %s: path too long", src_dir);
    int rc;
    for (int s = 0; s < 2; s++) {
        if ((rc = ldn_idx_read(path[2 * s], 3, &in->img[s], err, errlen)) < 0 ||
            (rc = ldn_idx_read(path[2 * s + 1], 1, &in->lab[s], err, errlen)) < 0)
            return rc;
        const struct ldn_idx *im = &in->img[s], *lb = &in->lab[s];
        if (im->dims[1] != FM_SIDE || im->dims[2] != FM_SIDE)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "data %s: images are %lldx%lld, expected %dx%d", path[2 * s],
                            (long long)im->dims[1], (long long)im->dims[2], FM_SIDE, FM_SIDE);
        if (im->dims[0] != lb->dims[0])
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "data %s: %s holds %lld images but %s holds %lld labels", src_dir,
                            FM_FILES[2 * s], (long long)im->dims[0], FM_FILES[2 * s + 1],
                            (long long)lb->dims[0]);
        if (im->dims[0] > INT32_MAX)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: too many images (%lld)",
                            path[2 * s], (long long)im->dims[0]);
        for (size_t i = 0; i < lb->size; i++)
            if (lb->data[i] >= FM_CLASSES)
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "data %s: label %d at index %zu is outside 0..%d", path[2 * s + 1],
                                lb->data[i], i, FM_CLASSES - 1);
    }
    if (in->img[0].dims[0] < 6)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "data %s: %s holds %lld images; the 4:1:1 task split needs at least 6",
                        src_dir, FM_FILES[0], (long long)in->img[0].dims[0]);
    if (in->img[1].dims[0] < 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: %s holds no images", src_dir,
                        FM_FILES[2]);
    return 0;
}

/* Write task k: train rows are perm[first .. first+n). */
static int fm_write(const char *path, const struct fm_task *t, const struct fm_input *in,
                    const int32_t *perm, int64_t first, int64_t n, const int32_t *test_index,
                    char *err, size_t errlen)
{
    const int64_t m = in->img[1].dims[0];
    uint8_t *x = malloc((size_t)n * FM_PIXELS);
    int32_t *y = malloc((size_t)n * sizeof *y);
    int32_t *ty = malloc((size_t)m * sizeof *ty);
    int rc;
    if (!x || !y || !ty) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", path);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t src = perm[first + i];
        memcpy(x + i * FM_PIXELS, in->img[0].data + (size_t)src * FM_PIXELS, FM_PIXELS);
        y[i] = t->map[in->lab[0].data[src]];
    }
    for (int64_t i = 0; i < m; i++)
        ty[i] = t->map[in->lab[1].data[i]];
    struct ldn__task_out out = {
        .task = t->name,
        .description = t->description,
        .classes = t->classes,
        .num_classes = t->num_classes,
        .features = FM_PIXELS,
        .x_scale = 1.0 / 255.0,
        .train = {n, x, 0, y, perm + first},
        .test = {m, in->img[1].data, 0, ty, test_index},
    };
    rc = ldn__data_write_task(path, &out, err, errlen);
out:
    free(x);
    free(y);
    free(ty);
    return rc;
}

int ldn_data_build_fmnist(const char *src_dir, const char *out_dir, uint64_t seed, char *err,
                          size_t errlen)
{
    if (!src_dir || !out_dir)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "data: fmnist: source or output dir is NULL");
    struct fm_input in;
    int rc = fm_read(src_dir, &in, err, errlen);
    if (rc < 0) {
        fm_input_deinit(&in);
        return rc;
    }
    const int64_t n = in.img[0].dims[0], m = in.img[1].dims[0];
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    int32_t *test_index = malloc((size_t)m * sizeof *test_index);
    if (!perm || !test_index) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", src_dir);
        goto out_free;
    }
    /* Disjoint training images: one seeded shuffle, then consecutive 4:1:1 ranges. */
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    struct ldn_rng r;
    ldn_rng_init(&r, seed, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ldn_rng_below(&r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t i = 0; i < m; i++)
        test_index[i] = (int32_t)i;

    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    struct ldn__stage st;
    rc = ldn__stage_init(&st, out_dir, err, errlen);
    int64_t first = 0;
    for (int k = 0; k < FM_TASKS && rc == 0; k++) {
        const struct fm_task *t = &FM_TASK[k];
        int64_t cnt = k == FM_TASKS - 1 ? n - first : n * t->share / 6;
        char name[64];
        snprintf(name, sizeof name, "%s.h5", t->name);
        const char *tmp = ldn__stage_add(&st, name, err, errlen);
        if (!tmp) {
            rc = LDN_ERR_NOMEM;
            break;
        }
        rc = fm_write(tmp, t, &in, perm, first, cnt, test_index, err, errlen);
        LDN_DEBUG("data: fmnist task %s: %lld train rows (%lld..%lld of the shuffle), %lld test",
                  t->name, (long long)cnt, (long long)first, (long long)(first + cnt - 1),
                  (long long)m);
        first += cnt;
    }
    if (rc == 0)
        rc = ldn__stage_commit(&st, err, errlen);
    ldn__stage_deinit(&st);
    ldn_h5_restore(&q);
out_free:
    free(perm);
    free(test_index);
    fm_input_deinit(&in);
    return rc;
}
