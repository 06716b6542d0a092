/* HDF5 checkpoints (ckpt.h, docs/checkpoint.md). */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "h5util.h"
#include "log.h"
#include "status.h"

#define KIND "checkpoint"

/* ---------------------------------------------------------------- item lists */

void ldn_ckpt_items_free(struct ldn_ckpt_items *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int push_item(struct ldn_ckpt_items *l, const struct ldn_ckpt_item *it)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        struct ldn_ckpt_item *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v)
            return LDN_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *it;
    return 0;
}

/* it->name = "<prefix>/<layer>/<tensor>" */
static int set_name(struct ldn_ckpt_item *it, const char *prefix, int layer, const char *tensor)
{
    int n = snprintf(it->name, sizeof it->name, "%s/%d/%s", prefix, layer, tensor);
    return n > 0 && (size_t)n < sizeof it->name ? 0 : LDN_ERR_ARG;
}

int ldn_ckpt_add(struct ldn_ckpt_items *l, const char *name, int type, int ndim, int64_t d0,
                 int64_t d1, const void *src)
{
    return ldn_ckpt_add_rows(l, name, type, ndim, d0, d1, 0, d0, src);
}

int ldn_ckpt_add_rows(struct ldn_ckpt_items *l, const char *name, int type, int ndim, int64_t d0,
                      int64_t d1, int64_t row0, int64_t rows, const void *src)
{
    struct ldn_ckpt_item it = {.type = type,
                               .ndim = ndim,
                               .dims = {d0, ndim == 2 ? d1 : 1},
                               .row0 = row0,
                               .rows = rows,
                               .src = src,
                               .stride = ndim == 2 ? d1 : 1};
    if (strlen(name) >= sizeof it.name || name[0] != '/')
        return LDN_ERR_ARG;
    strcpy(it.name, name);
    return push_item(l, &it);
}

/* The whole rows of layer ly inside keys [lo, hi): first key *a, first row *r0, *rows rows.
 * Returns 0 when there are none. */
static int layer_rows(const struct ldn_layer *ly, int64_t lo, int64_t hi, int64_t *a, int64_t *r0,
                      int64_t *rows)
{
    *a = ly->offset > lo ? ly->offset : lo;
    int64_t b = ly->offset + ly->n_params < hi ? ly->offset + ly->n_params : hi;
    if (*a >= b)
        return 0;
    *r0 = (*a - ly->offset) / ly->row_len;
    *rows = (b - *a) / ly->row_len;
    return 1;
}

int ldn_ckpt_add_net(struct ldn_ckpt_items *l, const struct ldn_nn *net, const char *prefix,
                     const float *base, int64_t lo, int64_t hi)
{
    for (int i = 0; i < net->n_layers; i++) {
        const struct ldn_layer *ly = &net->layers[i];
        int64_t a, r0, rows;
        if (!layer_rows(ly, lo, hi, &a, &r0, &rows))
            continue;
        struct ldn_ckpt_item w = {.type = LDN_CKPT_F32,
                                  .ndim = 2,
                                  .dims = {ly->out_dim, ly->in_dim},
                                  .row0 = r0,
                                  .rows = rows,
                                  .src = base + (a - lo),
                                  .stride = ly->row_len};
        struct ldn_ckpt_item bias = w;
        bias.ndim = 1;
        bias.dims[1] = 1;
        bias.src = base + (a - lo) + ly->in_dim;
        int rc;
        if ((rc = set_name(&w, prefix, i, "weight")) || (rc = set_name(&bias, prefix, i, "bias")) ||
            (rc = push_item(l, &w)) || (rc = push_item(l, &bias)))
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- writing */

static hid_t file_type(int type)
{
    return type == LDN_CKPT_F32   ? H5T_IEEE_F32LE
           : type == LDN_CKPT_I64 ? H5T_STD_I64LE
                                  : H5T_STD_U64LE;
}

static hid_t mem_type(int type)
{
    return type == LDN_CKPT_F32   ? H5T_NATIVE_FLOAT
           : type == LDN_CKPT_I64 ? H5T_NATIVE_INT64
                                  : H5T_NATIVE_UINT64;
}

static int part_cmp(const void *a, const void *b)
{
    const struct ckpt_part *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->row0 > y->row0) - (x->row0 < y->row0);
}

/* The rows of dataset u are held exactly once: its parts, in row order, tile [0, dims[0]). */
static int check_tiling(const struct ckpt_part *v, const struct ckpt_dset *u, char *err,
                        size_t errlen)
{
    int64_t next = 0;
    for (int k = u->first; k < u->first + u->count; k++) {
        const struct ckpt_part *p = &v[k];
        if (p->rows == 0)
            continue;
        if (p->row0 > next)
            return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                            "checkpoint: rows %lld..%lld of %s are held by no rank",
                            (long long)next, (long long)p->row0 - 1, p->name);
        if (p->row0 < next)
            return ldn_fail(
                err, errlen, LDN_ERR_INTERNAL,
                "checkpoint: rows %lld..%lld of %s are held twice (rank %d and another)",
                (long long)p->row0, (long long)next - 1, p->name, p->rank);
        next = p->row0 + p->rows;
    }
    const struct ckpt_part *d = &v[u->first];
    if (next != d->dims[0])
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                        "checkpoint: rows %lld..%lld of %s are held by no rank", (long long)next,
                        (long long)d->dims[0] - 1, d->name);
    return 0;
}

/* Every rank's parts of every dataset, sorted by name and first row (the same list on every
 * rank), and the datasets as ranges of it, checked: one shape per dataset, rows held once. */
