/* report.html: one self-contained page (no external fonts, scripts or
 * images) that a person opens from a CI artifact. A summary bar, the run
 * metadata, then a table per suite whose rows a small inline script filters
 * by status and id. Each result with details has a collapsible block: metrics
 * against their limits, the worst element, an SVG histogram of |error|, a
 * per-layer error plot for activation checks and any other detail (the haiku
 * transcript, ...) rendered generically as key/value blocks.
 *
 * All data is rendered here in C and escaped; the script reads nothing but
 * the DOM, so no run data ever lands inside <script>. The page is also
 * well-formed XML (explicit close tags, CDATA-wrapped style and script) so
 * xmllint can check the escaping in CI where no browser is installed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

#define KV_MAX_DEPTH 6
#define ARRAY_SHOWN 200

static void h(FILE *f, const char *s)
{
	report_xml_str(f, s, 0);
}

static void ha(FILE *f, const char *name, const char *s)
{
	fprintf(f, " %s=\"", name);
	report_xml_str(f, s, 1);
	fputc('"', f);
}

/* ---- page frame --------------------------------------------------------- */

static const char css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 48px;color:#222}\n"
	"h1{font-size:22px;margin:18px 0 8px}h2{font-size:17px;margin:28px 0 6px}\n"
	".verdict{padding:2px 10px;border-radius:4px;color:#fff;margin-left:8px}\n"
	".verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}\n"
	".bar{display:flex;height:14px;border-radius:4px;overflow:hidden;margin:8px 0;"
	"background:#eee;max-width:900px}\n"
	".bar span{display:block;height:100%;min-width:4px}\n"
	".s-pass{background:#43a047}.s-fail{background:#e53935}.s-skip{background:#bdbdbd}"
	".s-error{background:#8e24aa}\n"
	".badge{display:inline-block;min-width:40px;text-align:center;border-radius:3px;"
	"color:#fff;font-size:12px;padding:0 4px}\n"
	".badge.s-skip{color:#222}\n"
	"table{border-collapse:collapse;margin:4px 0}\n"
	"td,th{border-bottom:1px solid #e0e0e0;padding:3px 8px;text-align:left;vertical-align:top}\n"
	"th{background:#f5f5f5}\n"
	"table.results{width:100%}\n"
	"td.msg{max-width:64em}div.msg{white-space:pre-wrap;word-break:break-word}\n"
	"td.msg details{background:#fafafa;padding:0 6px}\n"
	"summary{cursor:pointer;color:#555}td.t{white-space:nowrap}\n"
	"tr.off,section.off{display:none}\n"
	".filter{margin:10px 0;display:flex;gap:14px;align-items:center;flex-wrap:wrap}\n"
	"dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px 0}\n"
	"dl.kv dt{font-weight:600}dl.kv dd{margin:0}\n"
	"pre{white-space:pre-wrap;background:#f5f5f5;padding:4px 6px;margin:2px 0}\n"
	"td.bad,span.bad{color:#c62828;font-weight:600}\n"
	".tag{background:#e3f2fd;border-radius:3px;padding:0 4px;margin-right:3px;font-size:12px}\n"
	".plots{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}\n"
	"svg text{font:11px system-ui,sans-serif}\n"
	"small{color:#666}h4{margin:4px 0}\n";

/* Filtering by status and id; "#selftest" in the URL makes the page check its
 * own filter and record the outcome on <body> (used by the Chromium test). */
