/* Watchdog thread (watchdog.h). */
#define _POSIX_C_SOURCE 200809L
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, armed;
static struct timespec deadline;
static double armed_for;
static char what_buf[256];

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!armed)
            pthread_cond_wait(&cv, &mu);
        int rc = pthread_cond_timedwait(&cv, &mu, &deadline);
        if (rc == ETIMEDOUT && armed) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
                LDN_ERROR("waited %.3g s for %s; ending this process so that the job stops "
                          "(a peer is hung or gone)",
                          armed_for, what_buf);
                fflush(stderr);
                fflush(stdout);
                _exit(3);
            }
        }
    }
    return NULL;
}

int ldn_watchdog_arm(const char *what, double seconds)
{
    pthread_mutex_lock(&mu);
    if (!started) {
        pthread_t t;
        if (pthread_create(&t, NULL, watch, NULL) != 0) {
            pthread_mutex_unlock(&mu);
            return -1;
        }
        pthread_detach(t);
        started = 1;
    }
    snprintf(what_buf, sizeof what_buf, "%s", what);
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(long long)seconds;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((seconds - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    armed_for = seconds;
    armed = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

void ldn_watchdog_disarm(void)
{
    pthread_mutex_lock(&mu);
    armed = 0;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}
