/*
 * qname.c - the names of queue files (queue.h "names and buckets").
 *
 * FILE NAME: the ID, until the message is first deferred; then
 * ID.NEXT.TRIES (the wall-clock second of the next try, 8 hex digits,
 * and the attempts so far, decimal); either with .H appended while an
 * operator holds the message (outbox hold: that rename, and the one of
 * release, is fsynced, for it is the operator's word), or .B while a
 * report about some of its recipients is being queued (qrecord.c
 * BOUNCES).  The deferral renames the file in
 * its bucket without a sync: a rename within one directory is atomic,
 * and a power cut that loses it only brings the next try forward.  So
 * start-up learns the whole schedule from the names (a walk of the
 * directories, no file opened, no inode read: a stat per file costs six
 * times the walk on a cold cache), and the envelope is read when a
 * worker first takes the message.
 *
 * Owns: formatting and parsing those names; no I/O.  INVARIANT: what
 * qname_format writes, qname_parse reads back, and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

void qname_format(char name[QNAME_MAX], const char *id, uint32_t next_try, unsigned tries)
{
	if (tries == 0)
		snprintf(name, QNAME_MAX, "%.*s", QID_LEN, id);
	else
		snprintf(name, QNAME_MAX, "%.*s.%08X.%u", QID_LEN, id, next_try,
			 tries > 65535 ? 65535 : tries);
}

char qname_mark(const char *name)
{
	size_t n = strlen(name);
	if (n >= QID_LEN + 2 && name[n - 2] == '.' && (name[n - 1] == 'H' || name[n - 1] == 'B'))
		return name[n - 1];
	return 0;
}

void qname_set_mark(char name[QNAME_MAX], char mark)
{
	if (qname_mark(name))
		name[strlen(name) - 2] = '\0';
	if (mark && strlen(name) + 2 < QNAME_MAX) {
		size_t n = strlen(name);
		name[n] = '.';
		name[n + 1] = mark;
		name[n + 2] = '\0';
	}
}

bool qname_held(const char *name)
{
	return qname_mark(name) == 'H';
}

void qname_set_held(char name[QNAME_MAX], bool held)
{
	if (held)
		qname_set_mark(name, 'H');
	else if (qname_held(name))
		qname_set_mark(name, 0);
}

bool qname_parse(const char *held_name, char id[QID_LEN + 1], uint32_t *next_try, unsigned *tries)
{
	char name[QNAME_MAX];
	if (strlen(held_name) >= QNAME_MAX)
		return false;
	strcpy(name, held_name);
	qname_set_mark(name, 0);
	size_t n = strlen(name);
	const char *hex = "0123456789ABCDEF";
	if (n < QID_LEN || strspn(name, hex) < QID_LEN)
		return false;
	*next_try = 0;
	*tries = 0;
	if (n > QID_LEN) {	/* .NEXT.TRIES, exactly as qname_format writes it */
		const char *t = name + QID_LEN + 10;
		if (name[QID_LEN] != '.' || n < QID_LEN + 11 || n > QNAME_MAX - 3
		    || strspn(name + QID_LEN + 1, hex) != 8 || name[QID_LEN + 9] != '.'
		    || strspn(t, "0123456789") != strlen(t) || t[0] == '0')
			return false;
		unsigned long v = strtoul(t, NULL, 10);
		if (v == 0 || v > 65535)
			return false;
		*next_try = (uint32_t)strtoul(name + QID_LEN + 1, NULL, 16);
		*tries = (unsigned)v;
	}
	memcpy(id, name, QID_LEN);
	id[QID_LEN] = '\0';
	return true;
}
