build-x/common/retry.o: common/retry.c common/retry.h
common/retry.h:
