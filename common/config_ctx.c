/*
 * config_ctx.c - where an error found while loading a configuration is
 * reported: the file and line that set the key, in the words of
 * config_load()'s error list (one a line, however many).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_keys.h"


void conf_error(struct load_ctx *x, const char *section, const char *name,
		       const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (x->nerrors++)
		buf_addc(&x->errors, '\n');
	if (x->line > 0)
		buf_printf(&x->errors, "%s:%d: ", x->path, x->line);
	else
		buf_printf(&x->errors, "%s: ", x->path);
	if (name)
		buf_printf(&x->errors, "[%s] %s: %s", section, name, msg);
	else
		buf_printf(&x->errors, "%s", msg);
	x->last_error_line = x->line;
}

/* Point x->path and x->line at the file and line that set a key (the
 * main file, line 0, when it was defaulted). */
void key_line(struct load_ctx *x, const char *section, const char *name)
{
	x->line = 0;
	x->path = x->c->files[0];
	for (size_t i = 0; i < config_nkeys; i++)
		if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0 && x->seen[i]) {
			x->line = x->seen[i];
			x->path = x->c->files[x->c->set_in[i]];
		}
}

/* An error about a key as a whole: reported at the line that set it. */
void key_error(struct load_ctx *x, const char *section, const char *name, const char *msg)
{
	key_line(x, section, name);
	conf_error(x, section, name, "%s", msg);
}