static const char script[] =
	"(function () {\n"
	"  'use strict';\n"
	"  var statuses = ['pass', 'fail', 'skip', 'error'];\n"
	"  var boxes = document.querySelectorAll('input[data-filter]');\n"
	"  var query = document.getElementById('q');\n"
	"  function wanted(status) {\n"
	"    for (var i = 0; i < boxes.length; i++)\n"
	"      if (boxes[i].getAttribute('data-filter') === status)\n"
	"        return boxes[i].checked;\n"
	"    return true;\n"
	"  }\n"
	"  function apply() {\n"
	"    var q = query.value.toLowerCase();\n"
	"    var sections = document.querySelectorAll('section.suite');\n"
	"    for (var s = 0; s < sections.length; s++) {\n"
	"      var rows = sections[s].querySelectorAll('tr.result');\n"
	"      var visible = 0;\n"
	"      for (var i = 0; i < rows.length; i++) {\n"
	"        var id = rows[i].getAttribute('data-id').toLowerCase();\n"
	"        var hit = wanted(rows[i].getAttribute('data-status')) &&\n"
	"          (q === '' || id.indexOf(q) !== -1);\n"
	"        rows[i].classList.toggle('off', !hit);\n"
	"        if (hit)\n"
	"          visible++;\n"
	"      }\n"
	"      sections[s].classList.toggle('off', visible === 0);\n"
	"    }\n"
	"  }\n"
	"  function only(list) {\n"
	"    for (var i = 0; i < boxes.length; i++)\n"
	"      boxes[i].checked = list.indexOf(boxes[i].getAttribute('data-filter')) !== -1;\n"
	"    apply();\n"
	"  }\n"
	"  function selftest() {\n"
	"    var problems = [];\n"
	"    var rows = document.querySelectorAll('tr.result');\n"
	"    statuses.forEach(function (st) {\n"
	"      only([st]);\n"
	"      for (var i = 0; i < rows.length; i++) {\n"
	"        var shown = !rows[i].classList.contains('off');\n"
	"        if (shown !== (rows[i].getAttribute('data-status') === st))\n"
	"          problems.push(st + ':' + rows[i].getAttribute('data-id'));\n"
	"      }\n"
	"    });\n"
	"    only(statuses);\n"
	"    for (var i = 0; i < rows.length; i++)\n"
	"      if (rows[i].classList.contains('off'))\n"
	"        problems.push('all:' + rows[i].getAttribute('data-id'));\n"
	"    document.body.setAttribute('data-selftest', problems.length ?\n"
	"      'fail ' + problems.join(' ') : 'pass ' + rows.length);\n"
	"  }\n"
	"  for (var i = 0; i < boxes.length; i++)\n"
	"    boxes[i].addEventListener('change', apply);\n"
	"  query.addEventListener('input', apply);\n"
	"  document.getElementById('all').addEventListener('click', function () {\n"
	"    only(statuses);\n"
	"  });\n"
	"  document.getElementById('problems').addEventListener('click', function () {\n"
	"    only(['fail', 'error']);\n"
	"  });\n"
	"  apply();\n"
	"  if (location.hash === '#selftest')\n"
	"    selftest();\n"
	"  document.body.setAttribute('data-js', 'ok');\n"
	"})();\n";

static void fmt_duration(double s, char *buf, size_t n)
{
	if (s < 1)
		snprintf(buf, n, "%.1f ms", s * 1e3);
	else
		snprintf(buf, n, "%.2f s", s);
}

/* ---- generic key/value rendering --------------------------------------- */

static void kv_value(FILE *f, const json_t *v, int depth);

static void kv_object(FILE *f, const json_t *o, int depth)
{
	const char *key;
	json_t *v;

	if (!json_object_size(o)) {
		fputs("{}", f);
		return;
	}
	fputs("<dl class=\"kv\">", f);
	json_object_foreach((json_t *)o, key, v) {
		fputs("<dt>", f);
		h(f, key);
		fputs("</dt><dd>", f);
		kv_value(f, v, depth + 1);
		fputs("</dd>", f);
	}
	fputs("</dl>", f);
}

static int all_scalars(const json_t *a)
{
	const json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_object(v) || json_is_array(v))
			return 0;
	return 1;
}

static void kv_array(FILE *f, const json_t *a, int depth)
{
	const json_t *v;
	size_t i, n = json_array_size(a);
	char buf[64];

	if (all_scalars(a) && n <= 64) {
		fputs("[", f);
		json_array_foreach(a, i, v) {
			fputs(i ? ", " : "", f);
			if (json_is_string(v)) {
				fputs("&quot;", f);
				h(f, json_string_value(v));
				fputs("&quot;", f);
			} else {
				report_fmt_value(v, buf, sizeof(buf));
				h(f, buf);
			}
		}
		fputs("]", f);
		return;
	}
	fputs("<ol start=\"0\">", f);
	json_array_foreach(a, i, v) {
		if (i == ARRAY_SHOWN) {
			fprintf(f, "<li>&#8230; %zu more</li>", n - ARRAY_SHOWN);
			break;
		}
		fputs("<li>", f);
		kv_value(f, v, depth + 1);
		fputs("</li>", f);
	}
	fputs("</ol>", f);
}

static void kv_value(FILE *f, const json_t *v, int depth)
{
	char buf[64];

	if (depth > KV_MAX_DEPTH) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		fputs("<code>", f);
		h(f, s ? s : "");
		fputs("</code>", f);
		free(s);
		return;
	}
	if (json_is_object(v)) {
		kv_object(f, v, depth);
	} else if (json_is_array(v)) {
		kv_array(f, v, depth);
	} else if (json_is_string(v)) {
		int multi = strchr(json_string_value(v), '\n') != NULL;

		fputs(multi ? "<pre>" : "<span>", f);
		report_xml_escape(f, json_string_value(v), json_string_length(v), 0);
		fputs(multi ? "</pre>" : "</span>", f);
	} else if (json_is_real(v)) {
		fprintf(f, "%.6g", json_real_value(v));
	} else {
		report_fmt_value(v, buf, sizeof(buf));
		h(f, buf);
	}
}

/* ---- metrics ------------------------------------------------------------ */

/* Which metric a failed-limit name and a tolerance key refer to. */
static const struct {
	const char *metric, *limit, *failed;
} metric_map[] = {
	{ "mismatches", "exact", "exact" },
	{ "nonfinite", NULL, "nonfinite" },
	{ "max_abs", "max_abs", "max_abs" },
	{ "max_rel", "max_rel", "max_rel" },
	{ "nmse", "nmse", "nmse" },
	{ "max_ulp", "max_ulp", "max_ulp" },
	{ "cosine", "min_cosine", "cosine" },
	{ "argmax_agree", "argmax", "argmax" },
	{ "topk_overlap_min", "topk_min", "topk" },
};

static int in_array(const json_t *a, const char *s)
{
	const json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

static void metrics_table(FILE *f, const json_t *d)
{
	const json_t *m = json_object_get(d, "metrics"), *tol = json_object_get(d, "tolerance");
	const json_t *failed = json_object_get(d, "failed");
	const char *key;
	json_t *v;
	char buf[64];
	size_t k;

	fputs("<table class=\"metrics\"><tr><th>metric</th><th>value</th><th>limit</th></tr>", f);
	json_object_foreach((json_t *)m, key, v) {
		const char *limit = NULL;
		int bad = 0;

		for (k = 0; k < sizeof(metric_map) / sizeof(metric_map[0]); k++) {
			if (strcmp(metric_map[k].metric, key))
				continue;
			limit = metric_map[k].limit;
			bad = in_array(failed, metric_map[k].failed);
		}
		fprintf(f, "<tr><td>");
		h(f, key);
		fprintf(f, "</td><td%s>", bad ? " class=\"bad\"" : "");
		kv_value(f, v, KV_MAX_DEPTH - 1);
		fputs("</td><td>", f);
		if (limit && json_object_get(tol, limit)) {
			report_fmt_value(json_object_get(tol, limit), buf, sizeof(buf));
			h(f, buf);
		}
		fputs("</td></tr>", f);
	}
	fputs("</table>", f);
}

/* ---- SVG: |error| histogram --------------------------------------------- */

static void edge_label(double e, char *buf, size_t n)
{
	if (e <= 0)
		snprintf(buf, n, "0");
	else
		snprintf(buf, n, "1e%d", (int)lround(log10(e)));
}

/* Bars whose errors are all over the max_abs limit (when there is one) are red. */
static void svg_histogram(FILE *f, const json_t *hist, const json_t *tol)
{
	const json_t *edges = json_object_get(hist, "edges"), *counts = json_object_get(hist, "counts");
	const double W = 380, H = 180, L = 36, B = 34, T = 36, bw = (W - L - 8) / 10;
	const json_t *lim = json_object_get(tol, "max_abs");
	double maxc = 0;
	char buf[32];
	size_t i, nb = json_array_size(counts);

	if (nb != 10 || json_array_size(edges) != 11)
		return;
	for (i = 0; i < nb; i++)
		maxc = fmax(maxc, json_number_value(json_array_get(counts, i)));
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" role=\"img\">", W, H, W, H);
	fprintf(f, "<text x=\"%.0f\" y=\"14\">|actual &#8722; expected|, count on a log scale</text>", L);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#999\"/>",
		L, H - B, W - 8, H - B);
	for (i = 0; i < nb; i++) {
		double c = json_number_value(json_array_get(counts, i));
		double bh = maxc > 0 ? log10(1 + c) / log10(1 + maxc) * (H - B - T) : 0;
		double x = L + i * bw;
		char lo[16], hi[16];

		edge_label(json_number_value(json_array_get(edges, i)), lo, sizeof(lo));
		edge_label(json_number_value(json_array_get(edges, i + 1)), hi, sizeof(hi));
		int over = json_is_number(lim) &&
			   json_number_value(json_array_get(edges, i)) >= json_number_value(lim);

		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			"fill=\"%s\"><title>[%s, %s): %.0f</title></rect>",
			x + 1, H - B - bh, bw - 2, bh, over ? "#e57373" : "#64b5f6", lo, hi, c);
		if (c > 0)
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>",
				x + bw / 2, H - B - bh - 3, c);
		fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>",
			x + bw / 2, H - B + 13 + (i % 2) * 11, lo);
	}
	snprintf(buf, sizeof(buf), "%.0f", json_number_value(json_object_get(hist, "nonfinite")));
	fprintf(f, "<text x=\"%.0f\" y=\"30\" text-anchor=\"end\">non-finite: %s</text></svg>",
		W - 8, buf);
}

/* ---- SVG: per-layer error plot ------------------------------------------ */

struct plot {
	double W, H, L, R, T, B;
	double ymin, ymax; /* log10 */
	size_t n;
};

/* log10 of a layer metric: 0 and below sit on the floor, "inf" on the ceiling,
 * anything else (missing, "nan") is not drawn. */
static double layer_log(const json_t *v, double floor_, double ceil_)
{
	if (json_is_number(v)) {
		double x = json_number_value(v);

		return x > 0 ? log10(x) : floor_;
	}
	if (json_is_string(v) && !strcmp(json_string_value(v), "inf"))
		return ceil_;
	return NAN;
}

static double px(const struct plot *p, size_t i)
{
	double w = p->W - p->L - p->R;

	return p->L + (p->n > 1 ? (double)i * w / (double)(p->n - 1) : w / 2);
}

static double py(const struct plot *p, double l)
{
	if (l < p->ymin)
		l = p->ymin;
	if (l > p->ymax)
		l = p->ymax;
	return p->T + (p->ymax - l) / (p->ymax - p->ymin) * (p->H - p->T - p->B);
}

static void plot_range(struct plot *p, const json_t *layers, const json_t *tol)
{
	static const char *const keys[] = { "nmse", "max_rel" };
	double lo = INFINITY, hi = -INFINITY;
	const json_t *l;
	size_t i, k;

	json_array_foreach(layers, i, l) {
		for (k = 0; k < 2; k++) {
			const json_t *v = json_object_get(l, keys[k]);

			if (json_is_number(v) && json_number_value(v) > 0) {
				lo = fmin(lo, log10(json_number_value(v)));
				hi = fmax(hi, log10(json_number_value(v)));
			}
		}
	}
	for (k = 0; k < 2; k++) {
		const json_t *v = json_object_get(tol, keys[k]);

		if (json_is_number(v) && json_number_value(v) > 0) {
			lo = fmin(lo, log10(json_number_value(v)));
			hi = fmax(hi, log10(json_number_value(v)));
		}
	}
	if (!isfinite(lo)) {
		lo = -1;
		hi = 0;
	}
	p->ymin = fmax(floor(lo) - 1, -40);
	p->ymax = fmin(ceil(hi) + 1, 40);
	if (p->ymax <= p->ymin)
		p->ymax = p->ymin + 1;
}

static void plot_axes(FILE *f, const struct plot *p)
{
	int step = (int)ceil((p->ymax - p->ymin) / 10), e;

	fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
		"stroke=\"#999\"/>", p->L, p->T, p->W - p->L - p->R, p->H - p->T - p->B);
	for (e = (int)p->ymin; e <= (int)p->ymax; e += step) {
		double y = py(p, e);

		fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>"
			"<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>",
			p->L, y, p->W - p->R, y, p->L - 4, y + 4, e);
	}
}

static void plot_limit(FILE *f, const struct plot *p, const json_t *tol, const char *key,
		       const char *color)
{
	const json_t *v = json_object_get(tol, key);
	double y;

	if (!json_is_number(v) || json_number_value(v) <= 0)
		return;
	y = py(p, log10(json_number_value(v)));
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" "
		"stroke-dasharray=\"2 3\"><title>%s limit</title></line>",
		p->L, y, p->W - p->R, y, color, key);
}

static void plot_series(FILE *f, const struct plot *p, const json_t *layers, const char *key,
			const char *color, const char *dash)
{
	const json_t *l;
	size_t i;
	int open = 0;

	json_array_foreach(layers, i, l) {
		double v = layer_log(json_object_get(l, key), p->ymin, p->ymax);

		if (isnan(v))
			continue;
		if (!open)
			fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s "
				"points=\"", color, dash);
		fprintf(f, "%s%.1f,%.1f", open ? " " : "", px(p, i), py(p, v));
		open = 1;
	}
	if (open)
		fputs("\"/>", f);
}

static void plot_points(FILE *f, const struct plot *p, const json_t *layers)
{
	const json_t *l;
	char nm[32], mr[32];
	size_t i;

	json_array_foreach(layers, i, l) {
		double v = layer_log(json_object_get(l, "nmse"), p->ymin, p->ymax);
		int bad = json_is_false(json_object_get(l, "ok"));

		if (isnan(v))
			continue;
		report_fmt_value(json_object_get(l, "nmse"), nm, sizeof(nm));
		report_fmt_value(json_object_get(l, "max_rel"), mr, sizeof(mr));
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>",
			px(p, i), py(p, v), bad ? "#e53935" : "#43a047");
		h(f, report_str(l, "tap", "?"));
		fprintf(f, ": nmse %s, max_rel %s%s</title></circle>", nm, mr, bad ? " (over limit)" : "");
	}
}

static void plot_labels(FILE *f, const struct plot *p, const json_t *layers)
{
	size_t i, every = p->n > 40 ? (p->n + 39) / 40 : 1;
	double y = p->H - p->B + 12;

	for (i = 0; i < p->n; i += every) {
		double x = px(p, i);

		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
			"transform=\"rotate(-45 %.1f %.1f)\">", x, y, x, y);
		h(f, report_str(json_array_get(layers, i), "tap", "?"));
		fputs("</text>", f);
	}
}

/* Index of the first layer over its limit, or -1. */
static long first_bad(const json_t *layers)
{
	const json_t *l;
	size_t i;

	json_array_foreach(layers, i, l)
		if (json_is_false(json_object_get(l, "ok")))
			return (long)i;
	return -1;
}

static void svg_layers(FILE *f, const json_t *layers, const json_t *tol)
{
	struct plot p = { .W = 760, .H = 300, .L = 52, .R = 16, .T = 26, .B = 90 };
	long bad = first_bad(layers);

	p.n = json_array_size(layers);
	if (!p.n)
		return;
	plot_range(&p, layers, tol);
	fputs("<div><p>", f);
	if (bad >= 0) {
		fputs("<span class=\"bad\">Divergence starts at ", f);
		h(f, report_str(json_array_get(layers, bad), "tap", "?"));
		fprintf(f, "</span> (tap %ld of %zu).", bad, p.n);
	} else {
		fprintf(f, "All %zu taps within the limit.", p.n);
	}
	fputs("</p>", f);
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" role=\"img\">", p.W, p.H, p.W, p.H);
	plot_axes(f, &p);
	plot_limit(f, &p, tol, "nmse", "#1e88e5");
	plot_limit(f, &p, tol, "max_rel", "#fb8c00");
	if (bad >= 0)
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#e53935\" "
			"stroke-dasharray=\"5 3\"/>", px(&p, bad), p.T, px(&p, bad), p.H - p.B);
	plot_series(f, &p, layers, "max_rel", "#fb8c00", " stroke-dasharray=\"4 2\"");
	plot_series(f, &p, layers, "nmse", "#1e88e5", "");
	plot_points(f, &p, layers);
	plot_labels(f, &p, layers);
	fprintf(f, "<text x=\"%.0f\" y=\"16\">per-layer error (log scale): "
		"<tspan fill=\"#1e88e5\">&#8212; nmse</tspan> "
		"<tspan fill=\"#fb8c00\">- - max_rel</tspan> "
		"<tspan fill=\"#e53935\">&#9679; over limit</tspan></text>", p.L);
	fputs("</svg></div>", f);
}

/* ---- one result --------------------------------------------------------- */

static const char *const known_details[] = {
	"metrics", "tolerance", "worst", "histogram", "layers",
};

static int is_known(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(known_details) / sizeof(known_details[0]); i++)
		if (!strcmp(key, known_details[i]))
			return 1;
	return 0;
}

static void details_body(FILE *f, const json_t *d)
{
	const json_t *tol = json_object_get(d, "tolerance");
	const char *key;
	json_t *v, *rest = json_object();

	fputs("<div class=\"plots\">", f);
	if (json_is_object(json_object_get(d, "metrics")))
		metrics_table(f, d);
	if (json_is_object(json_object_get(d, "worst"))) {
		fputs("<div><h4>worst element</h4>", f);
		kv_value(f, json_object_get(d, "worst"), 1);
		fputs("</div>", f);
	}
	if (json_is_object(tol)) {
		fputs("<div><h4>tolerance</h4>", f);
		kv_value(f, tol, 1);
		fputs("</div>", f);
	}
	if (json_is_object(json_object_get(d, "histogram")))
		svg_histogram(f, json_object_get(d, "histogram"), tol);
	fputs("</div>", f);
	if (json_is_array(json_object_get(d, "layers")))
		svg_layers(f, json_object_get(d, "layers"), tol);
	json_object_foreach((json_t *)d, key, v) {
		/* An empty "failed" list says nothing the verdict does not. */
		if (is_known(key) || (!strcmp(key, "failed") && !json_array_size(v)))
			continue;
		json_object_set(rest, key, v);
	}
	/* Everything else a kind recorded (the haiku transcript, ...), as is. */
	if (json_object_size(rest))
		kv_value(f, rest, 0);
	json_decref(rest);
}

static void result_row(FILE *f, const json_t *r)
{
	const char *st = report_str(r, "status", "error");
	const json_t *d = json_object_get(r, "details"), *tags = json_object_get(r, "tags"), *t;
	char dur[32], rowid[600];
	size_t i;

	snprintf(rowid, sizeof(rowid), "%s %s%s%s", report_str(r, "id", ""),
		 report_str(r, "backend", ""), report_str(r, "source", NULL) ? " " : "",
		 report_str(r, "source", ""));
	fmt_duration(json_number_value(json_object_get(r, "duration_s")), dur, sizeof(dur));
	fprintf(f, "<tr class=\"result\" data-status=\"%s\"", st);
	ha(f, "data-id", rowid);
	fprintf(f, "><td><span class=\"badge s-%s\">%s</span></td><td>", st, st);
	h(f, report_str(r, "id", ""));
	fputs("</td><td>", f);
	h(f, report_str(r, "backend", ""));
	if (report_str(r, "source", NULL)) {
		fputs("<br/><small>", f);
		h(f, report_str(r, "source", ""));
		fputs("</small>", f);
	}
	fputs("</td><td>", f);
	h(f, report_str(r, "kind", ""));
	json_array_foreach(tags, i, t) {
		if (!json_is_string(t))
			continue;
		fputs(" <span class=\"tag\">", f);
		h(f, json_string_value(t));
		fputs("</span>", f);
	}
	fprintf(f, "</td><td class=\"t\">%s</td><td class=\"msg\"><div class=\"msg\">", dur);
	h(f, report_str(r, "message", ""));
	fputs("</div>", f);
	if (json_is_object(d) && json_object_size(d)) {
		/* Open where someone will want to look: failures and errors. */
		fprintf(f, "<details%s><summary>details</summary>",
			strcmp(st, "fail") && strcmp(st, "error") ? "" : " open=\"open\"");
		details_body(f, d);
		fputs("</details>", f);
	}
	fputs("</td></tr>\n", f);
}