static int gather_parts(MPI_Comm comm, const struct ldn_ckpt_items *mine, struct ckpt_part **out,
                        struct ckpt_dset **dsets, int *nd_out, char *err, size_t errlen)
{
    int size = 1, me = 0;
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_size(comm, &size);
        MPI_Comm_rank(comm, &me);
    }
    struct ckpt_part *own = calloc((size_t)mine->n + 1, sizeof *own);
    int *counts = calloc((size_t)size, sizeof *counts), *displs = calloc((size_t)size, sizeof(int));
    if (!own || !counts || !displs) {
        free(own);
        free(counts);
        free(displs);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
    }
    for (int i = 0; i < mine->n; i++) {
        const struct ldn_ckpt_item *it = &mine->v[i];
        memcpy(own[i].name, it->name, sizeof own[i].name);
        own[i].type = it->type;
        own[i].ndim = it->ndim;
        own[i].dims[0] = it->dims[0];
        own[i].dims[1] = it->ndim == 2 ? it->dims[1] : 1;
        own[i].row0 = it->row0;
        own[i].rows = it->rows;
        own[i].rank = me;
    }
    int bytes = (int)sizeof(struct ckpt_part) * mine->n, total = bytes;
    struct ckpt_part *all = own;
    if (comm != MPI_COMM_NULL) {
        MPI_Allgather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, comm);
        total = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = total;
            total += counts[r];
        }
        all = malloc((size_t)total + 1);
        if (all)
            MPI_Allgatherv(own, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, comm);
        free(own);
    }
    free(counts);
    free(displs);
    int n = total / (int)sizeof(struct ckpt_part), nd = 0, rc = 0;
    struct ckpt_dset *u = all ? calloc((size_t)n + 1, sizeof *u) : NULL;
    if (!u) {
        free(all);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
    }
    qsort(all, (size_t)n, sizeof *all, part_cmp);
    for (int i = 0; i < n && rc == 0; i++) {
        const struct ckpt_part *a = &all[i], *d = nd ? &all[u[nd - 1].first] : NULL;
        if (!d || strcmp(d->name, a->name) != 0) {
            u[nd].first = i;
            u[nd++].count = 1;
        } else if (d->type != a->type || d->ndim != a->ndim || d->dims[0] != a->dims[0] ||
                   d->dims[1] != a->dims[1]) {
            rc = ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                          "checkpoint: ranks disagree on the shape of %s", a->name);
        } else {
            u[nd - 1].count++;
        }
    }
    for (int i = 0; i < nd && rc == 0; i++)
        rc = check_tiling(all, &u[i], err, errlen);
    if (rc) {
        free(all);
        free(u);
        return rc;
    }
    *out = all;
    *dsets = u;
    *nd_out = nd;
    return 0;
}

/* Chunked, Fletcher-32, no fill: every byte is written once. In parallel the chunks' space is
 * allocated when the dataset is created, so that every rank knows where each chunk goes. */
static hid_t make_dcpl(const struct ckpt_part *d, int parallel)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0)
        return -1;
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    int64_t len = ldn_ckpt_chunk_len(d);
    if (len == 0)
        return dcpl;
    hsize_t chunk[2] = {(hsize_t)len, (hsize_t)d->dims[1]};
    if (H5Pset_chunk(dcpl, d->ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
        (parallel && H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0)) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

/* This rank's selection of d: the item's rows, or nothing. */
static int select_rows(const struct ckpt_part *d, const struct ldn_ckpt_item *it, hid_t fsp,
                       hid_t *msp)
{
    if (!it || it->rows == 0) {
        hsize_t one = 1;
        *msp = H5Screate_simple(1, &one, NULL);
        return *msp < 0 || H5Sselect_none(*msp) < 0 || H5Sselect_none(fsp) < 0 ? -1 : 0;
    }
    hsize_t start[2] = {(hsize_t)it->row0, 0}, count[2] = {(hsize_t)it->rows, (hsize_t)d->dims[1]};
    if (H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        return -1;
    if (d->ndim == 2) { /* memory: [rows, stride], the first dims[1] columns */
        hsize_t mdims[2] = {(hsize_t)it->rows, (hsize_t)it->stride}, z[2] = {0, 0};
        *msp = H5Screate_simple(2, mdims, NULL);
        return *msp < 0 || H5Sselect_hyperslab(*msp, H5S_SELECT_SET, z, NULL, count, NULL) < 0 ? -1
                                                                                               : 0;
    }
    /* 1-D: one element every `stride` */
    hsize_t mdim = (hsize_t)((it->rows - 1) * it->stride + 1), z = 0, st = (hsize_t)it->stride,
            cnt = (hsize_t)it->rows;
    *msp = H5Screate_simple(1, &mdim, NULL);
    return *msp < 0 || H5Sselect_hyperslab(*msp, H5S_SELECT_SET, &z, &st, &cnt, NULL) < 0 ? -1 : 0;
}

static int create_dataset(hid_t f, hid_t lcpl, const struct ckpt_part *d, int parallel,
                          const char *path, hid_t *ds, char *err, size_t errlen)
{
    hsize_t dims[2] = {(hsize_t)d->dims[0], (hsize_t)d->dims[1]};
    hid_t fsp = H5Screate_simple(d->ndim, dims, NULL), dcpl = make_dcpl(d, parallel);
    int rc = 0;
    if (fsp < 0 || dcpl < 0 ||
        (*ds = H5Dcreate2(f, d->name, file_type(d->type), fsp, lcpl, dcpl, H5P_DEFAULT)) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, path, "create %s", d->name);
    ldn_h5_close(&dcpl, H5Pclose);
    ldn_h5_close(&fsp, H5Sclose);
    return rc;
}

/* Write this rank's rows of d through HDF5 (collectively in parallel: every rank calls). */
static int write_rows(hid_t ds, hid_t dxpl, const struct ckpt_part *d,
                      const struct ldn_ckpt_item *it, const char *path, char *err, size_t errlen)
{
    hid_t fsp = H5Dget_space(ds), msp = H5I_INVALID_HID;
    int rc = 0;
    if (fsp < 0 || select_rows(d, it, fsp, &msp) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, path, "select rows of %s", d->name);
    else if (H5Dwrite(ds, mem_type(d->type), msp, fsp, dxpl, it && it->rows ? it->src : NULL) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, path, "write %s", d->name);
    ldn_h5_close(&msp, H5Sclose);
    ldn_h5_close(&fsp, H5Sclose);
    return rc;
}

static int write_root_attrs(hid_t f, const struct ldn_ckpt_meta *m, const char *metrics,
                            const char *created)
{
    int32_t version = LDN_CKPT_FORMAT_VERSION, servers = m->n_servers, workers = m->n_workers,
            features = m->features, round = m->round;
    double epoch = m->steps_per_epoch > 0 ? (double)m->step / (double)m->steps_per_epoch : 0;
    int rc = 0;
    rc |= ldn_h5_write_attr_str(f, "format", LDN_CKPT_FORMAT);
    rc |= ldn_h5_write_attr_scalar(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version);
    rc |= ldn_h5_write_attr_scalar(f, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &m->step);
    rc |= ldn_h5_write_attr_scalar(f, "epoch", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &epoch);
    rc |= ldn_h5_write_attr_scalar(f, "round", H5T_STD_I32LE, H5T_NATIVE_INT32, &round);
    rc |= ldn_h5_write_attr_scalar(f, "steps_per_epoch", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                   &m->steps_per_epoch);
    rc |= ldn_h5_write_attr_scalar(f, "total_steps", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                   &m->total_steps);
    rc |= ldn_h5_write_attr_scalar(f, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &m->seed);
    if (m->init_id)
        rc |= ldn_h5_write_attr_scalar(f, "init_id", H5T_STD_U64LE, H5T_NATIVE_UINT64, &m->init_id);
    if (m->lost_workers > 0) {
        int32_t lost = m->lost_workers;
        rc |= ldn_h5_write_attr_scalar(f, "lost_workers", H5T_STD_I32LE, H5T_NATIVE_INT32, &lost);
    }
    rc |= ldn_h5_write_attr_scalar(f, "servers", H5T_STD_I32LE, H5T_NATIVE_INT32, &servers);
    rc |= ldn_h5_write_attr_scalar(f, "workers", H5T_STD_I32LE, H5T_NATIVE_INT32, &workers);
    rc |= ldn_h5_write_attr_scalar(f, "features", H5T_STD_I32LE, H5T_NATIVE_INT32, &features);
    rc |= ldn_h5_write_attr_str(f, "config", m->config);
    rc |= ldn_h5_write_attr_str(f, "metrics", metrics);
    rc |= ldn_h5_write_attr_str(f, "created", created);
    rc |= ldn_h5_write_attr_str(f, "ladon_version", LDN_VERSION);
    return rc ? -1 : 0;
}

/* A string from rank 0 (*s replaced on the others; the caller frees *owned). */
static int bcast_str(MPI_Comm comm, int rank, const char **s, char **owned)
{
    long long n = rank == 0 ? (long long)strlen(*s) + 1 : 0;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm);
    char *buf = malloc((size_t)n);
    if (!buf)
        return LDN_ERR_NOMEM; /* n is the same everywhere: MPI_Abort is the caller's */
    if (rank == 0)
        memcpy(buf, *s, (size_t)n);
    MPI_Bcast(buf, (int)n, MPI_CHAR, 0, comm);
    *s = *owned = buf;
    return 0;
}

static int step_of_name(const char *name, long long *step)
{
    int len = 0;
    if (sscanf(name, "step-%lld.h5%n", step, &len) == 1 && name[len] == '\0')
        return 1;
    return 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Rank 0 before a write: the directory exists, leftovers of interrupted writes are gone. */
static int prepare_dir(const char *dir, char *err, size_t errlen)
{
    int rc = ldn_mkdir_p(dir, err, errlen);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint dir %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        long long s;
        if (n > 7 && strcmp(e->d_name + n - 7, ".h5.tmp") == 0 &&
            strncmp(e->d_name, "step-", 5) == 0 && sscanf(e->d_name, "step-%lld", &s) == 1) {
            char p[LDN_PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            LDN_WARN("checkpoint: removing %s, left by an interrupted write", p);
            unlink(p);
        }
    }
    closedir(d);
    return 0;
}

/* Rank 0 after a complete close: fsync, rename into place, point `latest`, prune. */
static int commit(const char *dir, const char *tmp, const char *final, int keep_last, char *err,
                  size_t errlen)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint %s: fsync: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, final) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint: rename %s -> %s: %s", tmp, final,
                        strerror(errno));
    if ((fd = open(dir, O_RDONLY)) >= 0) {
        fsync(fd);
        close(fd);
    }
    const char *base = strrchr(final, '/') ? strrchr(final, '/') + 1 : final;
    char latest[LDN_PATH_MAX + 16], text[LDN_PATH_MAX];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    int n = snprintf(text, sizeof text, "%s\n", base);
    int rc = ldn_write_file_atomic(latest, text, (size_t)n, err, errlen);
    if (rc)
        return rc;
    /* keep the newest keep_last */
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long long *steps = NULL;
    int ns = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        if (!step_of_name(e->d_name, &s))
            continue;
        if (ns == cap) {
            cap = cap ? 2 * cap : 16;
            long long *v = realloc(steps, sizeof *v * (size_t)cap);
            if (!v)
                break;
            steps = v;
        }
        steps[ns++] = s;
    }
    closedir(d);
    if (steps)
        qsort(steps, (size_t)ns, sizeof *steps, cmp_ll);
    for (int i = 0; i + keep_last < ns; i++) {
        char p[LDN_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/step-%010lld.h5", dir, steps[i]);
        if (strcmp(p, final) != 0 && unlink(p) == 0)
            LDN_INFO("checkpoint: removed %s (checkpoint.keep_last = %d)", p, keep_last);
    }
    free(steps);
    return 0;
}

