/*
 * compose.c - outbox-compose, run by `outbox send` (a program of its
 * own: the sendmail command never loads libmagic).  Builds the MIME
 * message of SPEC "Composing" from the same arguments (send_args.c) and
 * writes it to stdout, CRLF lines; outbox then submits it as
 * `sendmail -t` would (recipients from To, Cc and Bcc, Bcc removed).
 *
 * The shape: the UTF-8 text (stdin, or -m FILE) as text/plain; with -i
 * images, a multipart/alternative of that text and a multipart/related
 * HTML version that shows each image (Content-ID) under the text; with
 * -a files, all that inside a multipart/mixed with each file after it.
 * Types come from the content (libmagic); images must be image/ types.
 * Text goes as 7bit when it can, else quoted-printable; files as
 * base64.  Boundaries are checked against every part they enclose.
 *
 * Exit 0, 64 usage, 65 bad input (not UTF-8, a control character in a
 * header, an -i that is no image, a bad address), 66 a file that cannot
 * be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../../common/address.h"
#include "../../common/headers.h"
#include "../send_args.h"
#include "mime.h"

#define FILE_MAX (64u << 20)	/* octets of one file or of the body */

struct part {
	const char *path;
	const char *name;	/* its base name, for the headers */
	struct buf data;
	char type[128];
	char cid[96];		/* inline images */
};

static int fail(int rc, const char *fmt, const char *arg)
{
	fprintf(stderr, "outbox send: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return rc;
}

static int read_all_fd(int fd, struct buf *b)
{
	char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		if (b->len + (size_t)n > FILE_MAX) {
			errno = EFBIG;
			return -1;
		}
		buf_add(b, chunk, (size_t)n);
	}
	return n < 0 ? -1 : 0;
}

