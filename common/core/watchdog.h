/* A watchdog for waits that have no timeout of their own (MPI collectives: start-up, the
 * collective checkpoint write, the final barrier). Armed with what is awaited and for how
 * long; if still armed when the time is up, it logs one line naming the wait and ends the
 * process with exit status 3, so mpirun ends the job instead of letting it hang. */
#ifndef LDN_WATCHDOG_H
#define LDN_WATCHDOG_H

/* Arm (or re-arm) for `seconds` (> 0); `what` is copied ("the collective checkpoint write of
 * step 100"). Returns 0, or -1 when the watchdog thread cannot start (then nothing watches). */
int ldn_watchdog_arm(const char *what, double seconds);
/* Disarm; the thread stays for the next arm. */
void ldn_watchdog_disarm(void);

#endif
