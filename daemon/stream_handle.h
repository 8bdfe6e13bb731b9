/*
 * stream_handle.h - a libuv stream that is a Unix socket or a TCP one:
 * the listeners' (listen.c) and the SMTP sessions' (smtp_conn.h) handle,
 * used as whichever member the call needs.
 */
#ifndef OUTBOXD_STREAM_HANDLE_H
#define OUTBOXD_STREAM_HANDLE_H

#include <uv.h>

union stream_handle {
	uv_pipe_t pipe;
	uv_tcp_t tcp;
	uv_stream_t stream;
	uv_handle_t handle;
};

#endif
