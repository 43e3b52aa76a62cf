/* SPDX-License-Identifier: MIT */
/* Private: the one allocator for process-private memory (jemalloc's mallocx /
 * sdallocx when configured --with-jemalloc, libc otherwise). */
#ifndef SHMQ__ALLOC_H
#define SHMQ__ALLOC_H

#include <stddef.h>

void *shmq__malloc(size_t size);
void *shmq__calloc(size_t n, size_t size);
void *shmq__realloc(void *p, size_t old_size, size_t new_size);
/* size must be the size the block was allocated with (sized deallocation). */
void shmq__free(void *p, size_t size);
char *shmq__strdup(const char *s);
void shmq__strfree(char *s);

#endif