/* ---- page sections ------------------------------------------------------ */

static void counts_text(FILE *f, const struct report_counts *c)
{
	int s;

	fprintf(f, "%d checks", c->total);
	for (s = 0; s < RS_COUNT; s++)
		fprintf(f, " &#183; %d %s", c->n[s], report_status_names[s]);
}

static void summary(FILE *f, const json_t *run, const struct report_counts *c)
{
	const char *verdict = report_verdict(run);
	int s;

	fprintf(f, "<h1>conform report <span class=\"verdict %s\">%s</span></h1>\n",
		!strcmp(verdict, "pass") ? "pass" : "fail", !strcmp(verdict, "pass") ? "PASS" : "FAIL");
	fputs("<div class=\"bar\">", f);
	for (s = 0; s < RS_COUNT; s++) {
		if (!c->n[s])
			continue;
		fprintf(f, "<span class=\"s-%s\" style=\"width:%.3f%%\" title=\"%d %s\"></span>",
			report_status_names[s], 100.0 * c->n[s] / c->total, c->n[s],
			report_status_names[s]);
	}
	fputs("</div>\n<p>", f);
	counts_text(f, c);
	fputs("</p>\n<div class=\"filter\">", f);
	for (s = 0; s < RS_COUNT; s++)
		fprintf(f, "<label><input type=\"checkbox\" checked=\"checked\" data-filter=\"%s\"/> "
			"%s (%d)</label>", report_status_names[s], report_status_names[s], c->n[s]);
	fputs("<button type=\"button\" id=\"problems\">fail + error only</button>"
	      "<button type=\"button\" id=\"all\">all</button>"
	      "<input type=\"search\" id=\"q\" placeholder=\"filter by id\"/></div>\n", f);
}

static void suite_section(FILE *f, const json_t *results, const char *suite, size_t n)
{
	const json_t *r;
	struct report_counts c;
	size_t i;

	report_count(results, suite, &c);
	fprintf(f, "<section class=\"suite\" id=\"suite-%zu\"><h2>", n);
	h(f, suite);
	fputs(" <small>", f);
	counts_text(f, &c);
	fputs("</small></h2>\n<table class=\"results\"><thead><tr><th>status</th><th>check</th>"
	      "<th>backend</th><th>kind</th><th>time</th><th>message</th></tr></thead><tbody>\n", f);
	json_array_foreach(results, i, r)
		if (!strcmp(report_str(r, "suite", ""), suite))
			result_row(f, r);
	fputs("</tbody></table></section>\n", f);
}

int report_emit_html(const json_t *run, FILE *f)
{
	const json_t *results = json_object_get(run, "results");
	json_t *suites = report_suites(results), *s;
	struct report_counts c;
	size_t i;

	report_count(results, NULL, &c);
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>", f);
	fprintf(f, "<title>conform report: %s</title>\n<style>/*<![CDATA[*/\n%s/*]]>*/</style>"
		"</head>\n<body data-js=\"off\">\n", report_verdict(run), css);
	summary(f, run, &c);
	fputs("<details><summary>run</summary>", f);
	kv_value(f, json_object_get(run, "run"), 0);
	fputs("</details>\n", f);
	json_array_foreach(suites, i, s)
		suite_section(f, results, json_string_value(s), i);
	if (!c.total)
		fputs("<p>No checks ran.</p>\n", f);
	fprintf(f, "<script>//<![CDATA[\n%s//]]></script>\n</body></html>\n", script);
	json_decref(suites);
	return ferror(f) ? -1 : 0;
}
