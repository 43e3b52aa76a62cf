/* SPDX-License-Identifier: MIT */
/* What test_proc and helper_exec share: the "talk" blob and a byte pattern. */
#ifndef SHMQ_HELPER_TALK_H
#define SHMQ_HELPER_TALK_H

#include <stddef.h>
#include <stdint.h>

#define TALK_NAME "talk"
enum { TALK_EMPTY = 0, TALK_PING = 1, TALK_PONG = 2, TALK_BYE = 3 };

struct talk {
	uint32_t state;   /* TALK_* */
	uint32_t self_id; /* the helper's process-table id */
	char msg[56];
};

/* Byte i of the test pattern: not periodic at any power of two. */
static inline uint8_t helper_pattern(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13 ^ (i / 251));
}

#endif
