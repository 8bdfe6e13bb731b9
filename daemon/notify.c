/*
 * notify.c - systemd's notification socket (notify.h).
 */
#include "notify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "outboxd.h"

void notify_systemd(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof sa.sun_path)
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	close(fd);
}

static void send_status(struct daemon *d)
{
	char msg[200];
	snprintf(msg, sizeof msg, "STATUS=%zu messages queued; since start %llu sent, %llu deferred, %llu bounced",
		 d->queue.count, (unsigned long long)d->stats.sent, (unsigned long long)d->stats.deferred,
		 (unsigned long long)d->stats.bounced);
	notify_systemd(msg);
}

static void on_status_timer(uv_timer_t *t)
{
	send_status(t->data);
}

void notify_ready(struct daemon *d)
{
	if (!getenv("NOTIFY_SOCKET"))
		return;
	notify_systemd("READY=1");
	send_status(d);
	uv_timer_init(d->loop, &d->notify_timer);
	uv_unref((uv_handle_t *)&d->notify_timer);
	d->notify_timer.data = d;
	uv_timer_start(&d->notify_timer, on_status_timer, NOTIFY_STATUS_S * 1000, NOTIFY_STATUS_S * 1000);
	d->notify_timer_on = true;
}

void notify_reloading(void)
{
	notify_systemd("RELOADING=1");
}

void notify_stop(struct daemon *d)
{
	notify_systemd("STOPPING=1");
	if (d->notify_timer_on) {
		uv_close((uv_handle_t *)&d->notify_timer, NULL);
		d->notify_timer_on = false;
	}
}
