/* SPDX-License-Identifier: MIT */
/*
 * shmq-bench --report DIR: DIR/index.html, one self-contained page (inline CSS
 * and SVG, no script, no network) with the summary, a throughput bar chart per
 * series (one bar group per message size, libshmq beside its baseline), a
 * latency percentile curve per latency figure, and every figure in a table;
 * DIR/results.json holds the same data as --json.
 *
 * The page is well-formed XML (every element closed, every text escaped) so
 * that the tests can parse it.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <shmq.h>

#include "bench.h"
#include "bench_int.h"

#define RPT_SHMQ_COLOR "#2b6cb0"
#define RPT_BASE_COLOR "#c05621"

/* ---------------------------------------------------------------- text */

static void rpt_esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* "850 ns", "1.2 us", "35 ms": a nanosecond value for an axis label. */
static void rpt_ns_str(double ns, char *buf, size_t len)
{
	static const char *const units[] = { "ns", "\xc2\xb5s", "ms", "s" };
	int u = 0;

	while (ns >= 1000 && u < 3) {
		ns /= 1000;
		u++;
	}
	snprintf(buf, len, ns >= 10 || ns == floor(ns) ? "%.0f %s" : "%.1f %s", ns, units[u]);
}

/* ---------------------------------------------------------------- axes */

/* A "nice" step (1, 2 or 5 times a power of ten) for about n ticks up to max. */
static double rpt_nice_step(double max, int n)
{
	double raw = max / n, p = pow(10, floor(log10(raw))), m = raw / p;

	return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

struct rpt_frame {
	double w, h;         /* whole SVG */
	double l, r, t, btm; /* margins */
};

static double rpt_plot_w(const struct rpt_frame *fr)
{
	return fr->w - fr->l - fr->r;
}

static double rpt_plot_h(const struct rpt_frame *fr)
{
	return fr->h - fr->t - fr->btm;
}

static void rpt_svg_open(FILE *f, const struct rpt_frame *fr, const char *title)
{
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>",
		fr->w, fr->h, fr->w, fr->h);
	rpt_esc(f, title);
	fprintf(f, "</title><rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>",
		fr->w, fr->h);
	fprintf(f, "<text x=\"%.0f\" y=\"16\" class=\"ct\">", fr->l);
	rpt_esc(f, title);
	fputs("</text>\n", f);
}

static void rpt_legend(FILE *f, const struct rpt_frame *fr, const char *base_name)
{
	double x = fr->w - fr->r - 260;

	fprintf(f, "<rect x=\"%.0f\" y=\"24\" width=\"10\" height=\"10\" fill=\"%s\"/>"
		   "<text x=\"%.0f\" y=\"33\" class=\"lg\">libshmq</text>\n",
		x, RPT_SHMQ_COLOR, x + 14);
	if (!base_name)
		return;
	fprintf(f, "<rect x=\"%.0f\" y=\"24\" width=\"10\" height=\"10\" fill=\"%s\"/>"
		   "<text x=\"%.0f\" y=\"33\" class=\"lg\">",
		x + 80, RPT_BASE_COLOR, x + 94);
	rpt_esc(f, base_name);
	fputs("</text>\n", f);
}

static void rpt_hline(FILE *f, const struct rpt_frame *fr, double y, const char *label)
{
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
		   "<text x=\"%.1f\" y=\"%.1f\" class=\"yl\">",
		fr->l, y, fr->w - fr->r, y, fr->l - 6, y + 4);
	rpt_esc(f, label);
	fputs("</text>\n", f);
}

/* ---------------------------------------------------------------- bar charts */

/* Results of cmd in series, in report order (sizes as measured). */
static size_t rpt_series_members(const struct bench *b, const char *cmd, const char *series,
				 const struct bench_result **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < b->nresults && n < max; i++) {
		const struct bench_result *r = b->results[i];
		if (r->kind == BENCH_SCALAR && r->series && strcmp(r->cmd, cmd) == 0 &&
		    strcmp(r->series, series) == 0)
			out[n++] = r;
	}
	return n;
}

static double rpt_med(const double *v, const struct bench_result *r)
{
	return bench_median(v, r->n, BENCH_NVAL);
}

