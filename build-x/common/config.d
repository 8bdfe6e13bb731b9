build-x/common/config.o: common/config.c common/config.h common/relay.h \
 common/util.h common/address.h common/log.h common/units.h
common/config.h:
common/relay.h:
common/util.h:
common/address.h:
common/log.h:
common/units.h:
