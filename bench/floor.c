/*
 * floor - the least a durable submission can cost: write 2 KB to a new
 * file, fsync it, rename it into place, fsync the directory.
 *
 *   floor DIR [N]   do it N times (default 1) in DIR
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[2048], tmp[4096], dst[4096];
	if (argc < 2) {
		fprintf(stderr, "usage: floor DIR [N]\n");
		return 64;
	}
	long n = argc > 2 ? atol(argv[2]) : 1;
	memset(buf, 'x', sizeof buf);
	int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		perror(argv[1]);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		snprintf(tmp, sizeof tmp, "%s/tmp.%ld.%ld", argv[1], (long)getpid(), i);
		snprintf(dst, sizeof dst, "%s/msg.%ld.%ld", argv[1], (long)getpid(), i);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd) < 0
		    || close(fd) < 0 || rename(tmp, dst) < 0 || fsync(dfd) < 0) {
			perror("floor");
			return 1;
		}
	}
	close(dfd);
	return 0;
}
