/* f32cmp A B [RTOL]: compare two raw float32 files element-wise; prints the largest relative
 * difference max|a-b| / max(|a|, |b|, 1e-6) and exits 1 when it exceeds RTOL (default 1e-5)
 * or the sizes differ. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float *slurp(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "f32cmp: cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)bytes + 4);
    if (!x || fread(x, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "f32cmp: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *n = bytes / 4;
    return x;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: f32cmp A B [RTOL]\n");
        return 2;
    }
    double rtol = argc > 3 ? atof(argv[3]) : 1e-5;
    long na, nb;
    float *a = slurp(argv[1], &na), *b = slurp(argv[2], &nb);
    if (na != nb || na == 0) {
        printf("f32cmp: sizes differ (%ld vs %ld floats)\n", na, nb);
        return 1;
    }
    double worst = 0;
    long at = 0, identical = 0;
    for (long i = 0; i < na; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(fmax(fabs(a[i]), fabs(b[i])), 1e-6);
        identical += a[i] == b[i];
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    printf("f32cmp: %ld floats, %ld identical, max relative difference %.3g at %ld\n", na,
           identical, worst, at);
    free(a);
    free(b);
    return worst <= rtol ? 0 : 1;
}