static int read_file(const char *path, struct buf *b)
{
	int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = read_all_fd(fd, b);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* "Name <addr>" or "addr" as a header's address: checked, the name
 * quoted or encoded. */
static int add_address(struct buf *h, const char *arg, bool first)
{
	const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	struct err e;
	for (const char *c = arg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return fail(EX_DATAERR, "a control character in the address %s", "");
	char *name = lt ? xstrndup(arg, (size_t)(lt - arg)) : xstrdup("");
	char *addr = lt && gt ? xstrndup(lt + 1, (size_t)(gt - lt - 1)) : xstrdup(arg);
	char *n = trim(name);
	if (*n == '"' && strlen(n) >= 2 && n[strlen(n) - 1] == '"') {
		n[strlen(n) - 1] = '\0';
		n++;
	}
	int rc = 0;
	if ((lt && (!gt || gt[1])) || addr_check(trim(addr), &e) < 0 || !strchr(addr, '@')) {
		rc = fail(EX_DATAERR, "not an address: %s", arg);
	} else {
		buf_adds(h, first ? "" : ",\r\n\t");
		if (*n) {
			header_display_name(h, n);
			buf_printf(h, " <%s>", trim(addr));
		} else {
			buf_adds(h, trim(addr));
		}
	}
	free(name);
	free(addr);
	return rc;
}

static int address_field(struct buf *h, const char *field, const char *const *v, int n)
{
	if (!n)
		return 0;
	buf_printf(h, "%s: ", field);
	for (int i = 0; i < n; i++)
		if (add_address(h, v[i], i == 0))
			return EX_DATAERR;
	buf_adds(h, "\r\n");
	return 0;
}

static int load_part(magic_t m, struct part *p, const char *path, bool image, int k)
{
	buf_init(&p->data);
	p->path = path;
	p->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (read_file(path, &p->data) < 0)
		return fail(EX_NOINPUT, "cannot read %s", path);
	const char *t = magic_buffer(m, p->data.data ? p->data.data : "", p->data.len);
	snprintf(p->type, sizeof p->type, "%s", t && strchr(t, '/') ? t : "application/octet-stream");
	if (strcmp(p->type, "text/plain") == 0 && !utf8_valid(p->data.data ? p->data.data : "", p->data.len))
		snprintf(p->type, sizeof p->type, "application/octet-stream");
	if (image && strncmp(p->type, "image/", 6) != 0)
		return fail(EX_DATAERR, "-i %s: not an image", path);
	snprintf(p->cid, sizeof p->cid, "part%d.%08lx%08lx@outbox", k, (unsigned long)random(),
		 (unsigned long)random());
	return 0;
}

/* A text part's headers and body: 7bit when it can, else QP. */
static void text_part(struct buf *out, const char *subtype, const char *text, size_t n)
{
	bool qp = text_needs_qp(text, n);
	buf_printf(out, "Content-Type: text/%s; charset=%s\r\nContent-Transfer-Encoding: %s\r\n\r\n", subtype,
		   qp || !is_ascii(text, n) ? "utf-8" : "us-ascii", qp ? "quoted-printable" : "7bit");
	if (qp) {
		qp_encode(out, text, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			buf_addc(out, '\r');
		buf_addc(out, text[i]);
	}
	if (n && text[n - 1] != '\n')
		buf_adds(out, "\r\n");
}

static void file_part(struct buf *out, const struct part *p, bool inline_img)
{
	buf_printf(out, "Content-Type: %s", p->type);
	filename_param(out, "name", p->name);
	buf_printf(out, "\r\nContent-Disposition: %s", inline_img ? "inline" : "attachment");
	filename_param(out, "filename", p->name);
	buf_adds(out, "\r\nContent-Transfer-Encoding: base64\r\n");
	if (inline_img)
		buf_printf(out, "Content-ID: <%s>\r\n", p->cid);
	buf_adds(out, "\r\n");
	base64_lines(out, p->data.data ? p->data.data : "", p->data.len);
}

/* The HTML version: the text, escaped, then each image. */
static void html_text(struct buf *out, const char *text, size_t n, const struct part *img, int nimg)
{
	buf_adds(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
		      "<div style=\"white-space: pre-wrap\">");
	for (size_t i = 0; i < n; i++) {
		switch (text[i]) {
		case '<': buf_adds(out, "&lt;"); break;
		case '>': buf_adds(out, "&gt;"); break;
		case '&': buf_adds(out, "&amp;"); break;
		case '"': buf_adds(out, "&quot;"); break;
		case '\r': break;
		default: buf_addc(out, text[i]);
		}
	}
	buf_adds(out, "</div>\n");
	for (int i = 0; i < nimg; i++) {
		buf_printf(out, "<p><img src=\"cid:%s\" alt=\"", img[i].cid);
		for (const char *c = img[i].name; *c; c++)
			if (*c != '"' && *c != '<' && *c != '>' && *c != '&')
				buf_addc(out, *c);
		buf_adds(out, "\"></p>\n");
	}
	buf_adds(out, "</body></html>\n");
}

/* A boundary found in none of the parts it encloses. */
static void boundary(char *out, size_t n, const char *kind, const struct buf *const *parts, int nparts)
{
	for (;;) {
		snprintf(out, n, "=_outbox_%s_%08lx%08lx", kind, (unsigned long)random(), (unsigned long)random());
		bool taken = false;
		for (int i = 0; i < nparts && !taken; i++)
			taken = parts[i]->data && memmem(parts[i]->data, parts[i]->len, out, strlen(out));
		if (!taken)
			return;
	}
}

/* The parts as one multipart body of subtype, its Content-Type first. */
static void multipart(struct buf *out, const char *subtype, const char *extra, struct buf *const *parts,
		      int nparts)
{
	char b[80];
	boundary(b, sizeof b, subtype, (const struct buf *const *)parts, nparts);
	buf_printf(out, "Content-Type: multipart/%s;%s\r\n\tboundary=\"%s\"\r\n\r\n", subtype, extra, b);
	/* the CRLF before a delimiter is the delimiter's: each part keeps its last line end */
	for (int i = 0; i < nparts; i++) {
		buf_printf(out, "%s--%s\r\n", i ? "\r\n" : "", b);
		buf_add(out, parts[i]->data, parts[i]->len);
	}
	buf_printf(out, "\r\n--%s--\r\n", b);
}

static int headers(struct buf *h, const struct send_opts *o)
{
	int rc = 0;
	if (o->from)
		rc = address_field(h, "From", &o->from, 1);
	if (!rc)
		rc = address_field(h, "To", o->to, o->nto);
	if (!rc)
		rc = address_field(h, "Cc", o->cc, o->ncc);
	if (!rc)
		rc = address_field(h, "Bcc", o->bcc, o->nbcc);
	if (rc)
		return rc;
	if (o->subject) {
		for (const char *c = o->subject; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return fail(EX_DATAERR, "a control character in the subject%s", "");
		if (!utf8_valid(o->subject, strlen(o->subject)))
			return fail(EX_DATAERR, "the subject is not UTF-8%s", "");
		buf_adds(h, "Subject: ");
		header_words(h, o->subject, 9);
		buf_adds(h, "\r\n");
	}
	buf_adds(h, "MIME-Version: 1.0\r\n");
	return 0;
}

/* The body as its Content-* headers and content, in out. */
static void body(struct buf *out, const struct buf *text, struct part *img, int nimg, struct part *att, int natt)
{
	struct buf plain, alt;
	buf_init(&plain);
	buf_init(&alt);
	text_part(&plain, "plain", text->data ? text->data : "", text->len);
	if (nimg) {
		struct buf html, htmlpart, related;
		buf_init(&html);
		buf_init(&htmlpart);
		buf_init(&related);
		html_text(&html, text->data ? text->data : "", text->len, img, nimg);
		text_part(&htmlpart, "html", html.data, html.len);
		struct buf **rel = xcalloc((size_t)nimg + 1, sizeof *rel);
		rel[0] = &htmlpart;
		for (int i = 0; i < nimg; i++) {
			rel[i + 1] = xcalloc(1, sizeof **rel);
			buf_init(rel[i + 1]);
			file_part(rel[i + 1], &img[i], true);
		}
		multipart(&related, "related", " type=\"text/html\";", rel, nimg + 1);
		struct buf *two[] = { &plain, &related };
		multipart(&alt, "alternative", "", two, 2);
		for (int i = 0; i <= nimg; i++) {
			buf_free(rel[i]);
			if (i)
				free(rel[i]);
		}
		free(rel);
		buf_free(&html);
		buf_free(&related);
	} else {
		buf_add(&alt, plain.data, plain.len);
	}
	if (!natt) {
		buf_add(out, alt.data, alt.len);
	} else {
		struct buf **mixed = xcalloc((size_t)natt + 1, sizeof *mixed);
		mixed[0] = &alt;
		for (int i = 0; i < natt; i++) {
			mixed[i + 1] = xcalloc(1, sizeof **mixed);
			buf_init(mixed[i + 1]);
			file_part(mixed[i + 1], &att[i], false);
		}
		multipart(out, "mixed", "", mixed, natt + 1);
		for (int i = 1; i <= natt; i++) {
			buf_free(mixed[i]);
			free(mixed[i]);
		}
		free(mixed);
	}
	buf_free(&plain);
	buf_free(&alt);
}

int main(int argc, char **argv)
{
	int i = 1;
	if (argc >= 3 && strcmp(argv[1], "-C") == 0)
		i = 3;	/* (outbox passes it; nothing here reads the configuration) */
	struct send_opts o;
	const char *what, *arg;
	if (i >= argc || strcmp(argv[i], "send") != 0)
		return fail(EX_USAGE, "usage: outbox-compose send ARGS%s", "");
	if (send_parse_args(argc - i, argv + i, &o, &what, &arg)) {
		send_opts_free(&o);
		return fail(EX_USAGE, "%s", what);
	}
	srandom((unsigned)(now_real() * 1e6) ^ (unsigned)getpid());
	struct buf text, h;
	buf_init(&text);
	buf_init(&h);
	int rc = 0;
	if (read_file(o.body_file ? o.body_file : "-", &text) < 0)
		rc = fail(EX_NOINPUT, "cannot read the text: %s", strerror(errno));
	else if (!utf8_valid(text.data ? text.data : "", text.len))
		rc = fail(EX_DATAERR, "the text is not UTF-8%s", "");
	magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
	if (!rc && (!m || magic_load(m, NULL) != 0))
		rc = fail(EX_UNAVAILABLE, "libmagic: %s", m ? magic_error(m) : "cannot start");
	struct part *img = xcalloc((size_t)o.ninline + 1, sizeof *img), *att = xcalloc((size_t)o.nattach + 1, sizeof *att);
	for (int k = 0; !rc && k < o.ninline; k++)
		rc = load_part(m, &img[k], o.inline_img[k], true, k);
	for (int k = 0; !rc && k < o.nattach; k++)
		rc = load_part(m, &att[k], o.attach[k], false, o.ninline + k);
	if (!rc)
		rc = headers(&h, &o);
	if (!rc) {
		body(&h, &text, img, o.ninline, att, o.nattach);
		if (fwrite(h.data, 1, h.len, stdout) != h.len || fflush(stdout) != 0)
			rc = fail(EX_IOERR, "cannot write the message: %s", strerror(errno));
	}
	for (int k = 0; k < o.ninline; k++)
		buf_free(&img[k].data);
	for (int k = 0; k < o.nattach; k++)
		buf_free(&att[k].data);
	free(img);
	free(att);
	if (m)
		magic_close(m);
	buf_free(&text);
	buf_free(&h);
	send_opts_free(&o);
	return rc;
}
