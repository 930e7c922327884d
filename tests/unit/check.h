/* The unit tests' one check macro: prints `PASS name` or `FAIL name (file:line)`
 * and counts failures; a test's main returns failures ? 1 : 0. */
#ifndef DOMUS_TEST_CHECK_H
#define DOMUS_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(name, cond)                                                                \
    do {                                                                                 \
        if (cond) {                                                                      \
            printf("PASS %s\n", name);                                                   \
        } else {                                                                         \
            printf("FAIL %s (%s:%d)\n", name, __FILE__, __LINE__);                       \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

#endif
