/* The monotonic clock every timeout and throughput figure is measured with. */
#ifndef LDN_CLOCK_H
#define LDN_CLOCK_H

/* Seconds on the monotonic clock (CLOCK_MONOTONIC); never fails. Thread-safe. */
double ldn_clock_now(void);

#endif
