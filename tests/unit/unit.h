/* unit.h - common includes for the cmocka unit tests. */
#ifndef OUTBOX_UNIT_H
#define OUTBOX_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#endif
