/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench: libshmq beside the operating system's own IPC.
 * The subcommands are listed in bench_list.h; the harness is bench.c.
 */
#include "bench.h"

static const struct bench_cmd bench_cmds[] = {
#define BENCH_SUBCOMMAND(name, help) { #name, help, bench_##name },
#include "bench_list.h"
#undef BENCH_SUBCOMMAND
};

int main(int argc, char **argv)
{
	return bench_main(argc, argv, bench_cmds, sizeof(bench_cmds) / sizeof(bench_cmds[0]));
}
