/* sim_svg.c: swarm-sim's chart (see sim.h): the offered load and the devices in service over
 * a run, as SVG text written by hand (no library), to open in a browser. Load is on the left
 * axis, devices on the right; long runs are drawn in at most SVG_BINS bins (mean load, most
 * devices in each), so that the file stays small. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "tools/sim.h"

#define SVG_W 960
#define SVG_H 500
#define PLOT_L 80
#define PLOT_R 80
#define PLOT_T 72
#define PLOT_B 64
#define SVG_BINS 1600

#define COLOR_LOAD "#1f77b4"
#define COLOR_ACTIVE "#d62728"
#define COLOR_WARMING "#2ca02c"
#define COLOR_TARGET "#7f7f7f"

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

/* The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at
 * or above v (v > 0): an axis's top, split in five. */
static double round_up(double v, const double *m, size_t n)
{
	if (!(v > 0))
		return 1;
	double p = pow(10, floor(log10(v)));
	for (size_t i = 0; i < n; i++)
		if (m[i] * p >= v * (1 - 1e-12))
			return m[i] * p;
	return 10 * p;
}

static double nice_ceil(double v)
{
	static const double m[] = { 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10 };
	return round_up(v, m, sizeof m / sizeof m[0]);
}

/* The time axis's step: 1, 2, 2.5 or 5 times a power of ten. */
static double nice_step(double v)
{
	static const double m[] = { 1, 2, 2.5, 5, 10 };
	return round_up(v, m, sizeof m / sizeof m[0]);
}

struct bin {
	double t_s, offered;
	uint32_t active, coming, target; /* coming: active + warming */
};

/* One polyline of a series; step draws it as a step function. */
static void polyline(FILE *f, const struct bin *b, size_t n, double dur, double ymax, int which,
		     int step, const char *style)
{
	double pw = SVG_W - PLOT_L - PLOT_R, ph = SVG_H - PLOT_T - PLOT_B;
	fprintf(f, "<polyline fill=\"none\" %s points=\"", style);
	double prev_y = 0;
	for (size_t i = 0; i < n; i++) {
		double v = which == 0 ? b[i].offered :
			   which == 1 ? b[i].active :
			   which == 2 ? b[i].coming :
					b[i].target;
		double x = PLOT_L + pw * b[i].t_s / dur;
		double y = PLOT_T + ph * (1 - v / ymax);
		if (step && i)
			fprintf(f, "%.1f,%.1f ", x, prev_y);
		fprintf(f, "%.1f,%.1f ", x, y);
		prev_y = y;
	}
	fprintf(f, "\"/>\n");
}

/* The run's ticks into n_bins bins (mean load, most devices); the largest load and device
 * count drawn into *max_load and *max_dev. */
static void bin_ticks(const struct swarm_sim_report *r, struct bin *b, size_t n_bins,
		      double *max_load, double *max_dev)
{
	for (size_t i = 0; i < n_bins; i++) {
		size_t lo = i * r->n_ticks / n_bins, hi = (i + 1) * r->n_ticks / n_bins;
		double sum = 0;
		for (size_t k = lo; k < hi; k++) {
			const struct swarm_sim_tick *t = &r->ticks[k];
			sum += t->offered;
			uint32_t coming = t->active + t->warming;
			if (t->active > b[i].active)
				b[i].active = t->active;
			if (coming > b[i].coming)
				b[i].coming = coming;
			if (t->target > b[i].target)
				b[i].target = t->target;
		}
		b[i].t_s = r->ticks[hi - 1].t_s;
		b[i].offered = sum / (double)(hi - lo);
		if (b[i].offered > *max_load)
			*max_load = b[i].offered;
		if (b[i].coming > *max_dev)
			*max_dev = b[i].coming;
		if (b[i].target > *max_dev)
			*max_dev = b[i].target;
	}
}

/* The title, grid, ticks and labels: time below (over dur seconds), load left up to ymax_load,
 * devices right up to ymax_dev. */