/* LDN_FAULT names this hook, rank and step; its FILE field (or "") into once. */
static int fault_matches(const char *where, int rank, int64_t step, char *once, size_t len)
{
    const char *f = getenv("LDN_FAULT");
    char what[64], file[512] = "";
    int r;
    long long s;
    if (!f || sscanf(f, "%63[^:]:%d:%lld:%511s", what, &r, &s, file) < 3 ||
        strcmp(what, where) != 0 || r != rank || s != step)
        return 0;
    snprintf(once, len, "%s", file);
    return 1;
}

int ldn_ckpt_fault_armed(const char *where, int rank, int64_t step)
{
    char once[512];
    return fault_matches(where, rank, step, once, sizeof once);
}

void ldn_ckpt_fault(const char *where, int rank, int64_t step)
{
    char once[512];
    if (fault_matches(where, rank, step, once, sizeof once)) {
        const char *f = getenv("LDN_FAULT");
        const long long s = (long long)step;
        if (once[0]) { /* fire once: the first process to create the file */
            int fd = open(once, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd < 0)
                return;
            close(fd);
        }
        LDN_WARN("LDN_FAULT=%s: rank %d kills itself at step %lld", f, rank, s);
        raise(SIGKILL);
    }
}

/* Keep the first failure: rc, or r with why copied into err. */
static int keep_first(int rc, int r, const char *why, char *err, size_t errlen)
{
    if (r && rc == 0)
        snprintf(err, errlen, "%s", why);
    return rc ? rc : r;
}

static int all_ok(MPI_Comm comm, int rc)
{
    int any = rc;
    if (comm != MPI_COMM_NULL)
        MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MIN, comm);
    return any;
}

/* One checkpoint write in progress: what the steps of ldn_ckpt_write share. */
struct ckpt_writer {
    MPI_Comm comm;
    int parallel, rank;
    const struct ldn_ckpt_meta *meta;
    const struct ldn_ckpt_items *mine;
    char tmp[LDN_PATH_MAX + 48], final[LDN_PATH_MAX + 40];
    struct ckpt_part *parts; /* everyone's parts, by dataset (gather_parts) */
    struct ckpt_dset *dsets;
    int nd;
    hid_t *dsid;     /* [nd] open datasets */
    uint64_t **addr; /* [nd] chunk addresses (parallel) */
    char stamp[32];
    const char *metrics, *created; /* rank 0's, on every rank */
    char *own_metrics, *own_created;
    struct ldn_h5quiet q;
    hid_t fapl, lcpl, dxpl, f;
    double t_open, t_data, t_chunks, t_close;
};

static void writer_free(struct ckpt_writer *w)
{
    free(w->own_metrics);
    free(w->own_created);
    if (w->addr)
        for (int i = 0; i < w->nd; i++)
            free(w->addr[i]);
    free(w->addr);
    free(w->dsid);
    free(w->parts);
    free(w->dsets);
    w->own_metrics = w->own_created = NULL;
    w->addr = NULL;
    w->dsid = NULL;
    w->parts = NULL;
    w->dsets = NULL;
}

/* Step 1: the directory (rank 0), the dataset list and the root attributes (everyone). */
static int writer_begin(struct ckpt_writer *w, const char *dir, char *err, size_t errlen)
{
    int rc = w->rank == 0 ? prepare_dir(dir, err, errlen) : 0, any = all_ok(w->comm, rc);
    if (any)
        return rc ? rc
                  : ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint: rank 0 failed to prepare %s",
                             dir);
    if ((rc = gather_parts(w->comm, w->mine, &w->parts, &w->dsets, &w->nd, err, errlen)))
        return rc;
    time_t now = time(NULL);
    struct tm tm;
    strftime(w->stamp, sizeof w->stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    w->metrics = w->meta->metrics ? w->meta->metrics : "";
    w->created = w->stamp;
    w->dsid = malloc(sizeof *w->dsid * ((size_t)w->nd + 1));
    w->addr = calloc((size_t)w->nd + 1, sizeof *w->addr);
    if (!w->dsid || !w->addr ||
        (w->parallel && (bcast_str(w->comm, w->rank, &w->metrics, &w->own_metrics) ||
                         bcast_str(w->comm, w->rank, &w->created, &w->own_created)))) {
        writer_free(w);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
    }
    return 0;
}

/* Step 2a: property lists, the file (collectively in parallel) and its root attributes. */
static int writer_create_file(struct ckpt_writer *w, char *err, size_t errlen)
{
    int rc = 0;
    w->fapl = H5Pcreate(H5P_FILE_ACCESS);
    w->lcpl = H5Pcreate(H5P_LINK_CREATE);
    w->dxpl = H5Pcreate(H5P_DATASET_XFER);
    w->f = H5I_INVALID_HID;
    if (w->fapl < 0 || w->lcpl < 0 || w->dxpl < 0 ||
        H5Pset_create_intermediate_group(w->lcpl, 1) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, w->tmp, "property lists");
    if (rc == 0 && w->parallel &&
        (H5Pset_fapl_mpio(w->fapl, w->comm, MPI_INFO_NULL) < 0 ||
         H5Pset_all_coll_metadata_ops(w->fapl, 1) < 0 ||
         H5Pset_coll_metadata_write(w->fapl, 1) < 0 ||
         H5Pset_dxpl_mpio(w->dxpl, H5FD_MPIO_COLLECTIVE) < 0))
        rc = ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, w->tmp, "MPI-IO properties");
    w->t_open = ldn_clock_now();
    if (rc == 0 && (w->f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, w->fapl)) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, w->tmp, "create");
    if (rc == 0 && write_root_attrs(w->f, w->meta, w->metrics, w->created) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, w->tmp, "root attributes");
    return rc;
}

/* Step 2b: every dataset, and in parallel where HDF5 allocated its chunks. Every rank goes
 * through every dataset (the calls are collective) even after a failure of its own (rc), so
 * that no rank waits for one that gave up. Returns the first failure; *layout_bad when the
 * chunks are not laid out as ldn_ckpt_write_chunks expects. */
static int writer_create_datasets(struct ckpt_writer *w, int rc, int *layout_bad, char *err,
                                  size_t errlen)
{
    *layout_bad = 0;
    for (int i = 0; i < w->nd; i++) {
        const struct ckpt_part *d = &w->parts[w->dsets[i].first];
        char why[LDN_ERRLEN];
        w->dsid[i] = H5I_INVALID_HID;
        if (w->f < 0)
            continue;
        rc = keep_first(
            rc, create_dataset(w->f, w->lcpl, d, w->parallel, w->tmp, &w->dsid[i], why, sizeof why),
            why, err, errlen);
        if (w->parallel &&
            !(w->addr[i] = malloc(sizeof **w->addr * ((size_t)ldn_ckpt_n_chunks(d) + 1))))
            rc = rc ? rc : ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
        if (w->parallel && w->dsid[i] >= 0 && w->addr[i])
            *layout_bad |= ldn_ckpt_chunk_addrs(w->dsid[i], d, w->addr[i]);
    }
    return rc;
}

/* Step 2c, serial or when the layout is not the expected one: this rank's rows of every
 * dataset through HDF5 (its collective filter path in parallel). Returns the first failure. */
static int writer_write_rows(struct ckpt_writer *w, int rc, char *err, size_t errlen)
{
    for (int i = 0; i < w->nd && w->f >= 0; i++) {
        const struct ckpt_part *d = &w->parts[w->dsets[i].first];
        const struct ldn_ckpt_item *it = NULL;
        for (int k = 0; k < w->mine->n && !it; k++)
            if (strcmp(w->mine->v[k].name, d->name) == 0)
                it = &w->mine->v[k];
        char why[LDN_ERRLEN];
        if (w->dsid[i] >= 0)
            rc = keep_first(rc, write_rows(w->dsid[i], w->dxpl, d, it, w->tmp, why, sizeof why),
                            why, err, errlen);
    }
    return rc;
}

/* After step 3: close the file and the property lists, free what the steps allocated. */
static int writer_close(struct ckpt_writer *w, int rc, char *err, size_t errlen)
{
    if (w->f >= 0 && H5Fclose(w->f) < 0 && rc == 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, w->tmp, "close");
    ldn_h5_close(&w->dxpl, H5Pclose);
    ldn_h5_close(&w->lcpl, H5Pclose);
    ldn_h5_close(&w->fapl, H5Pclose);
    ldn_h5_restore(&w->q);
    writer_free(w);
    return rc;
}

/* Step 4: rank 0 puts the file in place once every rank has succeeded (rc is this rank's
 * result); everyone learns the outcome. */
static int writer_commit(struct ckpt_writer *w, const char *dir, int rc, int keep_last,
                         char *path_out, size_t path_len, char *err, size_t errlen)
{
    int any = all_ok(w->comm, rc);
    w->t_close = ldn_clock_now();
    if (any == 0 && w->rank == 0)
        rc = commit(dir, w->tmp, w->final, keep_last, err, errlen);
    else if (any != 0 && w->rank == 0)
        unlink(w->tmp);
    if (w->rank == 0)
        LDN_DEBUG("checkpoint %s: create + %d datasets %.3f s, chunks written and synced %.3f s, "
                  "close %.3f s, commit (fsync, rename, latest) %.3f s",
                  w->final, w->nd, w->t_data - w->t_open, w->t_chunks - w->t_data,
                  w->t_close - w->t_chunks, ldn_clock_now() - w->t_close);
    int fin = rc ? rc : any;
    if (w->parallel)
        MPI_Bcast(&fin, 1, MPI_INT, 0, w->comm);
    if (fin == 0) {
        snprintf(path_out, path_len, "%s", w->final);
        ldn_ckpt_fault("kill-after-ckpt", w->rank, w->meta->step);
        return 0;
    }
    if (rc == 0)
        rc = ldn_fail(err, errlen, fin,
                      "checkpoint %s: another rank failed to write its part (see its message)",
                      w->tmp);
    return rc;
}

int ldn_ckpt_write(MPI_Comm comm, const char *dir, const struct ldn_ckpt_meta *meta,
                   const struct ldn_ckpt_items *mine, int keep_last, char *path_out,
                   size_t path_len, char *err, size_t errlen)
{
    struct ckpt_writer w = {
        .comm = comm, .parallel = comm != MPI_COMM_NULL, .meta = meta, .mine = mine};
    if (w.parallel)
        MPI_Comm_rank(comm, &w.rank);
    snprintf(w.final, sizeof w.final, "%s/step-%010lld.h5", dir, (long long)meta->step);
    snprintf(w.tmp, sizeof w.tmp, "%s.tmp", w.final);
    if (strlen(w.final) >= path_len || strlen(w.final) >= LDN_PATH_MAX)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint path %s is too long", w.final);

    /* 1. the directory, the dataset list and the root attributes */
    int rc = writer_begin(&w, dir, err, errlen), layout_bad = 0;
    if (rc)
        return rc;
    /* 2. the file and its datasets, collectively. In parallel the chunks are written by
     * ladon (step 3) where HDF5 allocated them; when HDF5 did not lay them out as expected,
     * everything goes through HDF5's collective filter path instead. */
    ldn_h5_quiet(&w.q);
    rc = writer_create_file(&w, err, errlen);
    rc = writer_create_datasets(&w, rc, &layout_bad, err, errlen);
    const int direct = w.parallel && !layout_bad && w.f >= 0;
    if (w.parallel && layout_bad && w.rank == 0)
        LDN_WARN("checkpoint %s: HDF5 did not allocate the chunks as expected; writing through "
                 "HDF5's collective filter path (slower)",
                 w.tmp);
    if (!direct)
        rc = writer_write_rows(&w, rc, err, errlen);
    for (int i = 0; i < w.nd; i++)
        ldn_h5_close(&w.dsid[i], H5Dclose);
    w.t_data = ldn_clock_now();
    ldn_ckpt_fault("kill-in-ckpt", w.rank, meta->step);
    /* 3. the chunks, each written once by one rank where HDF5 allocated it, synced by every
     * rank; before HDF5 closes the file, so that its close finds the data already on disk */
    int any = all_ok(comm, rc); /* collective: every rank, direct or not */
    if (direct && any == 0)
        rc = ldn_ckpt_write_chunks(comm, w.tmp, w.parts, w.dsets, w.nd, w.addr, mine, err, errlen);
    w.t_chunks = ldn_clock_now();
    rc = writer_close(&w, rc, err, errlen);
    /* 4. rank 0 puts it in place once every rank has succeeded */
    return writer_commit(&w, dir, rc, keep_last, path_out, path_len, err, errlen);
}

/* ---------------------------------------------------------------- reading */

void ldn_ckpt_close(struct ldn_ckpt *ck)
{
    ldn_h5_close(&ck->f, H5Fclose);
    free(ck->config);
    free(ck->metrics);
    free(ck->created);
    free(ck->ladon_version);
    ck->config = ck->metrics = ck->created = ck->ladon_version = NULL;
}

/* Root attribute `name` as a number in [lo, hi] (hi bounds what the int fields may hold). */
static int need_num(struct ldn_ckpt *ck, const char *name, double lo, double hi, double *v,
                    char *err, size_t errlen)
{
    int rc = ldn_h5_attr_num(ck->f, name, 0, KIND, ck->path, v, err, errlen);
    if (rc == 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: root attribute %s is missing",
                        ck->path, name);
    if (rc == 0 && !(*v >= lo && *v <= hi))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "checkpoint %s: root attribute %s must be in [%.17g, %.17g], got %g",
                        ck->path, name, lo, hi, *v);
    return rc;
}

static int need_str(struct ldn_ckpt *ck, const char *name, char **out, char *err, size_t errlen)
{
    int rc = ldn_h5_attr_str(ck->f, name, KIND, ck->path, out, err, errlen);
    if (rc == 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: root attribute %s is missing",
                        ck->path, name);
    return rc;
}

/* A uint64 root attribute, read exactly (a double cannot hold every uint64). */
static int read_u64(struct ldn_ckpt *ck, const char *name, uint64_t *out, char *err, size_t errlen)
{
    int rc = 0;
    hid_t a = H5Aopen(ck->f, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_UINT64, out) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path, "read attribute %s", name);
    ldn_h5_close(&a, H5Aclose);
    return rc;
}

