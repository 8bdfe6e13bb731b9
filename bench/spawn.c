/*
 * spawn - run a command N times one after another, each with its stdin
 * from FILE, and print each run's wall time in seconds (one a line).
 * The benchmark's processes (sendmail, and the floor it is set against)
 * are started by this small program rather than by Python, whose fork
 * of its own large process and whose lock shared between threads would
 * be measured with them: a caller such as cron or a shell is a small C
 * process too.
 *
 *   spawn FILE N CMD [ARG...]     exit 1 when a run did not exit 0
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: spawn FILE N CMD [ARG...]\n");
		return 64;
	}
	long n = atol(argv[2]);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, argv[1], O_RDONLY, 0);
	for (long i = 0; i < n; i++) {
		pid_t pid;
		int st;
		double t0 = now();
		if (posix_spawn(&pid, argv[3], &fa, NULL, argv + 3, environ) != 0
		    || waitpid(pid, &st, 0) < 0) {
			perror(argv[3]);
			return 1;
		}
		double t = now() - t0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawn: %s exited %d\n", argv[3], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
			return 1;
		}
		printf("%.6f\n", t);
	}
	return 0;
}
