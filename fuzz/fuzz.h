/* fuzz: what every libFuzzer target here shares: the entry point's prototype and CHECK, an
 * assertion that holds in every build (libFuzzer reports the abort with the input). */
#ifndef CN_FUZZ_FUZZ_H
#define CN_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