static void rpt_bar(FILE *f, double x, double w, double y0, double ph, double v, double vmax,
		    const char *color, const char *unit)
{
	char num[48];

	if (!isfinite(v) || v < 0)
		return;
	double h = vmax > 0 ? ph * v / vmax : 0;
	bench_num_str(v, num, sizeof(num));
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
		   "<title>%s ",
		x, y0 - h, w, h, color, num);
	rpt_esc(f, unit);
	fprintf(f, "</title></rect><text x=\"%.1f\" y=\"%.1f\" class=\"bv\">%s</text>\n", x + w / 2,
		y0 - h - 3, num);
}

static void rpt_bar_chart(FILE *f, const struct bench *b, const char *cmd, const char *series)
{
	const struct bench_result *m[64];
	size_t n = rpt_series_members(b, cmd, series, m, 64);
	struct rpt_frame fr = { .w = 720, .h = 300, .l = 70, .r = 20, .t = 44, .btm = 40 };
	double vmax = 0;
	char title[256], label[64];

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		double s = rpt_med(m[i]->shmq, m[i]), o = rpt_med(m[i]->base, m[i]);
		vmax = fmax(vmax, isfinite(s) ? s : 0);
		vmax = fmax(vmax, isfinite(o) ? o : 0);
	}
	double step = rpt_nice_step(vmax > 0 ? vmax : 1, 5);
	double top = step * ceil((vmax > 0 ? vmax : 1) / step);
	snprintf(title, sizeof(title), "%s, %s (%s, %s is better)", cmd, series, m[0]->unit,
		 m[0]->higher_is_better ? "higher" : "lower");
	rpt_svg_open(f, &fr, title);
	rpt_legend(f, &fr, m[0]->base_name);
	double y0 = fr.t + rpt_plot_h(&fr), ph = rpt_plot_h(&fr);
	int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
	for (double v = 0; v <= top * 1.0001; v += step) {
		snprintf(label, sizeof(label), "%.*f", decimals, v);
		rpt_hline(f, &fr, y0 - ph * v / top, label);
	}
	double gw = rpt_plot_w(&fr) / (double)n, bw = gw * (m[0]->base_name ? 0.35 : 0.6);
	for (size_t i = 0; i < n; i++) {
		double gx = fr.l + gw * (double)i + gw * 0.12;
		rpt_bar(f, gx, bw, y0, ph, rpt_med(m[i]->shmq, m[i]), top, RPT_SHMQ_COLOR, m[i]->unit);
		if (m[i]->base_name)
			rpt_bar(f, gx + bw + 2, bw, y0, ph, rpt_med(m[i]->base, m[i]), top,
				RPT_BASE_COLOR, m[i]->unit);
		bench_size_str(m[i]->size, label, sizeof(label), NULL);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">%s</text>\n",
			fr.l + gw * ((double)i + 0.5), y0 + 18, label);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">message size</text>\n",
		fr.l + rpt_plot_w(&fr) / 2, fr.h - 4);
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- latency curves */

/* x coordinate of quantile q: log10(1 / (1 - q)), so 90 %, 99 %, 99.9 % are evenly spaced. */
static double rpt_qx(double q)
{
	return -log10(1 - q);
}

static double rpt_lat_xmax(const struct bench_result *r)
{
	uint64_t n = r->shmq_hist ? r->shmq_hist->count : 0;

	if (r->base_hist && r->base_hist->count > n)
		n = r->base_hist->count;
	double x = n > 2 ? log10((double)n) : 1;
	return fmin(fmax(x, 1), 6);
}

static void rpt_lat_range(const struct bench_result *r, double *lo, double *hi)
{
	const struct bench_hist *h[2] = { r->shmq_hist, r->base_hist };

	*lo = INFINITY;
	*hi = 1;
	for (int i = 0; i < 2; i++) {
		if (!h[i] || !h[i]->count)
			continue;
		*lo = fmin(*lo, (double)bench_hist_quantile(h[i], 0.5));
		*hi = fmax(*hi, (double)h[i]->max);
	}
	if (!isfinite(*lo) || *lo < 1)
		*lo = 1;
	*lo = pow(10, floor(log10(*lo)));
	*hi = pow(10, ceil(log10(*hi)));
	if (*hi <= *lo)
		*hi = *lo * 10;
}

static void rpt_curve(FILE *f, const struct rpt_frame *fr, const struct bench_hist *h, double xmax,
		     double ylo, double yhi, const char *color)
{
	double pw = rpt_plot_w(fr), ph = rpt_plot_h(fr), y0 = fr->t + ph;
	double span = log10(yhi) - log10(ylo), x0 = rpt_qx(0.5);

	if (!h || !h->count)
		return;
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
	for (double x = x0; x <= xmax + 1e-9; x += 0.02) {
		double v = (double)bench_hist_quantile(h, 1 - pow(10, -x));
		double y = y0 - ph * (log10(fmax(v, ylo)) - log10(ylo)) / span;
		fprintf(f, "%.1f,%.1f ", fr->l + pw * (x - x0) / (xmax - x0), y);
	}
	double ymax = y0 - ph * (log10(fmax((double)h->max, ylo)) - log10(ylo)) / span;
	fprintf(f, "%.1f,%.1f\"/>\n", fr->l + pw, ymax);
}

static void rpt_latency_chart(FILE *f, const struct bench_result *r)
{
	struct rpt_frame fr = { .w = 720, .h = 300, .l = 70, .r = 20, .t = 44, .btm = 40 };
	double xmax = rpt_lat_xmax(r), ylo, yhi, x0 = rpt_qx(0.5);
	char title[400], label[48];
	static const char *const xlabels[] = { "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%" };

	rpt_lat_range(r, &ylo, &yhi);
	snprintf(title, sizeof(title), "%s, %s: latency by percentile (log scales)", r->cmd, r->name);
	rpt_svg_open(f, &fr, title);
	rpt_legend(f, &fr, r->base_name);
	double pw = rpt_plot_w(&fr), ph = rpt_plot_h(&fr), y0 = fr.t + ph;
	double span = log10(yhi) - log10(ylo);
	for (double v = ylo; v <= yhi * 1.0001; v *= 10) {
		rpt_ns_str(v, label, sizeof(label));
		rpt_hline(f, &fr, y0 - ph * (log10(v) - log10(ylo)) / span, label);
	}
	for (int k = 0; k <= (int)floor(xmax) && k < 7; k++) {
		double x = k == 0 ? x0 : (double)k;
		double px = fr.l + pw * (x - x0) / (xmax - x0);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
			   "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">%s</text>\n",
			px, fr.t, px, y0, px, y0 + 18, k == 0 ? xlabels[0] : xlabels[k]);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">percentile (max at the right edge)</text>\n",
		fr.l + pw / 2, fr.h - 4);
	rpt_curve(f, &fr, r->shmq_hist, xmax, ylo, yhi, RPT_SHMQ_COLOR);
	rpt_curve(f, &fr, r->base_hist, xmax, ylo, yhi, RPT_BASE_COLOR);
	fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- tables */

static void rpt_cell_num(FILE *f, double v, const char *unit)
{
	char val[80];

	bench_value_str(v, unit, val, sizeof(val));
	fputs("<td class=\"n\">", f);
	rpt_esc(f, val);
	fputs("</td>", f);
}

static void rpt_cell_ratio(FILE *f, double ratio)
{
	if (!isfinite(ratio)) {
		fputs("<td class=\"n\">-</td><td></td>", f);
		return;
	}
	double w = fmin(120, 40 * fabs(log2(ratio)) + 2);
	fprintf(f, "<td class=\"n\">%.2fx</td><td><span class=\"bar %s\" style=\"width:%.0fpx\"></span></td>",
		ratio, ratio >= 1 ? "win" : "loss", w);
}

static void rpt_row(FILE *f, const struct bench_result *r, int k, bool with_cmd)
{
	fputs("<tr>", f);
	if (with_cmd) {
		fputs("<td>", f);
		rpt_esc(f, r->cmd);
		fputs("</td>", f);
	}
	fputs("<td>", f);
	rpt_esc(f, r->name);
	if (r->kind == BENCH_LATENCY)
		fprintf(f, " %s", bench_quantile_names[k]);
	fputs("</td>", f);
	rpt_cell_num(f, bench_median(r->shmq + k, r->n, BENCH_NVAL), r->unit);
	rpt_cell_num(f, bench_median(r->base + k, r->n, BENCH_NVAL), r->unit);
	fputs("<td>", f);
	rpt_esc(f, r->base_name ? r->base_name : "");
	fputs("</td>", f);
	rpt_cell_ratio(f, bench_ratio(r, k));
	fputs("</tr>\n", f);
}

static void rpt_table_head(FILE *f, bool with_cmd)
{
	fprintf(f, "<table><thead><tr>%s<th>figure</th><th>libshmq</th><th>baseline</th>"
		   "<th>baseline is</th><th>ratio</th><th></th></tr></thead><tbody>\n",
		with_cmd ? "<th>subcommand</th>" : "");
}

/* One horizontal bar per figure with a baseline: its ratio on a log2 scale
 * around 1x, green to the right when libshmq is better, red to the left. */
static void rpt_ratio_chart(FILE *f, const struct bench *b)
{
	const double lo = -4, hi = 6; /* log2 of 1/16x .. 64x */
	size_t rows = 0;
	char label[400];

	for (size_t i = 0; i < b->nresults; i++)
		if (b->results[i]->base_name)
			rows += b->results[i]->kind == BENCH_LATENCY ? 2 : 1;
	if (rows == 0)
		return;
	struct rpt_frame fr = { .w = 900, .h = 44 + 18.0 * (double)rows + 30, .l = 380, .r = 60,
				.t = 44, .btm = 30 };
	double pw = rpt_plot_w(&fr), x1 = fr.l + pw * (0 - lo) / (hi - lo), y = fr.t;
	rpt_svg_open(f, &fr, "ratio to the baseline (log scale; right of 1x: libshmq better)");
	for (int e = (int)lo; e <= (int)hi; e++) {
		double x = fr.l + pw * (e - lo) / (hi - lo);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
			   "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">%gx</text>\n",
			x, fr.t - 4, x, fr.h - fr.btm, x, fr.h - fr.btm + 14, pow(2, e));
	}
	for (size_t i = 0; i < b->nresults; i++) {
		const struct bench_result *r = b->results[i];
		if (!r->base_name)
			continue;
		for (int k = 0; k < (r->kind == BENCH_LATENCY ? 2 : 1); k++, y += 18) {
			double ratio = bench_ratio(r, k);
			snprintf(label, sizeof(label), "%s: %s%s%s", r->cmd, r->name,
				 r->kind == BENCH_LATENCY ? " " : "",
				 r->kind == BENCH_LATENCY ? bench_quantile_names[k] : "");
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"yl\">", fr.l - 6, y + 12);
			rpt_esc(f, label);
			fputs("</text>", f);
			if (!isfinite(ratio) || ratio <= 0) {
				fputs("\n", f);
				continue;
			}
			double lr = fmin(fmax(log2(ratio), lo), hi), x = fr.l + pw * (lr - lo) / (hi - lo);
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/>"
				   "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">%.2fx</text>\n",
				fmin(x, x1), y + 2, fmax(fabs(x - x1), 1), ratio >= 1 ? "#38a169" : "#e53e3e",
				fmax(x, x1) + 4, y + 12, ratio);
		}
	}
	fputs("</svg>\n", f);
}

static void rpt_summary(FILE *f, const struct bench *b)
{
	bool any = false;

	fputs("<h2 id=\"summary\">Summary: libshmq versus the OS baseline</h2>\n"
	      "<p>Ratio: how many times better libshmq is on the same work, from the medians over "
	      "the runs (above 1: libshmq better). Latency figures by p50 and p99.</p>\n", f);
	rpt_table_head(f, true);
	for (size_t i = 0; i < b->nresults; i++) {
		const struct bench_result *r = b->results[i];
		if (!r->base_name)
			continue;
		any = true;
		for (int k = 0; k < (r->kind == BENCH_LATENCY ? 2 : 1); k++)
			rpt_row(f, r, k, true);
	}
	if (!any)
		fputs("<tr><td colspan=\"7\">no figure with a baseline was reported</td></tr>\n", f);
	fputs("</tbody></table>\n<div class=\"charts\">\n", f);
	rpt_ratio_chart(f, b);
	fputs("</div>\n", f);
}

/* ---------------------------------------------------------------- sections */

static bool rpt_series_seen(const struct bench *b, size_t upto, const struct bench_result *r)
{
	for (size_t i = 0; i < upto; i++) {
		const struct bench_result *o = b->results[i];
		if (o->series && o->kind == BENCH_SCALAR && strcmp(o->cmd, r->cmd) == 0 &&
		    strcmp(o->series, r->series) == 0)
			return true;
	}
	return false;
}

