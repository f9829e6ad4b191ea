/* The library's random numbers: splitmix64, identical on every platform, so
 * a seed gives the same initial weights on every backend. */
#ifndef TANDEM_CORE_RNG_H
#define TANDEM_CORE_RNG_H

#include <stdint.h>

typedef struct tdm_rng {
    uint64_t state;
} tdm_rng;

/* What the state moves by a draw. */
#define TDM_RNG_STEP 0x9E3779B97F4A7C15ull

static inline uint64_t tdm_rng_next(tdm_rng *rng)
{
    uint64_t z = (rng->state += TDM_RNG_STEP);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The generator `draws` draws later, without drawing them. */
static inline tdm_rng tdm_rng_skip(tdm_rng rng, uint64_t draws)
{
    return (tdm_rng){rng.state + TDM_RNG_STEP * draws};
}

/* Uniform in [low, high), from 24 random bits. */
static inline float tdm_rng_uniform(tdm_rng *rng, float low, float high)
{
    float unit = (float)(tdm_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
    return low + (high - low) * unit;
}

#endif
