/* SPDX-License-Identifier: MIT */
/*
 * Recipe 12-7: run another program.
 *
 * Python:  results = subprocess.run(['ls', '-l'], stdout=subprocess.PIPE)
 *          print(results.stdout)
 *
 * shmq_run captures any amount of output on both streams without deadlock,
 * can feed input, and kills the child's whole process group at a timeout.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <string.h>

#include <shmq.h>

int main(void)
{
	char *ls[] = { "ls", "-l", "/", NULL };
	char *sort[] = { "sort", NULL };
	char *missing[] = { "/nonexistent/program", NULL };
	const char input[] = "pear\napple\nfig\n";
	struct shmq_run_opts o = { .capture = SHMQ_STDOUT };
	struct shmq_run_result res;
	int rc;

	rc = shmq_run(ls, &o, &res);
	if (rc) {
		fprintf(stderr, "run ls: %s\n", shmq_strerror(rc));
		return 1;
	}
	printf("ls -l / exited with %d and wrote %zu bytes, %s\n", res.status, res.out_len,
	       res.out_len && memmem(res.out, res.out_len, "usr", 3) ? "naming usr" : "without usr");
	shmq_run_result_free(&res);

	o.input = input;
	o.input_len = strlen(input);
	rc = shmq_run(sort, &o, &res);
	if (rc)
		return 1;
	printf("sort: %.*s", (int)res.out_len, res.out);
	shmq_run_result_free(&res);

	rc = shmq_run(missing, NULL, &res);
	printf("a missing program: %s\n", shmq_strerror(rc));
	return rc != -ENOENT;
}