static void rpt_cmd_section(FILE *f, const struct bench *b, const struct bench_cmd_status *st)
{
	const char *cmd = st->cmd->name;

	fputs("<h2 id=\"cmd-", f);
	rpt_esc(f, cmd);
	fputs("\">", f);
	rpt_esc(f, cmd);
	fputs("</h2>\n<p>", f);
	rpt_esc(f, st->cmd->help);
	fprintf(f, ". %d of %d runs, %.1f s.", st->runs_ok, b->runs, (double)st->elapsed_ns / 1e9);
	if (st->err) {
		fputs(" <strong class=\"loss\">Failed: ", f);
		rpt_esc(f, shmq_strerror(st->err));
		fputs("</strong>", f);
	}
	fputs("</p>\n<div class=\"charts\">\n", f);
	for (size_t i = 0; i < b->nresults; i++) {
		const struct bench_result *r = b->results[i];
		if (strcmp(r->cmd, cmd) != 0)
			continue;
		if (r->kind == BENCH_SCALAR && r->series && !rpt_series_seen(b, i, r))
			rpt_bar_chart(f, b, cmd, r->series);
		else if (r->kind == BENCH_LATENCY)
			rpt_latency_chart(f, r);
	}
	fputs("</div>\n", f);
	rpt_table_head(f, false);
	for (size_t i = 0; i < b->nresults; i++) {
		const struct bench_result *r = b->results[i];
		if (strcmp(r->cmd, cmd) != 0)
			continue;
		for (int k = 0; k < (r->kind == BENCH_LATENCY ? BENCH_NVAL : 1); k++)
			rpt_row(f, r, k, false);
	}
	fputs("</tbody></table>\n", f);
}

static const char rpt_css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1a202c}"
	"h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #cbd5e0}"
	"table{border-collapse:collapse;margin:1em 0}"
	"td,th{padding:2px 10px;border-bottom:1px solid #edf2f7;text-align:left}"
	"td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
	".bar{display:inline-block;height:10px}.bar.win{background:#38a169}.bar.loss{background:#e53e3e}"
	"strong.loss{color:#e53e3e}.charts svg{margin:8px 0;display:block}"
	"svg text{font:11px system-ui,sans-serif;fill:#2d3748}svg .ct{font-weight:bold;font-size:13px}"
	"svg .yl{text-anchor:end}svg .xl,svg .bv{text-anchor:middle}svg .bv{font-size:10px}"
	"svg .grid{stroke:#e2e8f0;stroke-width:1}"
	"dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dd{margin:0}";

static void rpt_meta(FILE *f, const char *k, const char *v)
{
	fputs("<dt>", f);
	rpt_esc(f, k);
	fputs("</dt><dd>", f);
	rpt_esc(f, v);
	fputs("</dd>\n", f);
}

static void rpt_header(FILE *f, const struct bench *b)
{
	char model[256], buf[400];
	time_t now = time(NULL);
	struct tm tm;

	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
	      "<title>shmq-bench report</title><style>", f);
	fputs(rpt_css, f);
	fputs("</style></head><body>\n<h1>shmq-bench: libshmq beside the operating system</h1>\n<dl>\n", f);
	rpt_meta(f, "libshmq", shmq_version());
	gmtime_r(&now, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
	rpt_meta(f, "date", buf);
	bench_cpu_model(model, sizeof(model));
	snprintf(buf, sizeof(buf), "%s, %d usable", model, bench_ncpus());
	rpt_meta(f, "cpus", buf);
	if (b->pinned)
		snprintf(buf, sizeof(buf), "the two sides of each measurement pinned to cpus %d and %d",
			 b->cpu[0], b->cpu[1]);
	else
		snprintf(buf, sizeof(buf), "not pinned");
	rpt_meta(f, "pinning", buf);
	snprintf(buf, sizeof(buf), "%d per subcommand, medians%s", b->runs,
		 b->quick ? " (--quick: reduced work)" : "");
	rpt_meta(f, "runs", buf);
	rpt_meta(f, "allocator (tool)", bench_allocator());
	fputs("</dl>\n", f);
}

static int rpt_write_html(const struct bench *b, FILE *f)
{
	rpt_header(f, b);
	rpt_summary(f, b);
	for (size_t i = 0; i < b->nstatus; i++)
		rpt_cmd_section(f, b, &b->status[i]);
	fputs("<p>Raw data: <a href=\"results.json\">results.json</a>.</p>\n</body></html>\n", f);
	return ferror(f) ? -EIO : 0;
}

static int rpt_write_file(const struct bench *b, const char *dir, const char *leaf, bool html)
{
	char path[4096];
	FILE *f;
	int err;

	if (snprintf(path, sizeof(path), "%s/%s", dir, leaf) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (html) {
		err = rpt_write_html(b, f);
	} else {
		bench_print_json(b, f);
		err = ferror(f) ? -EIO : 0;
	}
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

int bench_write_report(const struct bench *b, const char *dir)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	int err = rpt_write_file(b, dir, "index.html", true);
	if (!err)
		err = rpt_write_file(b, dir, "results.json", false);
	return err;
}
