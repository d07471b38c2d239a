/*
 * fuzz.h - shared by the harnesses: the libFuzzer entry point and a check
 * that aborts (so libFuzzer and the replay driver both report it).
 */
#ifndef LWW_FUZZ_H
#define LWW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#endif /* LWW_FUZZ_H */
