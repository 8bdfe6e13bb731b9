build-x/common/tokens.o: common/tokens.c common/tokens.h common/relay.h \
 common/util.h common/auth.h common/config.h common/log.h
common/tokens.h:
common/relay.h:
common/util.h:
common/auth.h:
common/config.h:
common/log.h:
