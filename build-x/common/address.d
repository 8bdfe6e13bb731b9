build-x/common/address.o: common/address.c common/address.h common/util.h \
 common/config.h common/relay.h
common/address.h:
common/util.h:
common/config.h:
common/relay.h:
