/* The model of an exported file, for prediction (qmodel.h). */
#include "qmodel.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

struct ldn_qmodel *ldn_qmodel_new(int features, enum ldn_activation act, int n_heads)
{
    struct ldn_qmodel *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->features = features;
    m->act = act;
    m->n_heads = n_heads;
    m->heads = calloc((size_t)(n_heads > 0 ? n_heads : 1), sizeof *m->heads);
    m->classes = calloc((size_t)(n_heads > 0 ? n_heads : 1), sizeof *m->classes);
    if (!m->heads || !m->classes)
        ldn_qmodel_destroy(&m);
    return m;
}

int ldn_qnet_alloc(struct ldn_qnet *net, int n)
{
    net->layers = calloc((size_t)(n > 0 ? n : 1), sizeof *net->layers);
    net->n_layers = net->layers ? n : 0;
    return net->layers ? 0 : LDN_ERR_NOMEM;
}

static void qnet_free(struct ldn_qnet *net)
{
    for (int i = 0; i < net->n_layers; i++) {
        ldn_qmat_free(&net->layers[i].w);
        free(net->layers[i].bias);
    }
    free(net->layers);
    net->layers = NULL;
    net->n_layers = 0;
}

void ldn_qmodel_destroy(struct ldn_qmodel **pm)
{
    if (!pm || !*pm)
        return;
    struct ldn_qmodel *m = *pm;
    qnet_free(&m->trunk);
    if (m->heads)
        for (int t = 0; t < m->n_heads; t++)
            qnet_free(&m->heads[t]);
    free(m->heads);
    free(m->classes);
    free(m->buf[0]);
    free(m->buf[1]);
    free(m->logits);
    free(m);
    *pm = NULL;
}

/* Row stride of the transposed activations: the batch rounded up to 16 floats, plus 16 when
 * that is a multiple of 4 KiB. */
static int64_t ld_for(int batch)
{
    int64_t ld = ((int64_t)batch + 15) / 16 * 16;
    return ld % 1024 == 0 ? ld + 16 : ld;
}

/* The net's layers chain from in_dim; its output width into *out and the widest layer into
 * *wide. */
static int chain(const struct ldn_qnet *net, const char *what, int in_dim, int *out, int *wide,
                 char *err, size_t errlen)
{
    if (net->n_layers < 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s has no layers", what);
    for (int i = 0; i < net->n_layers; i++) {
        const struct ldn_qmat *w = &net->layers[i].w;
        if (w->cols != in_dim)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "%s layer %d takes %d inputs, the layer before gives %d", what, i,
                            w->cols, in_dim);
        in_dim = w->rows;
        *wide = w->rows > *wide ? w->rows : *wide;
    }
    *out = in_dim;
    return 0;
}

int ldn_qmodel_finish(struct ldn_qmodel *m, int max_batch, char *err, size_t errlen)
{
    int h = 0, wide = m->features, maxc = 1, c = 0, rc;
    if ((rc = chain(&m->trunk, "trunk", m->features, &h, &wide, err, errlen)))
        return rc;
    for (int t = 0; t < m->n_heads; t++) {
        char what[32];
        snprintf(what, sizeof what, "head %d", t);
        if ((rc = chain(&m->heads[t], what, h, &c, &wide, err, errlen)))
            return rc;
        m->classes[t] = c;
        maxc = c > maxc ? c : maxc;
    }
    m->max_batch = max_batch;
    m->ld = ld_for(max_batch);
    size_t n = (size_t)wide * (size_t)m->ld;
    if (!(m->buf[0] = malloc(n * sizeof(float))) || !(m->buf[1] = malloc(n * sizeof(float))) ||
        !(m->logits = malloc((size_t)maxc * (size_t)max_batch * sizeof(float))))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for %d rows of activations",
                        max_batch);
    return 0;
}

/* Forward net from buf[*cur] (transposed), flipping *cur to the buffer holding the output. */
static void qnet_forward(struct ldn_qmodel *m, const struct ldn_qnet *net, int *cur, int batch)
{
    for (int i = 0; i < net->n_layers; i++) {
        const struct ldn_qlayer *l = &net->layers[i];
        ldn_qmat_apply(&l->w, l->bias, l->act, m->buf[*cur], m->buf[!*cur], batch, m->ld);
        *cur = !*cur;
    }
}

const float *ldn_qmodel_forward(struct ldn_qmodel *m, int t, const float *x, int batch)
{
    LDN_ASSERT(batch >= 1 && batch <= m->max_batch && t >= 0 && t < m->n_heads);
    int cur = 0;
    ldn_qs_transpose(x, batch, m->features, m->features, m->buf[0], m->ld);
    qnet_forward(m, &m->trunk, &cur, batch);
    qnet_forward(m, &m->heads[t], &cur, batch);
    ldn_qs_transpose(m->buf[cur], m->classes[t], batch, m->ld, m->logits, m->classes[t]);
    return m->logits;
}