static void draw_axes(FILE *f, const char *title, double dur, double ymax_load, double ymax_dev)
{
	/* Time in the unit that reads best. */
	double unit = dur > 7200 ? 3600 : dur > 300 ? 60 : 1;
	const char *unit_name = unit == 3600 ? "hours" : unit == 60 ? "minutes" : "seconds";
	double xmax = dur / unit, xstep = nice_step(xmax / 8);
	double pw = SVG_W - PLOT_L - PLOT_R, ph = SVG_H - PLOT_T - PLOT_B;

	fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", SVG_W / 2);
	put_escaped(f, title ? title : "swarm-sim");
	fprintf(f, "</text>\n");
	fprintf(f, "<g stroke=\"#e0e0e0\">\n");
	for (int i = 0; i <= 5; i++) {
		double y = PLOT_T + ph * (1 - i / 5.0);
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PLOT_L, y,
			PLOT_L + pw, y);
	}
	fprintf(f, "</g>\n<g>\n");
	for (int i = 0; i <= 5; i++) {
		double y = PLOT_T + ph * (1 - i / 5.0);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"%s\">%g</text>\n",
			PLOT_L - 6, y + 4, COLOR_LOAD, ymax_load * i / 5);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%g</text>\n", PLOT_L + pw + 6,
			y + 4, COLOR_ACTIVE, ymax_dev * i / 5);
	}
	for (double x = 0; x <= xmax * (1 + 1e-9); x += xstep) {
		double px = PLOT_L + pw * x / xmax;
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
			px, PLOT_T + ph, px, PLOT_T + ph + 5);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px,
			PLOT_T + ph + 18, x);
	}
	fprintf(f, "</g>\n");
	fprintf(f,
		"<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		"stroke=\"black\"/>\n",
		PLOT_L, PLOT_T, pw, ph);
	fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">time (%s)</text>\n",
		PLOT_L + pw / 2, SVG_H - 22, unit_name);
	fprintf(f,
		"<text transform=\"rotate(-90 %d %.1f)\" x=\"%d\" y=\"%.1f\" "
		"text-anchor=\"middle\" fill=\"%s\">offered load (requests/s per tick)</text>\n",
		22, PLOT_T + ph / 2, 22, PLOT_T + ph / 2, COLOR_LOAD);
	fprintf(f,
		"<text transform=\"rotate(90 %d %.1f)\" x=\"%d\" y=\"%.1f\" "
		"text-anchor=\"middle\" fill=\"%s\">devices</text>\n",
		SVG_W - 22, PLOT_T + ph / 2, SVG_W - 22, PLOT_T + ph / 2, COLOR_ACTIVE);
}

/* The legend, one row between the title and the plot, clear of the data. */
static void draw_legend(FILE *f)
{
	static const struct {
		const char *name, *style;
		int width;
	} legend[] = {
		{ "offered load (req/s, left axis)", "stroke=\"" COLOR_LOAD "\" stroke-width=\"2\"",
		  230 },
		{ "devices active (right axis)", "stroke=\"" COLOR_ACTIVE "\" stroke-width=\"2\"",
		  210 },
		{ "devices active + warming",
		  "stroke=\"" COLOR_WARMING "\" stroke-width=\"1.5\" stroke-dasharray=\"6,3\"",
		  200 },
		{ "policy target", "stroke=\"" COLOR_TARGET "\" stroke-dasharray=\"2,3\"", 120 },
	};
	int lx = PLOT_L, ly = PLOT_T - 14;
	fprintf(f, "<g class=\"legend\">\n");
	for (size_t i = 0; i < sizeof legend / sizeof legend[0]; i++) {
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" %s/>\n", lx, ly - 4,
			lx + 26, ly - 4, legend[i].style);
		fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", lx + 32, ly, legend[i].name);
		lx += legend[i].width;
	}
	fprintf(f, "</g>\n");
}

int swarm_sim_write_svg(FILE *f, const struct swarm_sim_report *r, const char *title)
{
	size_t n_bins = r->n_ticks < SVG_BINS ? r->n_ticks : SVG_BINS;
	struct bin *b = calloc(n_bins ? n_bins : 1, sizeof *b);
	if (!b)
		return -ENOMEM;
	double max_load = 0, max_dev = 0;
	bin_ticks(r, b, n_bins, &max_load, &max_dev);
	double dur = r->duration_s > 0 ? r->duration_s : 1;
	double ymax_load = nice_ceil(max_load * 1.05);
	double ymax_dev = nice_ceil(max_dev * 1.05);

	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
		SVG_W, SVG_H, SVG_W, SVG_H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	draw_axes(f, title, dur, ymax_load, ymax_dev);
	if (n_bins) {
		polyline(f, b, n_bins, dur, ymax_load, 0, 0,
			 "stroke=\"" COLOR_LOAD "\" stroke-width=\"1\" stroke-opacity=\"0.8\"");
		polyline(f, b, n_bins, dur, ymax_dev, 3, 1,
			 "stroke=\"" COLOR_TARGET "\" stroke-width=\"1\" stroke-dasharray=\"2,3\"");
		polyline(f, b, n_bins, dur, ymax_dev, 2, 1,
			 "stroke=\"" COLOR_WARMING
			 "\" stroke-width=\"1.5\" stroke-dasharray=\"6,3\"");
		polyline(f, b, n_bins, dur, ymax_dev, 1, 1,
			 "stroke=\"" COLOR_ACTIVE "\" stroke-width=\"2\"");
	}
	draw_legend(f);
	fprintf(f, "</svg>\n");
	free(b);
	return ferror(f) ? -EIO : 0;
}

int swarm_sim_write_ticks_csv(const char *path, const struct swarm_sim_report *r)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "t_s,offered,rate_long,rate_short,service_rate,busy,active,warming,draining,"
		   "target,queue,p99_us,missed\n");
	for (size_t i = 0; i < r->n_ticks; i++) {
		const struct swarm_sim_tick *t = &r->ticks[i];
		fprintf(f, "%.3f,%.1f,%.1f,%.1f,%.2f,%.4f,%u,%u,%u,%u,%u,%.1f,%" PRIu64 "\n",
			t->t_s, t->offered, t->rate_long, t->rate_short, t->service_rate, t->busy,
			t->active, t->warming, t->draining, t->target, t->queue, t->p99_ns / 1e3,
			t->missed);
	}
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f))
		rc = -errno;
	return rc;
}
