/* A monotonic clock for timing: seconds from an arbitrary start. */
#ifndef TANDEM_CORE_CLOCK_H
#define TANDEM_CORE_CLOCK_H

double tdm_monotonic_seconds(void);

#endif
