/*
 * http.c - HTTPS, forms and answers for the OAuth2 grants (http.h).
 */
#include "http.h"

#include <curl/curl.h>
#include <string.h>

#include "../common/auth.h"
#include "../common/log.h"

#define BODY_MAX (64 * 1024)	/* an endpoint's answer, at most */
#define HTTP_TIMEOUT_S 60

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	if (b->len + size * n > BODY_MAX)
		return 0;	/* too long: the transfer fails */
	buf_add(b, p, size * n);
	return size * n;
}

int http_post(const struct relay *r, const char *url, const char *form, long *status, struct buf *body,
	      struct err *e)
{
	CURL *h = curl_easy_init();
	if (!h)
		return err_set(e, "cannot start an HTTPS client");
	char errbuf[CURL_ERROR_SIZE] = "";
	long timeout = r->timeout && r->timeout < HTTP_TIMEOUT_S ? (long)r->timeout : HTTP_TIMEOUT_S;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (*r->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "outbox");
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK)
		return err_set(e, "%s: %s", url, *errbuf ? errbuf : curl_easy_strerror(rc));
	buf_adds(body, "");
	return 0;
}

void form_add(struct buf *f, const char *key, const char *value)
{
	char *v = curl_easy_escape(NULL, value, 0);
	buf_printf(f, "%s%s=%s", f->len ? "&" : "", key, v ? v : "");
	if (v) {
		explicit_bzero(v, strlen(v));
		curl_free(v);
	}
}

void form_free(struct buf *f)
{
	if (f->data)
		explicit_bzero(f->data, f->len);
	buf_free(f);
}

int form_add_client(struct buf *form, const struct relay *r, struct err *e)
{
	form_add(form, "client_id", r->oauth2_client_id);
	if (!*r->oauth2_client_secret_file)
		return 0;
	char *secret = secret_read_file(r->oauth2_client_secret_file, "oauth2_client_secret_file", e);
	if (!secret)
		return -1;
	form_add(form, "client_secret", secret);
	secret_free(secret);
	return 0;
}

const char *json_str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

json_t *oauth2_answer(const char *url, long status, const struct buf *body, char *code, size_t n,
		      struct err *e)
{
	json_t *j = json_loads(body->data ? body->data : "", 0, NULL);
	if (code && n)
		*code = '\0';
	if (status == 200 && json_is_object(j))
		return j;
	const char *error = j ? json_str(j, "error") : NULL;
	const char *desc = j ? json_str(j, "error_description") : NULL;
	char safe[300];
	if (error && code && n)
		snprintf(code, n, "%s", error);
	if (error)
		err_set(e, "%s: %s%s%s", url, log_safe(error, safe, 100), desc ? ": " : "",
			desc ? log_safe(desc, safe + 100, 200) : "");
	else
		err_set(e, "%s: HTTP %ld without an OAuth2 answer", url, status);
	json_decref(j);
	return NULL;
}

/* Anything else -- a newline, an ESC -- would break the helper's
 * one-line answer to outboxd or the AUTH command, and is never passed
 * on nor quoted. */
bool token_ok(const char *t)
{
	if (!t || !*t)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			return false;
	return true;
}

json_t *token_request(const struct relay *r, struct buf *form, struct err *e)
{
	struct buf body;
	long status = 0;
	buf_init(&body);
	int rc = form_add_client(form, r, e);
	if (rc == 0)
		rc = http_post(r, r->oauth2_token_url, form->data, &status, &body, e);
	form_free(form);
	json_t *j = rc == 0 ? oauth2_answer(r->oauth2_token_url, status, &body, NULL, 0, e) : NULL;
	form_free(&body);
	return j;
}