int ldn_ckpt_open(const char *path, struct ldn_ckpt *ck, char *err, size_t errlen)
{
    memset(ck, 0, sizeof *ck);
    ck->f = H5I_INVALID_HID;
    if (strlen(path) >= sizeof ck->path)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint path is too long: %s", path);
    strcpy(ck->path, path);
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    char *format = NULL;
    double v[9];
    int rc = ldn_h5_open_ro(KIND, path, &ck->f, err, errlen);
    if (rc)
        goto done;
    rc = ldn_h5_attr_str(ck->f, "format", KIND, path, &format, err, errlen);
    if (rc == 1 || (rc == 0 && strcmp(format, LDN_CKPT_FORMAT) != 0)) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "checkpoint %s: not a ladon checkpoint (format attribute %s)", path,
                      rc == 1 ? "missing" : "differs");
        goto done;
    }
    if (rc || (rc = need_num(ck, "format_version", 1, 1e6, &v[0], err, errlen)))
        goto done;
    if (v[0] != LDN_CKPT_FORMAT_VERSION) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "checkpoint %s: format_version %g, this ladon reads version %d", path, v[0],
                      LDN_CKPT_FORMAT_VERSION);
        goto done;
    }
    ck->format_version = (int)v[0];
    /* steps as update counts (2^53), ranks and rounds 1e6, features as task files (2^24) */
    const double steps = (double)LDN_CKPT_MAX_COUNT, ranks = 1e6;
    if ((rc = need_num(ck, "step", 0, steps, &v[1], err, errlen)) ||
        (rc = need_num(ck, "steps_per_epoch", 1, steps, &v[2], err, errlen)) ||
        (rc = need_num(ck, "total_steps", 0, steps, &v[3], err, errlen)) ||
        (rc = need_num(ck, "servers", 1, ranks, &v[4], err, errlen)) ||
        (rc = need_num(ck, "workers", 0, ranks, &v[5], err, errlen)) ||
        (rc = need_num(ck, "features", 1, 1 << 24, &v[6], err, errlen)) ||
        (rc = need_num(ck, "seed", 0, 1.9e19, &v[7], err, errlen)) ||
        (rc = need_num(ck, "round", 0, 1e6, &v[8], err, errlen)) ||
        (rc = need_str(ck, "config", &ck->config, err, errlen)) ||
        (rc = need_str(ck, "metrics", &ck->metrics, err, errlen)) ||
        (rc = need_str(ck, "created", &ck->created, err, errlen)) ||
        (rc = need_str(ck, "ladon_version", &ck->ladon_version, err, errlen)))
        goto done;
    ck->step = (int64_t)v[1];
    ck->steps_per_epoch = (int64_t)v[2];
    ck->total_steps = (int64_t)v[3];
    ck->n_servers = (int)v[4];
    ck->n_workers = (int)v[5];
    ck->features = (int)v[6];
    ck->round = (int)v[8];
    ck->epoch = (double)ck->step / (double)ck->steps_per_epoch;
    rc = read_u64(ck, "seed", &ck->seed, err, errlen);
    if (rc == 0 && H5Aexists(ck->f, "init_id") > 0) /* absent before ladon recorded it */
        rc = read_u64(ck, "init_id", &ck->init_id, err, errlen);
    if (rc == 0 && H5Aexists(ck->f, "lost_workers") > 0) { /* only after a loss */
        double lost;
        if ((rc = need_num(ck, "lost_workers", 1, v[5], &lost, err, errlen)) == 0)
            ck->lost_workers = (int)lost;
    }
done:
    free(format);
    ldn_h5_restore(&q);
    if (rc)
        ldn_ckpt_close(ck);
    return rc;
}

/* 1 when dataset `name` exists, 0 when some link on the way or the dataset is absent, -1 when
 * a lookup fails (a damaged group index; HDF5's reason stays on its error stack). */
static int lookup(const struct ldn_ckpt *ck, const char *name)
{
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    char part[LDN_CKPT_NAME_MAX];
    int found = 1;
    for (const char *p = strchr(name + 1, '/');; p = strchr(p + 1, '/')) {
        size_t n = p ? (size_t)(p - name) : strlen(name);
        if (n >= sizeof part) {
            found = 0;
            break;
        }
        memcpy(part, name, n);
        part[n] = '\0';
        htri_t ex = H5Lexists(ck->f, part, H5P_DEFAULT);
        if (ex <= 0) {
            found = ex < 0 ? -1 : 0;
            break;
        }
        if (!p)
            break;
    }
    if (found > 0) {
        H5O_info_t info;
        if (H5Oget_info_by_name(ck->f, name, &info, H5P_DEFAULT) < 0)
            found = -1;
        else
            found = info.type == H5O_TYPE_DATASET;
    }
    ldn_h5_restore(&q);
    return found;
}

int ldn_ckpt_has(const struct ldn_ckpt *ck, const char *name)
{
    return lookup(ck, name) > 0;
}

struct walk {
    int (*fn)(const char *name, void *ud, char *err, size_t errlen);
    void *ud;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
};

static herr_t walk_cb(hid_t obj, const char *name, const H5O_info_t *info, void *ud)
{
    (void)obj;
    struct walk *w = ud;
    if (info->type != H5O_TYPE_DATASET || !w->fn)
        return 0;
    char full[LDN_CKPT_NAME_MAX];
    if ((size_t)snprintf(full, sizeof full, "/%s", name) >= sizeof full)
        w->rc = ldn_fail(w->err, w->errlen, LDN_ERR_FORMAT,
                         "checkpoint %s: a dataset name is longer than %d bytes", w->path,
                         LDN_CKPT_NAME_MAX - 1);
    else
        w->rc = w->fn(full, w->ud, w->err, w->errlen);
    return w->rc ? -1 : 0;
}

int ldn_ckpt_walk(const struct ldn_ckpt *ck,
                  int (*fn)(const char *name, void *ud, char *err, size_t errlen), void *ud,
                  char *err, size_t errlen)
{
    struct walk w = {.fn = fn, .ud = ud, .path = ck->path, .err = err, .errlen = errlen};
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
#if H5_VERSION_GE(1, 12, 0)
    herr_t v = H5Ovisit3(ck->f, H5_INDEX_NAME, H5_ITER_INC, walk_cb, &w, H5O_INFO_BASIC);
#else
    herr_t v = H5Ovisit(ck->f, H5_INDEX_NAME, H5_ITER_INC, walk_cb, &w);
#endif
    if (w.rc == 0 && v < 0)
        w.rc = ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path,
                           "cannot walk its objects (damaged file?)");
    ldn_h5_restore(&q);
    return w.rc;
}

static hid_t open_dataset(const struct ldn_ckpt *ck, const char *name, char *err, size_t errlen)
{
    int found = lookup(ck, name);
    if (found < 0) {
        ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path,
                    "cannot look up %s (damaged file?)", name);
        return -1;
    }
    if (!found) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: dataset %s is missing", ck->path,
                 name);
        return -1;
    }
    hid_t d = H5Dopen2(ck->f, name, H5P_DEFAULT);
    if (d < 0)
        ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path, "open %s", name);
    return d;
}

static const char *type_name(int type)
{
    return type == LDN_CKPT_F32 ? "float32" : type == LDN_CKPT_I64 ? "int64" : "uint64";
}

static void dims_str(char *buf, size_t len, int ndim, const int64_t d[2])
{
    if (ndim == 2)
        snprintf(buf, len, "[%lld, %lld]", (long long)d[0], (long long)d[1]);
    else
        snprintf(buf, len, "[%lld]", (long long)d[0]);
}

