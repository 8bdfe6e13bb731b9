build-x/common/net.o: common/net.c common/net.h common/util.h
common/net.h:
common/util.h:
