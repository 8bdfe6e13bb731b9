/*
 * confdoc - copy an mdoc page from stdin to stdout, replacing the line
 * ".\" @KEYS@" with the key reference generated from the configuration
 * table (config_doc_mdoc), and ".\" @PROVIDERS@" with the presets of
 * common/providers.c, so outbox.conf(5) cannot drift from the code.
 */
#include <stdio.h>
#include <string.h>

#include "../common/config.h"
#include "../common/providers.h"

int main(void)
{
	char line[4096];
	int found = 0;
	while (fgets(line, sizeof line, stdin)) {
		if (strcmp(line, ".\\\" @KEYS@\n") == 0) {
			config_doc_mdoc(stdout);
			found = 1;
		} else if (strcmp(line, ".\\\" @PROVIDERS@\n") == 0) {
			providers_doc_mdoc(stdout);
		} else {
			fputs(line, stdout);
		}
	}
	if (!found) {
		fprintf(stderr, "confdoc: no @KEYS@ marker in input\n");
		return 1;
	}
	return 0;
}