/* The shape of open dataset d (`name`): *ndim 1 or 2 and dims. */
static int shape_of(const struct ldn_ckpt *ck, const char *name, hid_t d, int *ndim,
                    int64_t dims[2], char *err, size_t errlen)
{
    hid_t sp = H5Dget_space(d);
    hsize_t hd[2] = {0, 1};
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1, rc = 0;
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(sp, hd, NULL) < 0)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: %s: expected 1 or 2 dimensions",
                      ck->path, name);
    if (rc == 0) {
        *ndim = nd;
        dims[0] = (int64_t)hd[0];
        dims[1] = nd == 2 ? (int64_t)hd[1] : 1;
    }
    ldn_h5_close(&sp, H5Sclose);
    return rc;
}

/* Has open dataset d (`name`) ndim dimensions of dims (dims[1] ignored for ndim 1)? */
static int check_shape_of(const struct ldn_ckpt *ck, const char *name, hid_t d, int ndim,
                          const int64_t dims[2], char *err, size_t errlen)
{
    int nd;
    int64_t got[2];
    int rc = shape_of(ck, name, d, &nd, got, err, errlen);
    if (rc)
        return rc;
    int64_t want1 = ndim == 2 ? dims[1] : 1;
    if (nd != ndim || got[0] != dims[0] || got[1] != want1) {
        char a[64], b[64];
        int64_t w[2] = {dims[0], want1};
        dims_str(a, sizeof a, nd, got);
        dims_str(b, sizeof b, ndim, w);
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: %s has shape %s, expected %s",
                        ck->path, name, a, b);
    }
    return 0;
}

int ldn_ckpt_shape(const struct ldn_ckpt *ck, const char *name, int *ndim, int64_t dims[2],
                   char *err, size_t errlen)
{
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    hid_t d = open_dataset(ck, name, err, errlen);
    int rc = d < 0 ? LDN_ERR_FORMAT : shape_of(ck, name, d, ndim, dims, err, errlen);
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_restore(&q);
    return rc;
}

int ldn_ckpt_check_shape(const struct ldn_ckpt *ck, const char *name, int ndim,
                         const int64_t dims[2], char *err, size_t errlen)
{
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    hid_t d = open_dataset(ck, name, err, errlen);
    int rc = d < 0 ? LDN_ERR_FORMAT : check_shape_of(ck, name, d, ndim, dims, err, errlen);
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_restore(&q);
    return rc;
}

/* Rows [row0, row0 + rows) of dataset d straight from its chunks: each chunk read raw, its
 * Fletcher-32 verified here and the rows copied out (what HDF5's filter path does, without its
 * per-element machinery). Returns 0, 1 when d is not laid out for this (the caller reads
 * through HDF5 instead), or a status with err set. */
static int read_chunks(const struct ldn_ckpt *ck, const char *name, hid_t d, hid_t ft, int type,
                       const struct ckpt_part *de, int64_t row0, int64_t rows, char *dst,
                       int64_t stride, char *err, size_t errlen)
{
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t cdims[2] = {0, 0};
    unsigned flags = 0, cd[4];
    size_t ncd = 4;
    char fname[32];
    int ok = dcpl >= 0 && H5Tequal(ft, mem_type(type)) > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
             H5Pget_chunk(dcpl, de->ndim, cdims) == de->ndim && H5Pget_nfilters(dcpl) == 1 &&
             H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof fname, fname, NULL) ==
                 H5Z_FILTER_FLETCHER32 &&
             (de->ndim == 1 || cdims[1] == (hsize_t)de->dims[1]) && cdims[0] > 0 &&
             cdims[0] <= (hsize_t)de->dims[0]; /* the chunk buffer is never above the dataset */
    ldn_h5_close(&dcpl, H5Pclose);
    if (!ok)
        return 1;
    const int64_t len = (int64_t)cdims[0], el = ldn_ckpt_elsize(type), rb = de->dims[1] * el;
    const int64_t cbytes = len * rb;
    unsigned char *buf = malloc((size_t)cbytes + 4);
    if (!buf)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
    int rc = 0;
    for (int64_t c = row0 / len; rc == 0 && c * len < row0 + rows; c++) {
        hsize_t off[2] = {(hsize_t)(c * len), 0}, size = 0;
        uint32_t mask = 0;
        if (H5Dget_chunk_storage_size(d, off, &size) < 0 || size != (hsize_t)cbytes + 4) {
            rc = 1; /* not as written by ladon: let HDF5 read it (and name what is wrong) */
            break;
        }
        if (H5Dread_chunk(d, H5P_DEFAULT, off, &mask, buf) < 0) {
            char h5[256];
            ldn_h5_errmsg(h5, sizeof h5);
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: read %s failed (damaged or truncated file?): %s",
                          ck->path, name, h5[0] ? h5 : "HDF5 error");
            break;
        }
        uint32_t want = (uint32_t)buf[cbytes] | (uint32_t)buf[cbytes + 1] << 8 |
                        (uint32_t)buf[cbytes + 2] << 16 | (uint32_t)buf[cbytes + 3] << 24;
        if (mask != 0) {
            rc = 1;
            break;
        }
        if (ldn_h5_fletcher32(buf, (size_t)cbytes) != want) {
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: %s: checksum mismatch (Fletcher-32) in rows %lld..%lld: "
                          "the file is damaged",
                          ck->path, name, (long long)(c * len),
                          (long long)((c + 1) * len < de->dims[0] ? (c + 1) * len : de->dims[0]) -
                              1);
            break;
        }
        int64_t a = c * len > row0 ? c * len : row0;
        int64_t b = (c + 1) * len < row0 + rows ? (c + 1) * len : row0 + rows;
        ldn_ckpt_copy_rows(dst + (a - row0) * stride * el, stride * el, buf + (a - c * len) * rb,
                           rb, b - a, rb);
    }
    free(buf);
    return rc;
}

/* The rows just read into dst hold no NaN or infinity: a checkpoint never does (a diverged
 * run's weights are refused, not resumed). Names the first bad element. */
static int check_finite(const struct ldn_ckpt *ck, const char *name, int ndim, int64_t cols,
                        int64_t row0, int64_t rows, const void *dst, int64_t stride, char *err,
                        size_t errlen)
{
    const float *p = dst;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float x = p[r * stride + c];
            if (isfinite(x))
                continue;
            const char *what = isnan(x) ? "NaN" : x > 0 ? "+infinity" : "-infinity";
            if (ndim == 2)
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "checkpoint %s: %s[%lld, %lld] is %s (a checkpoint holds only "
                                "finite values)",
                                ck->path, name, (long long)(row0 + r), (long long)c, what);
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "checkpoint %s: %s[%lld] is %s (a checkpoint holds only finite values)",
                            ck->path, name, (long long)(row0 + r), what);
        }
    return 0;
}

