build-x/common/dsn.o: common/dsn.c common/dsn.h common/util.h
common/dsn.h:
common/util.h:
