/* SPDX-License-Identifier: MIT */
/* shmq-bench driver: command line, running subcommands over N runs, output. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmq.h>

#include "bench.h"
#include "bench_int.h"

static void bench_usage(FILE *f, const struct bench_cmd *cmds, size_t ncmds)
{
	fprintf(f,
		"usage: shmq-bench [options] SUBCOMMAND [-- subcommand arguments]\n"
		"       shmq-bench [options] all\n"
		"options:\n"
		"  -n, --runs N       runs per subcommand, median reported (default 5)\n"
		"  -q, --quick        about a tenth of the work (all: about a minute on 2 cores)\n"
		"  -j, --json         JSON on stdout instead of the table\n"
		"  -r, --report DIR   also write DIR/index.html (SVG charts) and DIR/results.json\n"
		"  -c, --cpus A,B     cores for the two sides (default: first two allowed)\n"
		"      --no-pin       do not pin the sides to cores\n"
		"  -l, --list         list the subcommands\n"
		"  -V, --version      print the version\n"
		"  -h, --help         this text\n"
		"subcommands:\n");
	for (size_t i = 0; i < ncmds; i++)
		fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "  %-12s %s\n", "all", "every subcommand above, then a summary against the baselines");
}

static int bench_parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int bench_parse_cpus(struct bench *b, const char *s)
{
	long a, c;
	char buf[64], *comma;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	comma = strchr(buf, ',');
	if (!comma)
		return -EINVAL;
	*comma = '\0';
	if (bench_parse_int(buf, 0, CPU_SETSIZE - 1, &a) || bench_parse_int(comma + 1, 0, CPU_SETSIZE - 1, &c))
		return -EINVAL;
	b->cpu[0] = (int)a;
	b->cpu[1] = (int)c;
	b->cpus_given = true;
	return 0;
}

enum { OPT_NO_PIN = 256 };

static const struct option bench_long_opts[] = {
	{ "runs", required_argument, NULL, 'n' },
	{ "quick", no_argument, NULL, 'q' },
	{ "json", no_argument, NULL, 'j' },
	{ "report", required_argument, NULL, 'r' },
	{ "cpus", required_argument, NULL, 'c' },
	{ "no-pin", no_argument, NULL, OPT_NO_PIN },
	{ "list", no_argument, NULL, 'l' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* 0: run; 1: done (help, list, version); 2: usage error. */
static int bench_parse_args(struct bench *b, int argc, char **argv, const struct bench_cmd *cmds,
			    size_t ncmds)
{
	int c;
	long v;

	while ((c = getopt_long(argc, argv, "n:qjr:c:lVh", bench_long_opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (bench_parse_int(optarg, 1, BENCH_RUNS_MAX, &v)) {
				fprintf(stderr, "shmq-bench: --runs wants 1..%d\n", BENCH_RUNS_MAX);
				return 2;
			}
			b->runs = (int)v;
			break;
		case 'q': b->quick = true; break;
		case 'j': b->json = true; break;
		case 'r': b->report_dir = optarg; break;
		case 'c':
			if (bench_parse_cpus(b, optarg)) {
				fprintf(stderr, "shmq-bench: --cpus wants A,B (two CPU numbers)\n");
				return 2;
			}
			break;
		case OPT_NO_PIN: b->no_pin = true; break;
		case 'l':
			for (size_t i = 0; i < ncmds; i++)
				printf("%s\n", cmds[i].name);
			printf("all\n");
			return 1;
		case 'V': printf("shmq-bench %s\n", shmq_version()); return 1;
		case 'h': bench_usage(stdout, cmds, ncmds); return 1;
		default: bench_usage(stderr, cmds, ncmds); return 2;
		}
	}
	if (optind >= argc) {
		bench_usage(stderr, cmds, ncmds);
		return 2;
	}
	b->sub_argc = argc - optind - 1;
	b->sub_argv = argv + optind + 1;
	return 0;
}

static int bench_run_cmd(struct bench *b, const struct bench_cmd *c, struct bench_cmd_status *st)
{
	int64_t t0 = bench_now_ns();

	b->cmd = c;
	st->cmd = c;
	for (b->run = 0; b->run < b->runs; b->run++) {
		bench_progress(b, "");
		int err = c->fn(b);
		if (err) {
			st->err = err;
			bench_note(b, "run %d failed: %s", b->run + 1, shmq_strerror(err));
			break;
		}
		st->runs_ok++;
	}
	bench_progress_clear(b);
	st->elapsed_ns = bench_now_ns() - t0;
	return st->err;
}

static const struct bench_cmd *bench_cmd_find(const struct bench_cmd *cmds, size_t ncmds,
					      const char *name)
{
	for (size_t i = 0; i < ncmds; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static int bench_output(struct bench *b)
{
	int ret = 0;

	if (b->json) {
		bench_print_json(b, stdout);
	} else {
		for (size_t i = 0; i < b->nstatus; i++)
			bench_print_table(b, stdout, &b->status[i]);
		if (b->all)
			bench_print_summary(b, stdout);
	}
	if (b->report_dir) {
		int err = bench_write_report(b, b->report_dir);
		if (err) {
			fprintf(stderr, "shmq-bench: report in %s: %s\n", b->report_dir, shmq_strerror(err));
			ret = 1;
		} else if (!b->json) {
			printf("report: %s/index.html\n", b->report_dir);
		}
	}
	fflush(stdout);
	return ret;
}

int bench_main(int argc, char **argv, const struct bench_cmd *cmds, size_t ncmds)
{
	struct bench b;
	int ret;

#ifdef _OPENMP
	/* The OpenMP baselines wait passively between parallel regions, as
	 * the pool's workers do (a spinning idle thread would hold the second
	 * core while the other side runs).  libgomp reads OMP_WAIT_POLICY
	 * once, when it is loaded, so set it and start the program again; a
	 * policy the user set is kept, and a failed exec carries on. */
	if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0)
		execv("/proc/self/exe", argv);
#endif
	memset(&b, 0, sizeof(b));
	b.runs = 5;
	ret = bench_parse_args(&b, argc, argv, cmds, ncmds);
	if (ret)
		return ret == 1 ? 0 : 2;
	const char *what = argv[optind];
	const struct bench_cmd *one = NULL;
	b.all = strcmp(what, "all") == 0;
	if (!b.all && !(one = bench_cmd_find(cmds, ncmds, what))) {
		fprintf(stderr, "shmq-bench: unknown subcommand '%s' (try --list)\n", what);
		return 2;
	}
	if (bench_cpus_setup(&b) != 0) {
		fprintf(stderr, "shmq-bench: cannot read the CPU affinity mask\n");
		return 1;
	}
	b.progress = isatty(STDERR_FILENO) == 1;
	b.nstatus = b.all ? ncmds : 1;
	b.status = calloc(b.nstatus, sizeof(*b.status));
	if (!b.status)
		return 1;
	for (size_t i = 0; i < b.nstatus; i++) {
		b.cmd_index = (int)i;
		if (bench_run_cmd(&b, b.all ? &cmds[i] : one, &b.status[i]) != 0)
			ret = 1;
	}
	b.cmd = NULL;
	if (bench_output(&b) != 0)
		ret = 1;
	bench_results_free(&b);
	free(b.status);
	return ret;
}
