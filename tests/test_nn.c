/* Layers, networks and the multi-task model: finite-difference gradient checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "loss.h"
#include "model.h"
#include "nn.h"
#include "rng.h"

/* Loss used for the checks: 0.5 * sum((out - target)^2) over the batch, so dL/dout = out - target.
 */
static double half_sq(const float *out, const float *target, int64_t n, float *grad)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)out[i] - target[i];
        s += 0.5 * e * e;
        if (grad)
            grad[i] = (float)e;
    }
    return s;
}

static void fill_normal(float *x, int64_t n, struct ldn_rng *r, double std)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(std * ldn_rng_normal(r));
}

/* Compare analytic gradients of net (params and input) with central differences.
 * Returns the worst relative error max|a-n| / max(|a|,|n|, 1e-2). */
static double check_net(struct ldn_nn *net, int batch, uint64_t seed, float h)
{
    struct ldn_rng r;
    ldn_rng_init(&r, seed, 7);
    int64_t nin = (int64_t)batch * net->in_dim, nout = (int64_t)batch * net->out_dim;
    float *x = malloc(sizeof(float) * (size_t)nin), *dx = malloc(sizeof(float) * (size_t)nin);
    float *target = malloc(sizeof(float) * (size_t)nout),
          *dout = malloc(sizeof(float) * (size_t)nout);
    fill_normal(x, nin, &r, 1.0);
    fill_normal(target, nout, &r, 1.0);
    ldn_nn_init(net, &r);
    for (int64_t i = 0; i < net->n_params; i++) /* biases non-zero too */
        net->params[i] += (float)(0.1 * ldn_rng_normal(&r));
    const float *out = ldn_nn_forward(net, x, batch);
    half_sq(out, target, nout, dout);
    ldn_nn_backward(net, x, dout, dx, batch);
    float *g = malloc(sizeof(float) * (size_t)net->n_params);
    memcpy(g, net->grads, sizeof(float) * (size_t)net->n_params);

    double worst = 0.0;
    for (int64_t i = 0; i < net->n_params; i++) {
        float keep = net->params[i];
        net->params[i] = keep + h;
        double lp = half_sq(ldn_nn_forward(net, x, batch), target, nout, NULL);
        net->params[i] = keep - h;
        double lm = half_sq(ldn_nn_forward(net, x, batch), target, nout, NULL);
        net->params[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double den = fmax(fmax(fabs(num), fabs(g[i])), 1e-1);
        worst = fmax(worst, fabs(num - g[i]) / den);
    }
    for (int64_t i = 0; i < nin; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = half_sq(ldn_nn_forward(net, x, batch), target, nout, NULL);
        x[i] = keep - h;
        double lm = half_sq(ldn_nn_forward(net, x, batch), target, nout, NULL);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double den = fmax(fmax(fabs(num), fabs(dx[i])), 1e-1);
        worst = fmax(worst, fabs(num - dx[i]) / den);
    }
    free(x);
    free(dx);
    free(target);
    free(dout);
    free(g);
    return worst;
}

static void test_dense_tanh_gradients(void)
{
    int widths[] = {7, 5};
    struct ldn_nn *net = ldn_nn_new_mlp(6, widths, 2, 3, LDN_ACT_TANH, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    CU_ASSERT_EQUAL(net->n_params, 6 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3);
    double worst = check_net(net, 4, 11, 1e-2f);
    CU_ASSERT(worst < 5e-3);
    ldn_nn_destroy(&net);
    CU_ASSERT_PTR_NULL(net);
}

static void test_dense_relu_gradients(void)
{
    int widths[] = {9, 8};
    struct ldn_nn *net = ldn_nn_new_mlp(5, widths, 2, 4, LDN_ACT_RELU, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    /* A small step keeps finite differences off the ReLU corners; float noise needs the
     * looser bound. */
    double worst = check_net(net, 3, 14, 1e-3f);
    CU_ASSERT(worst < 2e-2);
    ldn_nn_destroy(&net);
}

static void test_trunk_without_output_layer(void)
{
    int widths[] = {4, 3};
    struct ldn_nn *net = ldn_nn_new_mlp(5, widths, 2, 0, LDN_ACT_TANH, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    CU_ASSERT_EQUAL(net->n_layers, 2);
    CU_ASSERT_EQUAL(net->out_dim, 3);
    CU_ASSERT_EQUAL(net->layers[1].act, LDN_ACT_TANH);
    CU_ASSERT(check_net(net, 2, 13, 1e-2f) < 5e-3);
    ldn_nn_destroy(&net);
    ldn_nn_destroy(&net); /* destroy of NULL is a no-op */
}

static void test_dense_forward_values(void)
{
    /* 2 inputs -> 2 outputs, no activation: y = W x + b computed by hand. */
    struct ldn_nn *net = ldn_nn_new_mlp(2, NULL, 0, 2, LDN_ACT_RELU, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    float p[] = {1, 2, 0.5f, 3, 4, -0.5f}; /* rows (w, b): W = [[1,2],[3,4]], b = [0.5,-0.5] */
    memcpy(net->params, p, sizeof p);
    float x[] = {1, -1, 2, 0.5f};
    const float *y = ldn_nn_forward(net, x, 2);
    CU_ASSERT_DOUBLE_EQUAL(y[0], -0.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[1], -1.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[2], 3.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[3], 7.5, 1e-6);
    ldn_nn_destroy(&net);
}

static void test_he_init(void)
{
    int widths[] = {400};
    struct ldn_nn *net = ldn_nn_new_mlp(800, widths, 1, 0, LDN_ACT_RELU, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 0);
    ldn_nn_init(net, &r);
    double s = 0, s2 = 0;
    int64_t n = 800 * 400;
    for (int64_t i = 0; i < n; i++) {
        s += net->params[i];
        s2 += (double)net->params[i] * net->params[i];
    }
    double var = s2 / n - (s / n) * (s / n);
    (void)n;
    s = s2 = 0;
    int64_t cnt = 0;
    for (int j = 0; j < 400; j++) {
        for (int i = 0; i < 800; i++) {
            float w = net->params[j * 801 + i];
            s += w;
            s2 += (double)w * w;
            cnt++;
        }
        CU_ASSERT_EQUAL(net->params[j * 801 + 800], 0.0f); /* bias */
    }
    var = s2 / cnt - (s / cnt) * (s / cnt);
    CU_ASSERT_DOUBLE_EQUAL(var, 2.0 / 800, 0.02 * 2.0 / 800);
    ldn_nn_destroy(&net);
}

/* Model: trunk + two heads, gradient of the cross-entropy through head and trunk. */
static void test_model_gradients(void)
{
    struct ldn_task_config tasks[2] = {{.name = "a", .weight = 1, .n_head = 0},
                                       {.name = "b", .weight = 1, .n_head = 1, .head = {4}}};
    struct ldn_config cfg = {.seed = 5,
                             .n_trunk = 2,
                             .trunk = {6, 5},
                             .activation = LDN_ACT_TANH,
                             .tasks = tasks,
                             .n_tasks = 2};
    int classes[2] = {3, 2};
    char err[256];
    struct ldn_model *m = ldn_model_new(&cfg, 4, classes, 8, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->heads[1]->n_layers, 2);
    struct ldn_rng r;
    ldn_rng_init(&r, 9, 0);
    float x[5 * 4];
    int32_t y[5];
    fill_normal(x, 20, &r, 1.0);
    for (int i = 0; i < 5; i++)
        y[i] = (int32_t)ldn_rng_below(&r, 2);
    for (int t = 0; t < 2; t++) {
        float dz[5 * 3];
        const float *z = ldn_model_forward(m, t, x, 5);
        ldn_loss_xent(z, y, 5, classes[t], 1.0f, dz, NULL);
        ldn_model_backward(m, t, x, dz, 5);
        struct ldn_nn *nets[2] = {m->trunk, m->heads[t]};
        double worst = 0.0;
        for (int k = 0; k < 2; k++) {
            float *g = malloc(sizeof(float) * (size_t)nets[k]->n_params);
            memcpy(g, nets[k]->grads, sizeof(float) * (size_t)nets[k]->n_params);
            for (int64_t i = 0; i < nets[k]->n_params; i++) {
                float keep = nets[k]->params[i], h = 1e-2f;
                nets[k]->params[i] = keep + h;
                double lp =
                    ldn_loss_xent(ldn_model_forward(m, t, x, 5), y, 5, classes[t], 1, NULL, NULL);
                nets[k]->params[i] = keep - h;
                double lm =
                    ldn_loss_xent(ldn_model_forward(m, t, x, 5), y, 5, classes[t], 1, NULL, NULL);
                nets[k]->params[i] = keep;
                double num = (lp - lm) / (2 * h);
                worst = fmax(worst, fabs(num - g[i]) / fmax(fmax(fabs(num), fabs(g[i])), 1e-2));
            }
            free(g);
        }
        CU_ASSERT(worst < 1e-2);
    }
    /* Same seed, same model. */
    struct ldn_model *m2 = ldn_model_new(&cfg, 4, classes, 8, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
    CU_ASSERT(memcmp(m->heads[1]->params, m2->heads[1]->params,
                     sizeof(float) * (size_t)m->heads[1]->n_params) == 0);
    ldn_model_destroy(&m2);
    ldn_model_destroy(&m);
    CU_ASSERT_PTR_NULL(m);
}

static int hook_rows[3];
static int hook_calls;
static void on_rows(void *ud, int layer, int r0, int r1)
{
    (void)ud;
    hook_rows[layer] += r1 - r0;
    hook_calls++;
}
static int forward_rows[3];
static void on_forward(void *ud, int layer, int r0, int r1)
{
    (void)ud;
    CU_ASSERT_EQUAL(r0, forward_rows[layer]); /* blocks in order, no gap */
    forward_rows[layer] = r1;
}

/* Block-wise weight gradients with a hook equal the one-block computation, and the hook sees
 * every row of every layer once. */
static void test_gradient_blocks(void)
{
    int widths[] = {9, 7};
    struct ldn_nn *a = ldn_nn_new_mlp(5, widths, 2, 3, LDN_ACT_RELU, 4);
    struct ldn_nn *b = ldn_nn_new_mlp(5, widths, 2, 3, LDN_ACT_RELU, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    struct ldn_rng r;
    ldn_rng_init(&r, 1, 0);
    ldn_nn_init(a, &r);
    memcpy(b->params, a->params, sizeof(float) * (size_t)a->n_params);
    float x[4 * 5], da[4 * 3], db[4 * 3];
    fill_normal(x, 20, &r, 1.0);
    fill_normal(da, 12, &r, 1.0);
    memcpy(db, da, sizeof da);
    int blocks[3] = {2, 3, 1};
    ldn_nn_set_blocks(b, blocks);
    ldn_nn_set_grad_hook(b, on_rows, NULL);
    ldn_nn_set_forward_hook(b, on_forward, NULL);
    ldn_nn_forward(a, x, 4);
    ldn_nn_forward(b, x, 4);
    CU_ASSERT_EQUAL(forward_rows[0], 9);
    CU_ASSERT_EQUAL(forward_rows[1], 7);
    CU_ASSERT_EQUAL(forward_rows[2], 3);
    CU_ASSERT(memcmp(a->acts[2], b->acts[2], sizeof(float) * 4 * 3) == 0); /* same output */
    ldn_nn_backward(a, x, da, NULL, 4);
    ldn_nn_backward(b, x, db, NULL, 4);
    CU_ASSERT(memcmp(a->grads, b->grads, sizeof(float) * (size_t)a->n_params) == 0);
    CU_ASSERT_EQUAL(hook_rows[0], 9);
    CU_ASSERT_EQUAL(hook_rows[1], 7);
    CU_ASSERT_EQUAL(hook_rows[2], 3);
    CU_ASSERT_EQUAL(hook_calls, 5 + 3 + 3);
    ldn_nn_destroy(&a);
    ldn_nn_destroy(&b);
}

static const struct ldn_cu_test TESTS[] = {
    {"gradient blocks and hooks", test_gradient_blocks},
    {"dense tanh gradients", test_dense_tanh_gradients},
    {"dense relu gradients", test_dense_relu_gradients},
    {"trunk without output layer", test_trunk_without_output_layer},
    {"dense forward values", test_dense_forward_values},
    {"He init", test_he_init},
    {"model gradients through heads and trunk", test_model_gradients},
    {NULL, NULL}};

LDN_CU_MAIN("nn", TESTS)
