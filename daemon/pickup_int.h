/*
 * pickup_int.h - what pickup.c (the directory: watching, scanning, the
 * jobs and their ends) and pickup_read.c (one file read into an
 * envelope and a message, on the thread pool) share.  Not a public
 * interface: pickup.h is.
 */
#ifndef OUTBOXD_PICKUP_INT_H
#define OUTBOXD_PICKUP_INT_H

#include <uv.h>

#include "intake.h"
#include "outboxd.h"
#include "pickup.h"
#include "pickup_take.h"

#define PICKUP_NAME_MAX 255

struct pickup {
	struct daemon *d;
	struct pickup_dirs dirs;
	uv_fs_event_t watch;
	uv_timer_t timer;
	bool watching;
	bool scanning, rescan, stopping;
	uv_work_t scan_req;
	char **names;		/* the last scan's, not yet started */
	size_t nnames, next;
	char **scanned;		/* filled on the thread pool */
	size_t nscanned;
	struct pjob *active;	/* jobs in flight */
	size_t nactive;
	char **stuck;		/* bad files that could not be moved (logged once) */
	size_t nstuck;
};

enum verdict { P_TAKE, P_GONE, P_BAD, P_NO_ROOM };

struct pjob {
	struct pickup *p;
	struct pjob *next;
	char name[PICKUP_NAME_MAX + 1];
	struct config *conf;	/* as when the job began */
	uv_work_t req;
	enum verdict verdict;
	char why[600];		/* P_BAD */
	bool stuck;		/* P_BAD, and it could not be moved to bad/ */
	bool taken;		/* it is taking/ID now, not new/NAME */
	uint64_t avail;		/* free octets on the spool, when it was looked at */
	char id[QID_LEN + 1];
	long uid;
	char login[64];
	struct envelope env;
	struct buf msg;		/* the message to queue, CRLF */
	struct intake in;
};

/* Read job j's file (thread pool): the verdict, and for P_TAKE its
 * envelope and message. */
void pickup_read_work(uv_work_t *req);

#endif
