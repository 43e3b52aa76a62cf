/* SPDX-License-Identifier: MIT */
/* Running programs (seed 12-7): Python subprocess.run. */
#ifndef SHMQ_RUN_H
#define SHMQ_RUN_H

#include <shmq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMQ_STDOUT 0x1u
#define SHMQ_STDERR 0x2u

struct shmq_run_opts {
	const void *input;
	size_t input_len;
	unsigned capture;   /* SHMQ_STDOUT | SHMQ_STDERR */
	int64_t timeout_ns; /* 0 or SHMQ_FOREVER: no limit */
	const char *cwd;
	char *const *envp;
};
struct shmq_run_result {
	int status; /* exit code, or -signal */
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
};
SHMQ_API int shmq_run(char *const argv[], const struct shmq_run_opts *o, struct shmq_run_result *res);
SHMQ_API void shmq_run_result_free(struct shmq_run_result *res);

#ifdef __cplusplus
}
#endif
#endif /* SHMQ_RUN_H */
