/* SPDX-License-Identifier: MIT */
/* shmq-bench output: the table for people, the summary, and JSON. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include <shmq.h>

#include "bench.h"
#include "bench_int.h"

/* ---------------------------------------------------------------- table */

static bool bench_cmd_has_baseline(const struct bench *b, const struct bench_cmd *c)
{
	for (size_t i = 0; i < b->nresults; i++)
		if (strcmp(b->results[i]->cmd, c->name) == 0 && b->results[i]->base_name)
			return true;
	return false;
}

static void bench_ratio_str(double r, char *buf, size_t len)
{
	if (isfinite(r))
		snprintf(buf, len, "%.2fx", r);
	else
		snprintf(buf, len, "-");
}

static void bench_print_row(FILE *f, const char *label, const struct bench_result *r, int k,
			    bool with_base)
{
	char sv[64], bv[64], rv[32];

	bench_value_str(bench_median(r->shmq + k, r->n, BENCH_NVAL), r->unit, sv, sizeof(sv));
	if (!with_base) {
		fprintf(f, "  %-44s %16s\n", label, sv);
		return;
	}
	bench_value_str(bench_median(r->base + k, r->n, BENCH_NVAL), r->unit, bv, sizeof(bv));
	bench_ratio_str(bench_ratio(r, k), rv, sizeof(rv));
	fprintf(f, "  %-44s %16s %16s  %-22s %8s\n", label, sv, bv,
		r->base_name ? r->base_name : "", rv);
}

static void bench_print_result(FILE *f, const struct bench_result *r, bool with_base)
{
	char label[300];

	if (r->kind == BENCH_SCALAR) {
		bench_print_row(f, r->name, r, 0, with_base);
		return;
	}
	for (int k = 0; k < BENCH_NVAL; k++) {
		snprintf(label, sizeof(label), "%s %s", r->name, bench_quantile_names[k]);
		bench_print_row(f, label, r, k, with_base);
	}
}

static void bench_print_pinning(const struct bench *b, FILE *f)
{
	if (b->pinned)
		fprintf(f, "sides pinned to cpus %d and %d", b->cpu[0], b->cpu[1]);
	else
		fprintf(f, "sides not pinned (%s)", b->no_pin ? "--no-pin" : "fewer than 2 cpus");
}

void bench_print_table(const struct bench *b, FILE *f, const struct bench_cmd_status *st)
{
	bool with_base = bench_cmd_has_baseline(b, st->cmd);

	fprintf(f, "%s: %s\n  %d of %d runs, medians; ", st->cmd->name, st->cmd->help, st->runs_ok,
		b->runs);
	bench_print_pinning(b, f);
	fprintf(f, "%s\n", b->quick ? "; --quick" : "");
	if (st->err)
		fprintf(f, "  FAILED: %s\n", shmq_strerror(st->err));
	if (with_base)
		fprintf(f, "  %-44s %16s %16s  %-22s %8s\n", "figure", "libshmq", "baseline",
			"baseline is", "ratio");
	else
		fprintf(f, "  %-44s %16s\n", "figure", "value");
	for (size_t i = 0; i < b->nresults; i++)
		if (strcmp(b->results[i]->cmd, st->cmd->name) == 0)
			bench_print_result(f, b->results[i], with_base);
	fputc('\n', f);
}

/* The summary of `all`: every figure that has a baseline, one line each
 * (latency by its p50 and p99), then the geometric mean of the ratios. */
