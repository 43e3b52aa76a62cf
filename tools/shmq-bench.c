/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench: libshmq beside the operating system's own IPC.
 * The subcommands are listed in bench_list.h; the harness is bench.c.
 */
#include <shmq.h>

#include "bench.h"

static const struct bench_cmd bench_cmds[] = {
#define BENCH_SUBCOMMAND(name, help) { #name, help, bench_##name },
#include "bench_list.h"
#undef BENCH_SUBCOMMAND
};

int main(int argc, char **argv)
{
	/* A child started by shmq_proc_spawn (spawn benchmark, pool workers)
	 * runs its entry here and exits; elsewhere this returns at once. */
	shmq_dispatch(argc, argv);
	return bench_main(argc, argv, bench_cmds, sizeof(bench_cmds) / sizeof(bench_cmds[0]));
}
