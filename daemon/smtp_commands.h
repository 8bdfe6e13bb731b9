/*
 * smtp_commands.h - the SMTP server session's commands (smtp_commands.c),
 * for the session's reader (smtp_session.c).  Loop thread only.
 */
#ifndef OUTBOXD_SMTP_COMMANDS_H
#define OUTBOXD_SMTP_COMMANDS_H

#include "smtp_conn.h"

/* Run one command line (the reply is queued: smtp_conn.h). */
void sess_dispatch(struct session *s, char *line);

#endif