int ldn_ckpt_read(const struct ldn_ckpt *ck, const char *name, int type, int ndim,
                  const int64_t dims[2], int64_t row0, int64_t rows, void *dst, int64_t stride,
                  char *err, size_t errlen)
{
    const int64_t want1 = ndim == 2 ? dims[1] : 1;
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    hid_t d = open_dataset(ck, name, err, errlen), ft = H5I_INVALID_HID, fsp = H5I_INVALID_HID,
          msp = H5I_INVALID_HID;
    int rc = d < 0 ? LDN_ERR_FORMAT : check_shape_of(ck, name, d, ndim, dims, err, errlen);
    if (rc == 0 && (row0 < 0 || rows < 0 || row0 + rows > dims[0]))
        rc = ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint %s: rows [%lld, %lld) outside %s",
                      ck->path, (long long)row0, (long long)(row0 + rows), name);
    const int any = rc == 0 && rows > 0;
    if (any) {
        ft = H5Dget_type(d);
        fsp = H5Dget_space(d);
        H5T_class_t cls = H5Tget_class(ft);
        int ok = type == LDN_CKPT_F32
                     ? cls == H5T_FLOAT && H5Tget_size(ft) == 4
                     : cls == H5T_INTEGER && H5Tget_size(ft) == 8 &&
                           H5Tget_sign(ft) == (type == LDN_CKPT_I64 ? H5T_SGN_2 : H5T_SGN_NONE);
        if (!ok)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: %s is not %s", ck->path,
                          name, type_name(type));
    }
    int via_hdf5 = 0; /* the chunks are not as ladon writes them: HDF5 reads and checks */
    if (any && rc == 0) {
        struct ldn_ckpt_item it = {.ndim = ndim, .row0 = row0, .rows = rows, .stride = stride};
        struct ckpt_part de = {.type = type, .ndim = ndim, .dims = {dims[0], want1}};
        rc = read_chunks(ck, name, d, ft, type, &de, row0, rows, dst, stride, err, errlen);
        if (rc == 1) {
            via_hdf5 = 1;
            rc = select_rows(&de, &it, fsp, &msp) < 0
                     ? ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, ck->path, "select %s", name)
                     : 0;
        }
    }
    if (rc == 0 && via_hdf5 && H5Dread(d, mem_type(type), msp, fsp, H5P_DEFAULT, dst) < 0) {
        char h5[256];
        ldn_h5_errmsg(h5, sizeof h5);
        if (strstr(h5, "Fletcher32") || strstr(h5, "checksum"))
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: %s: checksum mismatch (Fletcher-32): the file is "
                          "damaged",
                          ck->path, name);
        else
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: read %s failed (damaged or truncated file?): %s",
                          ck->path, name, h5[0] ? h5 : "HDF5 error");
    }
    ldn_h5_close(&msp, H5Sclose);
    ldn_h5_close(&fsp, H5Sclose);
    ldn_h5_close(&ft, H5Tclose);
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_restore(&q);
    if (any && rc == 0 && type == LDN_CKPT_F32)
        rc = check_finite(ck, name, ndim, want1, row0, rows, dst, stride, err, errlen);
    return rc;
}

int ldn_ckpt_read_counts(const struct ldn_ckpt *ck, const char *name, const int64_t dims[2],
                         int64_t row0, int64_t rows, int64_t *dst, char *err, size_t errlen)
{
    int rc = ldn_ckpt_read(ck, name, LDN_CKPT_I64, 1, dims, row0, rows, dst, 1, err, errlen);
    for (int64_t i = 0; i < rows && rc == 0; i++)
        if (dst[i] < 0 || dst[i] > LDN_CKPT_MAX_COUNT)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: %s[%lld] is %lld: an update count must be in [0, 2^53]",
                          ck->path, name, (long long)(row0 + i), (long long)dst[i]);
    return rc;
}

int ldn_ckpt_read_net(const struct ldn_ckpt *ck, const struct ldn_nn *net, const char *prefix,
                      float *base, int64_t lo, int64_t hi, char *err, size_t errlen)
{
    for (int i = 0; i < net->n_layers; i++) {
        const struct ldn_layer *ly = &net->layers[i];
        int64_t a, r0, rows;
        if (!layer_rows(ly, lo, hi, &a, &r0, &rows))
            continue;
        char name[LDN_CKPT_NAME_MAX];
        int64_t dw[2] = {ly->out_dim, ly->in_dim}, db[2] = {ly->out_dim, 1};
        int rc;
        snprintf(name, sizeof name, "%s/%d/weight", prefix, i);
        if ((rc = ldn_ckpt_read(ck, name, LDN_CKPT_F32, 2, dw, r0, rows, base + (a - lo),
                                ly->row_len, err, errlen)))
            return rc;
        snprintf(name, sizeof name, "%s/%d/bias", prefix, i);
        if ((rc = ldn_ckpt_read(ck, name, LDN_CKPT_F32, 1, db, r0, rows,
                                base + (a - lo) + ly->in_dim, ly->row_len, err, errlen)))
            return rc;
    }
    return 0;
}

int ldn_ckpt_resolve(const char *arg, const char *dir, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    char d[LDN_PATH_MAX];
    struct stat st;
    if (strcmp(arg, "latest") == 0)
        snprintf(d, sizeof d, "%s", dir);
    else if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* a run directory (no latest of its own, a checkpoints/ inside) means its checkpoints */
        char lp[LDN_PATH_MAX + 16];
        snprintf(lp, sizeof lp, "%s/latest", arg);
        int n = snprintf(d, sizeof d, "%s/checkpoints", arg);
        if (n < 0 || (size_t)n >= sizeof d || stat(lp, &st) == 0 || stat(d, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            snprintf(d, sizeof d, "%s", arg);
    } else {
        if (strlen(arg) >= outlen)
            return ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint path is too long: %s", arg);
        snprintf(out, outlen, "%s", arg);
        return 0;
    }
    char lp[LDN_PATH_MAX + 16], name[LDN_PATH_MAX];
    snprintf(lp, sizeof lp, "%s/latest", d);
    if (stat(lp, &st) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint: %s: %s (no checkpoint written yet?)",
                        lp, strerror(errno));
    FILE *f = ldn_fopen_regular("checkpoint pointer", lp, err, errlen);
    if (!f)
        return LDN_ERR_IO;
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    long long s;
    if (!ok || !step_of_name(name, &s))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "checkpoint: %s does not name a checkpoint file (step-N.h5)", lp);
    int n = snprintf(out, outlen, "%s/%s", d, name);
    if (n < 0 || (size_t)n >= outlen)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint path is too long: %s/%s", d, name);
    return 0;
}
