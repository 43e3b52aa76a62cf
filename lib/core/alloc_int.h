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

/*
 * Page-granular buffers for data that may grow to gigabytes (captured
 * output): anonymous mappings that grow with mremap, so growing never copies
 * and never touches a page twice.  Sizes are rounded up to whole pages; free
 * and realloc take the size last allocated (any value that rounds the same).
 */
void *shmq__pages_alloc(size_t size);
void *shmq__pages_realloc(void *p, size_t old_size, size_t new_size);
void shmq__pages_free(void *p, size_t size);
/* Populate [p, p + size) (p page aligned) ahead of writes: one system call
 * instead of a page fault per page.  Best effort. */
void shmq__pages_prefault(void *p, size_t size);

#endif