void bench_print_summary(const struct bench *b, FILE *f)
{
	double logsum = 0;
	int nratio = 0;
	char label[400], sv[64], bv[64], rv[32];

	fprintf(f, "summary: libshmq versus the OS baseline (ratio > 1: libshmq better)\n");
	fprintf(f, "  %-52s %16s %16s  %-22s %8s\n", "figure", "libshmq", "baseline", "baseline is",
		"ratio");
	for (size_t i = 0; i < b->nresults; i++) {
		const struct bench_result *r = b->results[i];
		if (!r->base_name)
			continue;
		int nk = r->kind == BENCH_LATENCY ? 2 : 1;
		for (int k = 0; k < nk; k++) {
			double ratio = bench_ratio(r, k);
			snprintf(label, sizeof(label), "%s: %s%s%s", r->cmd, r->name,
				 r->kind == BENCH_LATENCY ? " " : "",
				 r->kind == BENCH_LATENCY ? bench_quantile_names[k] : "");
			bench_value_str(bench_median(r->shmq + k, r->n, BENCH_NVAL), r->unit, sv, sizeof(sv));
			bench_value_str(bench_median(r->base + k, r->n, BENCH_NVAL), r->unit, bv, sizeof(bv));
			bench_ratio_str(ratio, rv, sizeof(rv));
			fprintf(f, "  %-52s %16s %16s  %-22s %8s\n", label, sv, bv, r->base_name, rv);
			if (isfinite(ratio) && ratio > 0) {
				logsum += log(ratio);
				nratio++;
			}
		}
	}
	if (nratio)
		fprintf(f, "  geometric mean of %d ratios: %.2fx\n", nratio, exp(logsum / nratio));
	else
		fprintf(f, "  (no figure with a baseline was reported)\n");
	for (size_t i = 0; i < b->nstatus; i++)
		if (b->status[i].err)
			fprintf(f, "  %s FAILED: %s\n", b->status[i].cmd->name,
				shmq_strerror(b->status[i].err));
	fputc('\n', f);
}

/* ---------------------------------------------------------------- JSON */

void bench_json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void bench_json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

/* {"median": m, "values": [v0, v1, ...]} for value k of each run. */
static void bench_json_series(FILE *f, const double *v, int n, int k)
{
	fputs("{\"median\": ", f);
	bench_json_num(f, bench_median(v + k, n, BENCH_NVAL));
	fputs(", \"values\": [", f);
	for (int i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		bench_json_num(f, v[i * BENCH_NVAL + k]);
	}
	fputs("]}", f);
}

static void bench_json_side(FILE *f, const struct bench_result *r, const double *v,
			    const struct bench_hist *h)
{
	if (r->kind == BENCH_SCALAR) {
		bench_json_series(f, v, r->n, 0);
		return;
	}
	fputc('{', f);
	for (int k = 0; k < BENCH_NVAL; k++) {
		fprintf(f, "\"%s\": ", bench_quantile_names[k]);
		bench_json_series(f, v, r->n, k);
		fputs(", ", f);
	}
	fprintf(f, "\"samples\": %llu, \"mean\": ", h ? (unsigned long long)h->count : 0ull);
	bench_json_num(f, h ? bench_hist_mean(h) : NAN);
	fputs(", \"min\": ", f);
	bench_json_num(f, h && h->count ? (double)h->min : NAN);
	fputc('}', f);
}

/* [ratio of run 0, run 1, ...] for value k. */
static void bench_json_run_ratios(FILE *f, const struct bench_result *r, int k)
{
	fputc('[', f);
	for (int i = 0; i < r->n; i++) {
		if (i)
			fputs(", ", f);
		bench_json_num(f, bench_ratio_of(r->shmq[i * BENCH_NVAL + k], r->base[i * BENCH_NVAL + k],
						 r->higher_is_better));
	}
	fputc(']', f);
}

static void bench_json_ratio(FILE *f, const struct bench_result *r)
{
	if (!r->base_name) {
		fputs("null", f);
	} else if (r->kind == BENCH_SCALAR) {
		bench_json_num(f, bench_ratio(r, 0));
	} else {
		fputc('{', f);
		for (int k = 0; k < BENCH_NVAL; k++) {
			fprintf(f, "%s\"%s\": ", k ? ", " : "", bench_quantile_names[k]);
			bench_json_num(f, bench_ratio(r, k));
		}
		fputc('}', f);
	}
}

static void bench_json_result(FILE *f, const struct bench_result *r)
{
	fputs("    {\"subcommand\": ", f);
	bench_json_str(f, r->cmd);
	fputs(", \"name\": ", f);
	bench_json_str(f, r->name);
	fprintf(f, ", \"kind\": \"%s\", \"unit\": ", r->kind == BENCH_SCALAR ? "scalar" : "latency");
	bench_json_str(f, r->unit);
	fprintf(f, ", \"higher_is_better\": %s, \"series\": ", r->higher_is_better ? "true" : "false");
	bench_json_str(f, r->series);
	fprintf(f, ", \"size\": %llu, \"runs\": %d,\n     \"shmq\": ", (unsigned long long)r->size, r->n);
	bench_json_side(f, r, r->shmq, r->shmq_hist);
	fputs(",\n     \"baseline\": ", f);
	if (r->base_name) {
		fputs("{\"name\": ", f);
		bench_json_str(f, r->base_name);
		fputs(", \"value\": ", f);
		bench_json_side(f, r, r->base, r->base_hist);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
	fputs(",\n     \"ratio\": ", f);
	bench_json_ratio(f, r);
	fputs(", \"ratio_runs\": ", f);
	if (!r->base_name) {
		fputs("null", f);
	} else if (r->kind == BENCH_SCALAR) {
		bench_json_run_ratios(f, r, 0);
	} else {
		fputc('{', f);
		for (int k = 0; k < BENCH_NVAL; k++) {
			fprintf(f, "%s\"%s\": ", k ? ", " : "", bench_quantile_names[k]);
			bench_json_run_ratios(f, r, k);
		}
		fputc('}', f);
	}
	fputc('}', f);
}

/* The first "model name" of /proc/cpuinfo, or "unknown". */
void bench_cpu_model(char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon) {
			colon += 1 + (colon[1] == ' ');
			colon[strcspn(colon, "\n")] = '\0';
			snprintf(buf, len, "%s", colon);
			break;
		}
	}
	fclose(f);
}

const char *bench_allocator(void)
{
#ifdef SHMQ_TOOLS_JEMALLOC
	return "jemalloc";
#else
	return "libc";
#endif
}

static void bench_json_machine(const struct bench *b, FILE *f)
{
	char model[256];
	struct utsname u;

	bench_cpu_model(model, sizeof(model));
	if (uname(&u) != 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	fprintf(f, "  \"machine\": {\"cpus\": %d, \"model\": ", bench_ncpus());
	bench_json_str(f, model);
	fputs(", \"kernel\": ", f);
	bench_json_str(f, u.release);
	fprintf(f, ", \"pinned\": %s, \"side_cpus\": [%d, %d]},\n", b->pinned ? "true" : "false",
		b->pinned ? b->cpu[0] : -1, b->pinned ? b->cpu[1] : -1);
}

void bench_print_json(const struct bench *b, FILE *f)
{
	fputs("{\n  \"tool\": \"shmq-bench\", \"version\": ", f);
	bench_json_str(f, shmq_version());
	fprintf(f, ", \"runs\": %d, \"quick\": %s, \"allocator\": \"%s\",\n", b->runs,
		b->quick ? "true" : "false", bench_allocator());
	bench_json_machine(b, f);
	fputs("  \"subcommands\": [\n", f);
	for (size_t i = 0; i < b->nstatus; i++) {
		const struct bench_cmd_status *st = &b->status[i];
		fputs("    {\"name\": ", f);
		bench_json_str(f, st->cmd->name);
		fputs(", \"help\": ", f);
		bench_json_str(f, st->cmd->help);
		fprintf(f, ", \"runs_ok\": %d, \"elapsed_s\": %.3f, \"error\": ", st->runs_ok,
			(double)st->elapsed_ns / 1e9);
		bench_json_str(f, st->err ? shmq_strerror(st->err) : NULL);
		fprintf(f, "}%s\n", i + 1 < b->nstatus ? "," : "");
	}
	fputs("  ],\n  \"results\": [\n", f);
	for (size_t i = 0; i < b->nresults; i++) {
		bench_json_result(f, b->results[i]);
		fputs(i + 1 < b->nresults ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
}
