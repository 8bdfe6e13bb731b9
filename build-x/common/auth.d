build-x/common/auth.o: common/auth.c common/auth.h common/config.h \
 common/relay.h common/util.h
common/auth.h:
common/config.h:
common/relay.h:
common/util.h:
